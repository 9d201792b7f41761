"""A small client of the model service for the prediction DAG, sorting failures by what to do.

- `ApiUnavailable`: the service could not answer (refused connection, timeout, 5xx, 429, an
  answer that is not what docs/api.md promises). Nothing is recorded; the task fails and
  Airflow retries it. Retrying is safe: the API stores each (file, row) once.
- `ApiRejected`: the service refused the file's data (422 naming records, 409). The file is
  recorded as failed with this reason; retrying would only fail the same way.
- `ApiRefused`: any other 4xx is about the request rather than the data (a batch over the
  service's MAX_BATCH_RECORDS or MAX_BODY_BYTES, a wrong API_URL): a configuration problem
  that every file would hit. The task fails loudly and no file is marked. So does a missing
  or refused credential (401/403): the DAG sends the scheduler role's token, API_TOKEN_SCHEDULER.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from mlsys.api_auth import Role, bearer_headers
from mlsys.config import get_settings
from mlsys.credentials import SecretError

# (connect, read) seconds. Connecting to a live local service takes milliseconds; a batch of
# 10,000 records is predicted and stored in about a second (docs/api.md, bench/).
DEFAULT_TIMEOUT_S = (5.0, 120.0)
# Listed in a ledger reason; the API lists up to 1,000, which nobody reads in a ledger row.
MAX_REASON_ERRORS = 5
RETRYABLE_4XX = frozenset({408, 429})


class ApiUnavailable(RuntimeError):
    """The service did not answer usefully; retry later."""


class ApiRefused(RuntimeError):
    """The service refused the request itself (not the data): fix the configuration."""


@dataclass
class ApiRejected(Exception):
    """The service refused some records of the batch; `errors[i]['record']` is batch-relative."""

    status: int
    detail: str
    errors: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status}: {self.detail}"


@dataclass(frozen=True)
class BatchResult:
    stored: int
    already_stored: int


def _body(resp: requests.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {"detail": resp.text[:300]}
    return body if isinstance(body, dict) else {"detail": str(body)[:300]}


class PredictionApi:
    """`GET /model-info` and scheduled `POST /predict` calls on one keep-alive session.

    Each call sends the scheduler role's token, read at that moment by `resolve_secret` (env
    API_TOKEN_SCHEDULER, its _FILE, or `var_dir`/secrets): nothing secret passes through
    Airflow variables, connections or command lines.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: tuple[float, float] = DEFAULT_TIMEOUT_S,
        session: requests.Session | None = None,
        var_dir: Path | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = session or requests.Session()
        self.var_dir = var_dir if var_dir is not None else get_settings().var_dir

    def close(self) -> None:
        self.session.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        try:
            headers = bearer_headers(Role.SCHEDULER, self.var_dir)
        except SecretError as exc:
            raise ApiRefused(f"no credential for the model API: {exc}") from None
        try:
            resp = self.session.request(
                method, url, timeout=self.timeout_s, headers=headers, **kwargs
            )
        except requests.RequestException as exc:
            raise ApiUnavailable(f"{method} {url} failed: {exc}") from exc
        body = _body(resp)
        status = resp.status_code
        if status >= 500 or status in RETRYABLE_4XX:
            raise ApiUnavailable(f"{method} {url} answered {status}: {body.get('detail')}")
        if 400 <= status < 500:
            errors = body.get("errors") if isinstance(body.get("errors"), list) else []
            about_records = any(isinstance(e, dict) and e.get("record") is not None for e in errors)
            if status == 409 or (status == 422 and about_records):
                raise ApiRejected(status, str(body.get("detail", "")), errors)
            raise ApiRefused(
                f"{method} {url} answered {status}: {body.get('detail')} "
                f"{errors[:MAX_REASON_ERRORS] if errors else ''}".rstrip()
            )
        if status != 200:
            raise ApiUnavailable(f"{method} {url} answered {status}, expected 200")
        return body

    def model_info(self) -> dict[str, Any]:
        return self._call("GET", "/model-info")

    def predict_scheduled(
        self, source_file: str, rows: list[int], records: list[dict[str, Any]]
    ) -> BatchResult:
        """Predict and store one batch of a file's rows (all or nothing, idempotent per row)."""
        body = self._call(
            "POST",
            "/predict",
            json={
                "source": "scheduled",
                "source_file": source_file,
                "source_rows": rows,
                "records": records,
            },
        )
        try:
            result = BatchResult(int(body["stored"]), int(body["already_stored"]))
            answered = len(body["predictions"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiUnavailable(f"POST /predict answered 200 without {exc}") from None
        # Never record a file as done on an answer that does not account for every row.
        if result.stored + result.already_stored != len(rows) or answered != len(rows):
            raise ApiUnavailable(
                f"POST /predict answered for {answered} of {len(rows)} rows "
                f"(stored {result.stored}, already stored {result.already_stored})"
            )
        return result


def rejection_reason(exc: ApiRejected, *, rows: list[int], total: int) -> str:
    """A ledger reason: where the file was refused, the API's detail and its first errors,
    with record indexes turned back into the file's row numbers."""
    listed = []
    for error in exc.errors[:MAX_REASON_ERRORS]:
        record = error.get("record")
        where = f"row {rows[record]}" if isinstance(record, int) and 0 <= record < len(rows) else ""
        field_name = error.get("field")
        listed.append(
            " ".join(
                part
                for part in (
                    where,
                    f"{field_name}" if field_name else "",
                    f"{error.get('value')!r}:",
                    str(error.get("message", "")),
                )
                if part
            )
        )
    stored = f"rows 0-{rows[0] - 1} were stored" if rows[0] > 0 else "no row was stored"
    text = (
        f"the API answered {exc.status} for rows {rows[0]}-{rows[-1]} of {total} "
        f"({stored}, later rows were not sent): {exc.detail}"
        + (f"; first errors: {'; '.join(listed)}" if listed else "")
    )
    return text[:2000]
