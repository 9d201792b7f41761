"""The `/predict` and `/past-predictions` use cases as plain functions (routes only wire them).

They run in a database thread of `service.db.Database` (validation and prediction included, so
that a 10,000-record batch never blocks the event loop) and raise `RequestError`,
`ModelUnavailable` or `DatabaseUnavailable`, which the routes turn into 4xx and 503 answers.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import orjson
import psycopg2.errors

from mlsys.model import LoadedModel
from service import store
from service.db import Database
from service.group_commit import GroupWriter, Row
from service.model_store import ModelStore
from service.validation import (
    CurrentRules,
    FieldError,
    PredictRequest,
    RecordValidator,
    RequestError,
    parse_predict_request,
    shown,
)

PAST_SOURCES = ("webapp", "scheduled", "all")
# Below this many rows, starting OpenMP threads costs more than it saves.
MIN_ROWS_FOR_THREADS = 1000
# Rows predicted at a time in a batch, so that storing one chunk overlaps predicting the next.
PREDICT_CHUNK_ROWS = 1000
MAX_IDEMPOTENCY_KEY_CHARS = 255


def _predict(
    model: LoadedModel, matrix: np.ndarray, *, batch_threads: int
) -> tuple[list[float], list[str]]:
    if len(matrix) >= MIN_ROWS_FOR_THREADS and batch_threads > 1:
        proba = model.booster.predict(matrix, num_threads=batch_threads)
    else:
        proba = model.predict_proba(matrix)
    positive, negative = model.positive_label, model.negative_label
    # Plain floats: numpy scalars would print as `np.float64(...)` in COPY and JSON.
    probabilities = proba.tolist()
    return probabilities, [positive if p >= 0.5 else negative for p in probabilities]


def _new_predictions(
    model: LoadedModel,
    records: list[dict[str, Any]],
    matrix: np.ndarray,
    *,
    rows: list[int] | None = None,
    batch_threads: int = 1,
) -> Iterator[store.NewPrediction]:
    """Predictions made chunk by chunk as they are consumed (by a streaming COPY), each with
    the features whose value the model never saw in training."""
    for start in range(0, len(records), PREDICT_CHUNK_ROWS):
        stop = start + PREDICT_CHUNK_ROWS
        probabilities, labels = _predict(model, matrix[start:stop], batch_threads=batch_threads)
        unseen = model.unseen.flags(records[start:stop], matrix[start:stop])
        for k, (p, label) in enumerate(zip(probabilities, labels, strict=True)):
            yield store.NewPrediction(
                features=records[start + k],
                prediction=label,
                probability=p,
                source_row=None if rows is None else rows[start + k],
                unseen_features=unseen[k],
            )


@dataclass(frozen=True)
class Limits:
    max_records: int
    # Threads LightGBM may use for a large batch.
    batch_threads: int
    # Bodies up to this size are parsed, validated and predicted on the event loop (well
    # under a millisecond) and, from the webapp, stored by group commit; larger ones and
    # scheduled calls go to a database thread.
    inline_max_body_bytes: int


class Predictor:
    """`POST /predict`: validate the whole body, predict, store exactly once, answer in order.

    Two ways to the same result, chosen by the body's size and source:
    - small webapp requests (the UI's single predictions): validated and predicted on the
      event loop, written with the concurrent requests of the moment in one transaction by
      `GroupWriter` (group commit), answered once committed;
    - batches and scheduled calls: in a database thread, one transaction per request (the
      scheduled idempotency needs its lock and lookups; a 10,000-row batch must not block
      the event loop).
    """

    def __init__(
        self,
        *,
        rules: CurrentRules,
        models: ModelStore,
        db: Database,
        writer: GroupWriter,
        limits: Limits,
    ):
        self.rules = rules
        self.models = models
        self.db = db
        self.writer = writer
        self.limits = limits

    async def predict(
        self, body: bytes, *, sources: frozenset[str], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """Predict and store a body whose `source` must be one of `sources` (the caller's role
        may store only those: 403 otherwise, nothing stored).

        The schema's rules are taken once, here (`CurrentRules.get`: the schema file as it is
        now, rebuilt when a new version is approved), and judge the whole request; its answer,
        200 or 4xx, names that version (`schema_version`)."""
        validator = self.rules.get()
        try:
            result = await self._predict(body, sources, idempotency_key, validator)
        except RequestError as exc:
            exc.schema_version = validator.schema_label
            raise
        result["schema_version"] = validator.schema_label
        return result

    async def _predict(
        self,
        body: bytes,
        sources: frozenset[str],
        idempotency_key: str | None,
        validator: RecordValidator,
    ) -> dict[str, Any]:
        if idempotency_key is not None or len(body) > self.limits.inline_max_body_bytes:
            return await self.db.call(
                self.predict_in_thread, body, sources, idempotency_key, validator
            )
        request = self.parse(body, sources, None, validator)
        model = self.for_model(request, validator)
        if request.source == "webapp":
            return await self._predict_grouped(request, model)
        return await self.db.call(self.store_in_thread, request, model)

    def for_model(self, request: PredictRequest, validator: RecordValidator) -> LoadedModel:
        """The model, with the request's matrix (encoded by `validator`, the schema version
        that judged it) turned into the model's category codes, in place."""
        model = self.models.get()
        model.to_model_codes(request.matrix, validator.spec)
        return model

    def parse(
        self,
        body: bytes,
        sources: frozenset[str],
        idempotency_key: str | None,
        validator: RecordValidator,
    ) -> PredictRequest:
        request = parse_predict_request(body, validator, max_records=self.limits.max_records)
        if request.source not in sources:
            raise RequestError(
                403,
                f"this credential may not store predictions of source {request.source!r}; "
                "nothing was stored",
            )
        if idempotency_key is not None and request.source != "webapp":
            raise RequestError(
                422,
                "Idempotency-Key is for webapp requests: scheduled calls are idempotent by "
                "source_file and source_rows; nothing was stored",
                [FieldError(None, "Idempotency-Key", idempotency_key[:100], "is only for webapp")],
            )
        return request

    async def _predict_grouped(self, request: PredictRequest, model: LoadedModel) -> dict[str, Any]:
        probabilities = model.predict_rows(request.matrix)  # the event loop's thread only
        version, source = model.version, request.source
        unseen = model.unseen.flags(request.records, request.matrix)
        new = [
            store.NewPrediction(record, model.label(p), p, None, flags)
            for record, p, flags in zip(request.records, probabilities, unseen, strict=True)
        ]
        stored = await self.writer.write(
            [
                Row(source, n.features, n.prediction, n.probability, version, n.unseen_features)
                for n in new
            ]
        )
        return {
            "model_version": version,
            "stored": len(new),
            "already_stored": 0,
            "predictions": [
                store.stored_dict(pid, created_at, n, source=source, model_version=version)
                for (pid, created_at), n in zip(stored, new, strict=True)
            ],
        }

    def predict_in_thread(
        self,
        body: bytes,
        sources: frozenset[str],
        idempotency_key: str | None,
        validator: RecordValidator,
    ) -> dict[str, Any]:
        """A large or keyed body, parsed, predicted and stored in a database thread."""
        request = self.parse(body, sources, idempotency_key, validator)
        return self.store_in_thread(request, self.for_model(request, validator), idempotency_key)

    def store_in_thread(
        self, request: PredictRequest, model: LoadedModel, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        threads = self.limits.batch_threads
        if idempotency_key is not None:
            return self.db.transaction(
                lambda conn: _predict_keyed(conn, request, model, idempotency_key, threads)
            )
        if request.source == "scheduled":
            try:
                return self.db.transaction(
                    lambda conn: _predict_scheduled(conn, request, model, threads)
                )
            except psycopg2.errors.UniqueViolation:
                # Only a writer that bypasses our per-file lock can get here; the constraint
                # kept the row unique and this transaction wrote nothing. A retry returns them.
                raise RequestError(
                    409,
                    f"rows of {request.source_file!r} were stored by another writer meanwhile; "
                    "nothing was stored by this call: send it again to get the stored predictions",
                ) from None
        count = len(request.records)
        stored = self.db.transaction(
            lambda conn: store.insert_predictions(
                conn,
                source=request.source,
                model_version=model.version,
                predictions=_new_predictions(
                    model, request.records, request.matrix, batch_threads=threads
                ),
                count=count,
            ),
            # one INSERT ... RETURNING: its own transaction, no second round trip for COMMIT
            single_statement=count == 1,
        )
        return {
            "model_version": model.version,
            "stored": len(stored),
            "already_stored": 0,
            "predictions": stored,
        }


def _predict_scheduled(
    conn, request: PredictRequest, model: LoadedModel, batch_threads: int
) -> dict[str, Any]:
    """Rows of the file already stored are returned as stored; only the others are written."""
    source_file, rows = request.source_file, request.source_rows
    assert source_file is not None and rows is not None
    store.lock_source_file(conn, source_file)
    existing = store.stored_rows(conn, source_file=source_file, rows=rows)
    conflicts = [
        (i, row)
        for i, (row, record) in enumerate(zip(rows, request.records, strict=True))
        if row in existing and existing[row]["features"] != record
    ]
    if conflicts:
        # Answering with the stored prediction would silently drop the new data.
        raise RequestError(
            409,
            f"{len(conflicts)} rows of {source_file!r} are already stored with other features; "
            "nothing was stored (a file's rows are predicted once: send a new file name)",
            [
                FieldError(
                    i,
                    "source_rows",
                    row,
                    f"row {row} of {source_file!r} is stored with other features",
                )
                for i, row in conflicts
            ],
        )
    missing = [i for i, row in enumerate(rows) if row not in existing]
    inserted: list[dict[str, Any]] = []
    if missing:
        inserted = store.insert_predictions(
            conn,
            source="scheduled",
            model_version=model.version,
            source_file=source_file,
            predictions=_new_predictions(
                model,
                [request.records[i] for i in missing],
                request.matrix[missing],
                rows=[rows[i] for i in missing],
                batch_threads=batch_threads,
            ),
            count=len(missing),
        )
    by_row = existing | {p["source_row"]: p for p in inserted}
    return {
        "model_version": model.version,
        "stored": len(inserted),
        "already_stored": len(rows) - len(inserted),
        "predictions": [by_row[row] for row in rows],
    }


def check_idempotency_key(raw: str | None) -> str | None:
    """The Idempotency-Key header: 1 to 255 visible ASCII characters, or absent (None)."""
    if raw is None:
        return None
    if not 1 <= len(raw) <= MAX_IDEMPOTENCY_KEY_CHARS or not all("!" <= c <= "~" for c in raw):
        raise RequestError(
            422,
            "Idempotency-Key must be 1 to 255 visible ASCII characters (no spaces); "
            "nothing was stored",
            [FieldError(None, "Idempotency-Key", raw[:100], "is not a valid key")],
        )
    return raw


def _predict_keyed(
    conn, request: PredictRequest, model: LoadedModel, key: str, batch_threads: int
) -> dict[str, Any]:
    """A request sent again with its key gets the predictions stored the first time."""
    digest = hashlib.sha256(orjson.dumps(request.records)).digest()
    if not store.claim_idempotency_key(conn, key, digest):
        stored_digest, predictions = store.keyed_request(conn, key)
        if stored_digest != digest or len(predictions) != len(request.records):
            raise RequestError(
                409,
                f"Idempotency-Key {key[:100]!r} was used before for other records; nothing was "
                "stored (a new request needs a new key)",
                [FieldError(None, "Idempotency-Key", key[:100], "was used for other records")],
            )
        return {
            "model_version": predictions[0]["model_version"],
            "stored": 0,
            "already_stored": len(predictions),
            "predictions": predictions,
        }
    inserted = store.insert_predictions(
        conn,
        source=request.source,
        model_version=model.version,
        predictions=_new_predictions(
            model, request.records, request.matrix, batch_threads=batch_threads
        ),
        count=len(request.records),
    )
    store.set_key_predictions(conn, key, [p["id"] for p in inserted])
    return {
        "model_version": model.version,
        "stored": len(inserted),
        "already_stored": 0,
        "predictions": inserted,
    }


# --- past predictions ---------------------------------------------------------------------
def parse_instant(name: str, raw: str, *, end: bool) -> datetime | None:
    """An ISO date or datetime as a UTC instant bound; a date as `end` covers its whole day.

    Returns an inclusive lower bound for `start` and an exclusive upper bound for `end`
    (timestamps are stored to the microsecond, so "up to and including t" is "< t + 1 µs").
    At the ends of the calendar the bound is clamped, never an error: an `end` past
    9999-12-31 (the day after it, a zone east of UTC) means no upper bound (None), a `start`
    before 0001-01-01 UTC no lower bound (None); the other two clamp to the last or first
    representable instant, which no stored prediction passes.
    """
    text = raw.strip()
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), time.min, tzinfo=UTC)
            if end:
                moment += timedelta(days=1)
        else:
            moment = datetime.fromisoformat(text)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)  # documented: times without a zone are UTC
            moment = moment.astimezone(UTC)
            if end:
                moment += timedelta(microseconds=1)
    except ValueError:
        raise RequestError(
            422,
            f"{name} must be an ISO date (2026-11-26) or datetime (2026-11-26T07:00:00Z)",
            [FieldError(None, name, raw[:100], "is not an ISO date or datetime")],
        ) from None
    except OverflowError:  # beyond year 1 or 9999 once in UTC, or the day after 9999-12-31
        if text.startswith("9999"):  # only years 1 and 9999 can overflow
            return None if end else datetime.max.replace(tzinfo=UTC)
        return datetime.min.replace(tzinfo=UTC) if end else None
    return moment


def encode_cursor(created_at: datetime, pid: int) -> str:
    raw = orjson.dumps([created_at.isoformat(), pid])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        ts, pid = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        moment = datetime.fromisoformat(ts)
        if type(pid) is not int or moment.tzinfo is None:
            raise ValueError(cursor)
    except (ValueError, TypeError, UnicodeEncodeError, binascii.Error, orjson.JSONDecodeError):
        raise RequestError(
            422,
            "cursor is not one this service issued: pass next_cursor from the previous page as it is",
            [FieldError(None, "cursor", cursor[:100], "is not a valid cursor")],
        ) from None
    return moment, pid


def past_query(
    *,
    start: str | None,
    end: str | None,
    source: str,
    limit: int,
    cursor: str | None,
    max_limit: int,
) -> store.PastQuery:
    """Check and convert the query parameters of `/past-predictions`."""
    errors: list[FieldError] = []
    if source not in PAST_SOURCES:
        errors.append(
            FieldError(None, "source", source[:100], "must be 'webapp', 'scheduled' or 'all'")
        )
    if not 1 <= limit <= max_limit:
        errors.append(FieldError(None, "limit", shown(limit), f"must be between 1 and {max_limit}"))
    if errors:
        raise RequestError(
            422, "invalid query parameters: " + ", ".join(str(e.field) for e in errors), errors
        )
    lower = parse_instant("start", start, end=False) if start else None
    upper = parse_instant("end", end, end=True) if end else None
    if lower is not None and upper is not None and lower >= upper:
        raise RequestError(
            422,
            f"start ({start}) is after end ({end})",
            [FieldError(None, "start", start, "must not be after end")],
        )
    return store.PastQuery(
        start=lower,
        end_before=upper,
        source=None if source == "all" else source,
        limit=limit,
        after=decode_cursor(cursor) if cursor else None,
    )


def past_predictions(db: Database, query: store.PastQuery) -> dict[str, Any]:
    """One page, newest first, and the cursor of the next page (None on the last one)."""
    page = dataclasses.replace(query, limit=query.limit + 1)  # one more: is there a next page?
    rows = db.transaction(lambda conn: store.past_predictions(conn, page))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
    return {"items": rows, "next_cursor": next_cursor}
