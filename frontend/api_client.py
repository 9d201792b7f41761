"""The UI's only way to the model service: typed calls of the API in docs/api.md.

Every failure becomes an `ApiError` subclass whose message a user can read, so that the pages
show a sentence, never a stack trace: `ApiUnavailable` (nothing answers, or too slowly),
`ApiRejected` (4xx; for invalid records it carries the record/field errors), `ApiServerError`
(5xx, such as the database being down) and `ApiProtocolError` (an answer that breaks the contract).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import httpx

from mlsys.api_auth import TOKEN_NAMES, Role
from mlsys.config import get_settings
from mlsys.credentials import resolve_secret
from mlsys.features import Feature, Kind

SOURCES = ("webapp", "scheduled", "all")


class ApiError(Exception):
    """Any failure of a call to the API; `str()` is a message for the user."""


class ApiUnavailable(ApiError):
    """The API did not answer: not started, wrong API_URL, or too slow."""


class ApiProtocolError(ApiError):
    """The API answered something the contract does not allow (a bug on one side)."""


@dataclass(frozen=True)
class RecordError:
    """One invalid value of one record, as the API reports it (record index within the call)."""

    record: int | None
    field: str | None
    value: Any
    message: str
    rule: str = ""  # its `mlsys.rules` rule name (missing_value, out_of_range, ...)


class ApiRejected(ApiError):
    """A 4xx answer: the request was refused and nothing was written."""

    def __init__(self, status: int, detail: str, errors: Sequence[RecordError] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = list(errors)


class ApiServerError(ApiError):
    """A 5xx answer, such as 503 when the API cannot reach its database."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class ModelInfo:
    version: str
    trained_at: str | None
    metrics: dict[str, Any]
    target: str | None
    positive_class: str | None
    negative_class: str | None
    features: tuple[Feature, ...]
    schema_version: str | None = None  # the serving schema, 'v3 (1a2b3c4d)'
    # The schema the model was trained with, the same way; None: not recorded.
    trained_schema_version: str | None = None

    @property
    def classes(self) -> list[str]:
        return [c for c in (self.negative_class, self.positive_class) if c is not None]


@dataclass(frozen=True)
class Prediction:
    id: int | None
    prediction: str
    probability: float | None
    source: str | None
    created_at: datetime | None
    model_version: str | None
    source_file: str | None = None
    source_row: int | None = None
    features: dict[str, Any] = field(default_factory=dict)
    # Features whose value the model never saw in training (mlsys/training_values.py).
    unseen_features: tuple[str, ...] = ()


@dataclass(frozen=True)
class PredictResult:
    model_version: str | None
    stored: int
    already_stored: int
    predictions: list[Prediction]


@dataclass(frozen=True)
class PastPage:
    items: list[Prediction]
    next_cursor: str | None


def _as_datetime(raw: Any) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise ApiProtocolError(f"the API sent an unreadable time {raw!r}") from None


def parse_prediction(raw: Any) -> Prediction:
    if not isinstance(raw, dict) or "prediction" not in raw:
        raise ApiProtocolError(f"the API sent a prediction without 'prediction': {raw!r:.200}")
    probability = raw.get("probability")
    row = raw.get("source_row")
    return Prediction(
        id=raw.get("id"),
        prediction=str(raw["prediction"]),
        probability=None if probability is None else float(probability),
        source=raw.get("source"),
        created_at=_as_datetime(raw.get("created_at")),
        model_version=raw.get("model_version"),
        source_file=raw.get("source_file"),
        source_row=None if row is None else int(row),
        features=dict(raw.get("features") or {}),
        unseen_features=tuple(str(f) for f in raw.get("unseen_features") or ()),
    )


def parse_feature(raw: Any) -> Feature:
    """A feature of GET /model-info -> the core's typed Feature (the UI types no feature list)."""
    try:
        return Feature(
            name=str(raw["name"]),
            kind=Kind(raw["kind"]),
            required=bool(raw.get("required", True)),
            values=tuple(str(v) for v in raw.get("values") or ()),
            minimum=None if raw.get("minimum") is None else float(raw["minimum"]),
            maximum=None if raw.get("maximum") is None else float(raw["maximum"]),
            description=str(raw.get("description") or ""),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ApiProtocolError(
            f"the API described a feature the UI cannot read: {raw!r:.200}"
        ) from exc


def parse_model_info(raw: Any) -> ModelInfo:
    if not isinstance(raw, dict) or not isinstance(raw.get("features"), list):
        raise ApiProtocolError("the API's /model-info has no 'features' list")
    classes = raw.get("classes") or {}
    features = tuple(parse_feature(f) for f in raw["features"])
    if not features:
        raise ApiProtocolError("the API's /model-info lists no feature")
    return ModelInfo(
        version=str(raw.get("version", "")),
        trained_at=raw.get("trained_at"),
        metrics=dict(raw.get("metrics") or {}),
        target=raw.get("target"),
        positive_class=None if classes.get("positive") is None else str(classes["positive"]),
        negative_class=None if classes.get("negative") is None else str(classes["negative"]),
        features=features,
        schema_version=_schema_short(raw.get("schema")),
        trained_schema_version=_schema_short(raw.get("trained_schema")),
    )


def _schema_short(raw: Any) -> str | None:
    return str(raw["short"]) if isinstance(raw, dict) and raw.get("short") else None


def _record_errors(raw: Any) -> list[RecordError]:
    if not isinstance(raw, list):
        return []
    errors = []
    for item in raw:
        if isinstance(item, dict):
            record = item.get("record")
            errors.append(
                RecordError(
                    record=record if isinstance(record, int) else None,
                    field=item.get("field"),
                    value=item.get("value"),
                    message=str(item.get("message") or item.get("msg") or item),
                    rule=str(item.get("rule") or ""),
                )
            )
    return errors


def _detail_text(detail: Any) -> str:
    """`detail` is a sentence in our contract; FastAPI's own 422 sends a list of dicts."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", ()) if x != "body")
                parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)


def webapp_token() -> str | None:
    """The UI's API token (API_TOKEN_WEBAPP, its _FILE, or VAR_DIR/secrets), read now."""
    return resolve_secret(TOKEN_NAMES[Role.WEBAPP], get_settings().var_dir, required=False)


@dataclass(frozen=True)
class SchemaProposal:
    """One proposed change of the schema (GET /schema-proposals, docs/api.md)."""

    id: int
    title: str
    status: str  # proposed | approved | rejected
    created_at: datetime | None
    evidence: dict[str, Any]
    diff: str
    base_version: str | None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decided_reason: str | None = None
    decided_via: str | None = None
    schema_version: str | None = None


def parse_schema_proposal(raw: Any) -> SchemaProposal:
    if not isinstance(raw, dict) or not isinstance(raw.get("evidence"), dict):
        raise ApiProtocolError("a schema proposal without its evidence")
    return SchemaProposal(
        id=int(raw["id"]), title=str(raw.get("title", "")), status=str(raw.get("status", "")),
        created_at=_as_datetime(raw.get("created_at")), evidence=raw["evidence"],
        diff=str(raw.get("diff", "")), base_version=raw.get("base_version"),
        decided_by=raw.get("decided_by"), decided_at=_as_datetime(raw.get("decided_at")),
        decided_reason=raw.get("decided_reason"), decided_via=raw.get("decided_via"),
        schema_version=raw.get("schema_version"),
    )  # fmt: skip


class ApiClient:
    """A synchronous client of the model API at `base_url`, with the UI's credential.

    `token`: the bearer token sent with every call; by default the webapp role's, read when
    the client is made (each page run makes its own, so a rotated token is picked up).
    """

    def __init__(self, base_url: str, *, timeout_s: float = 30.0, token: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        token = token if token is not None else webapp_token()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiUnavailable(
                f"The model API at {self.base_url} did not answer in time; try again, or a "
                "smaller file."
            ) from None
        except httpx.TransportError as exc:
            raise ApiUnavailable(
                f"The model API at {self.base_url} is down or unreachable "
                f"({type(exc).__name__}: {exc or 'no answer'}). Start it with `make up`, "
                "or check API_URL."
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            if body is None:
                raise ApiProtocolError(f"{method} {path}: the API answered with no JSON")
            return body
        detail = _detail_text(body.get("detail")) if isinstance(body, dict) else None
        detail = detail or f"HTTP {response.status_code} {response.reason_phrase}"
        if response.status_code >= 500:
            raise ApiServerError(response.status_code, f"The model API failed: {detail}")
        errors = _record_errors(body.get("errors")) if isinstance(body, dict) else []
        if response.status_code in (401, 403):
            detail = (
                f"The model API refused the UI's credential ({detail}). Check that "
                f"{TOKEN_NAMES[Role.WEBAPP]} is the one the API was started with (`make up` "
                "generates both under VAR_DIR/secrets)."
            )
        raise ApiRejected(response.status_code, detail, errors)

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def model_info(self) -> ModelInfo:
        return parse_model_info(self._call("GET", "/model-info"))

    def schema_proposals(self, *, status: str | None = None) -> list[SchemaProposal]:
        """The schema proposals, newest first; `status`: proposed, approved, rejected or all."""
        params = {"status": status} if status else {}
        body = self._call("GET", "/schema-proposals", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ApiProtocolError("the API's /schema-proposals has no 'items' list")
        return [parse_schema_proposal(p) for p in body["items"]]

    def predict(
        self,
        records: list[dict[str, Any]],
        *,
        source: str = "webapp",
        idempotency_key: str | None = None,
    ) -> PredictResult:
        """Predict a batch (all-or-nothing on the API side); predictions in record order.

        With an `idempotency_key`, the same call sent again (after a timeout) returns the
        predictions stored the first time (`already_stored`) instead of storing them twice.
        """
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = self._call(
            "POST", "/predict", json={"source": source, "records": records}, headers=headers
        )
        predictions = [parse_prediction(p) for p in body.get("predictions", [])]
        if len(predictions) != len(records):
            raise ApiProtocolError(
                f"the API returned {len(predictions)} predictions for {len(records)} records"
            )
        return PredictResult(
            model_version=body.get("model_version"),
            stored=int(body.get("stored", 0)),
            already_stored=int(body.get("already_stored", 0)),
            predictions=predictions,
        )

    def past_predictions(
        self,
        *,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
        source: str = "all",
        limit: int = 100,
        cursor: str | None = None,
    ) -> PastPage:
        """One page of stored predictions, newest first; `end` as a date includes that day."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        params: dict[str, Any] = {"source": source, "limit": limit}
        if start is not None:
            params["start"] = start.isoformat()
        if end is not None:
            params["end"] = end.isoformat()
        if cursor:
            params["cursor"] = cursor
        body = self._call("GET", "/past-predictions", params=params)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ApiProtocolError("the API's /past-predictions has no 'items' list")
        return PastPage(
            items=[parse_prediction(p) for p in body["items"]],
            next_cursor=body.get("next_cursor") or None,
        )

    def all_past_predictions(
        self,
        *,
        start: date | datetime | None = None,
        end: date | datetime | None = None,
        source: str = "all",
        max_rows: int,
        page_size: int = 1000,
    ) -> tuple[list[Prediction], bool]:
        """The newest `max_rows` predictions of a filter; True when more exist beyond them."""
        items: list[Prediction] = []
        cursor: str | None = None
        while True:
            page = self.past_predictions(
                start=start,
                end=end,
                source=source,
                limit=min(page_size, max_rows - len(items)),
                cursor=cursor,
            )
            items.extend(page.items)
            cursor = page.next_cursor
            if cursor is None or not page.items:
                return items, False
            if len(items) >= max_rows:
                return items, True
