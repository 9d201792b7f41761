"""SQL of the service: storing predictions exactly once, reading them back page by page.

Functions take an open psycopg2 connection inside a transaction (`Database.transaction`
commits); every value travels as a bound parameter or through COPY, never in the SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson

# From this many rows on, COPY beats one INSERT ... RETURNING per row.
COPY_THRESHOLD = 20
# Rows per piece of a streamed COPY: small enough to overlap prediction with ingestion.
COPY_CHUNK_ROWS = 500
_COLUMNS = (
    "id, created_at, source, features, prediction, probability, model_version, source_file,"
    " source_row, unseen_features"
)


class NewPrediction(NamedTuple):
    """A prediction to store (a NamedTuple: built once per row, also on the single-row path)."""

    features: dict[str, Any]
    prediction: str
    probability: float
    source_row: int | None = None
    # Features whose value no training row had (mlsys.training_values), in feature order.
    unseen_features: tuple[str, ...] = ()


def array_literal(names: tuple[str, ...] | list[str]) -> str:
    """A PostgreSQL text[] literal of `names` (each quoted: any character is safe)."""
    if not names:
        return "{}"
    quoted = (n.replace("\\", "\\\\").replace('"', '\\"') for n in names)
    return "{" + ",".join(f'"{n}"' for n in quoted) + "}"


class StoredConflict(Exception):
    """Rows of a file are already stored with other features than the ones sent again."""

    def __init__(self, rows: list[int]):
        super().__init__(rows)
        self.rows = rows


def _row_dict(row: tuple) -> dict[str, Any]:
    (pid, created_at, source, features, prediction, probability, version, source_file,
     source_row, unseen) = row  # fmt: skip
    return {
        "id": pid,
        "created_at": created_at,
        "source": source,
        "features": features,
        "prediction": prediction,
        "probability": probability,
        "model_version": version,
        "source_file": source_file,
        "source_row": source_row,
        "unseen_features": unseen,
    }


def _copy_text(value: str) -> str:
    """Escape a value for COPY's text format (backslash, tab, newline, carriage return)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return value


INSERT_ONE_SQL = """INSERT INTO predictions (source, features, prediction, probability,
                                         model_version, source_file, source_row, unseen_features)
                 VALUES (%s, %s, %s, %s, %s, %s, %s, %s::text[]) RETURNING id, created_at"""


def insert_one_params(
    p: NewPrediction, source: str, model_version: str, source_file: str | None = None
) -> tuple:
    return (
        source,
        orjson.dumps(p.features).decode(),
        p.prediction,
        p.probability,
        model_version,
        source_file,
        p.source_row,
        list(p.unseen_features),
    )


def stored_dict(
    pid: int,
    created_at: datetime,
    p: NewPrediction,
    *,
    source: str,
    model_version: str,
    source_file: str | None = None,
) -> dict[str, Any]:
    """A prediction as the API returns it once stored."""
    return {
        "id": pid,
        "created_at": created_at,
        "source": source,
        "features": p.features,
        "prediction": p.prediction,
        "probability": p.probability,
        "model_version": model_version,
        "source_file": source_file,
        "source_row": p.source_row,
        "unseen_features": list(p.unseen_features),
    }


def insert_predictions(
    conn,
    *,
    source: str,
    model_version: str,
    predictions: Iterable[NewPrediction],
    count: int,
    source_file: str | None = None,
) -> list[dict[str, Any]]:
    """Insert `count` new predictions; returns them as stored (id, created_at), in order.

    `predictions` may be lazy: above COPY_THRESHOLD rows they are consumed while COPY
    streams, so PostgreSQL ingests one chunk while the next one is being predicted.
    """
    if count == 0:
        return []
    out: list[dict[str, Any]] = []

    def stored(pid: int, created_at: datetime, p: NewPrediction) -> dict[str, Any]:
        return stored_dict(
            pid, created_at, p, source=source, model_version=model_version, source_file=source_file
        )

    with conn.cursor() as cur:
        if count < COPY_THRESHOLD:
            for p in predictions:
                cur.execute(
                    INSERT_ONE_SQL, insert_one_params(p, source, model_version, source_file)
                )
                out.append(stored(*cur.fetchone(), p))
            return out
        # COPY cannot return the ids, so take them from the sequence first; `now()` is the
        # transaction's start, the same value the column default gives every row.
        cur.execute(
            "SELECT now(), array(SELECT nextval('predictions_id_seq') FROM generate_series(1, %s))",
            (count,),
        )
        created_at, ids = cur.fetchone()
        head = f"\t{_copy_text(source)}\t"
        tail = f"\t{_copy_text(model_version)}\t" + (
            "\\N" if source_file is None else _copy_text(source_file)
        )
        dumps = orjson.dumps

        def chunks() -> Iterator[str]:
            lines: list[str] = []
            for pid, p in zip(ids, predictions, strict=True):
                out.append(stored(pid, created_at, p))
                row = "\\N" if p.source_row is None else str(p.source_row)
                unseen = _copy_text(array_literal(p.unseen_features))
                lines.append(
                    f"{pid}{head}{_copy_text(dumps(p.features).decode())}\t"
                    f"{_copy_text(p.prediction)}\t{p.probability!r}{tail}\t{row}\t{unseen}\n"
                )
                if len(lines) == COPY_CHUNK_ROWS:
                    yield "".join(lines)
                    lines = []
            if lines:
                yield "".join(lines)

        cur.copy_expert(
            "COPY predictions (id, source, features, prediction, probability, model_version,"
            " source_file, source_row, unseen_features) FROM STDIN",
            _ChunkReader(chunks()),
        )
    return out


class _ChunkReader:
    """A file-like object over an iterator of strings, for `copy_expert`: psycopg2 sends
    whatever each read() returns, so a read is one whole chunk."""

    def __init__(self, chunks: Iterator[str]):
        self._chunks = chunks

    def read(self, size: int = -1) -> str:
        return next(self._chunks, "")

    def readline(self, size: int = -1) -> str:
        return self.read()


def lock_source_file(conn, source_file: str) -> None:
    """Serialise concurrent calls for one file until COMMIT (a retried DAG run racing itself)."""
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (source_file,))


def stored_rows(conn, *, source_file: str, rows: list[int]) -> dict[int, dict[str, Any]]:
    """The predictions already stored for these rows of a file, by row."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {_COLUMNS} FROM predictions WHERE source_file = %s AND source_row = ANY(%s)",
            (source_file, rows),
        )
        return {d["source_row"]: d for d in map(_row_dict, cur.fetchall())}


def claim_idempotency_key(conn, key: str, digest: bytes) -> bool:
    """True if this transaction took `key` first; False if a committed request holds it.

    A concurrent transaction holding the same key makes the INSERT wait for its end (the
    primary key's lock), so two resends racing each other cannot both store.
    """
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO idempotent_requests (idempotency_key, request_sha256) VALUES (%s, %s)
               ON CONFLICT (idempotency_key) DO NOTHING RETURNING 1""",
            (key, digest),
        )
        return cur.fetchone() is not None


def set_key_predictions(conn, key: str, ids: list[int]) -> None:
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE idempotent_requests SET prediction_ids = %s WHERE idempotency_key = %s",
            (ids, key),
        )


def keyed_request(conn, key: str) -> tuple[bytes, list[dict[str, Any]]]:
    """The digest a key was stored with, and its predictions in the request's order."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT request_sha256, prediction_ids FROM idempotent_requests"
            " WHERE idempotency_key = %s",
            (key,),
        )
        digest, ids = cur.fetchone()
        cur.execute(f"SELECT {_COLUMNS} FROM predictions WHERE id = ANY(%s)", (ids,))
        by_id = {r[0]: _row_dict(r) for r in cur.fetchall()}
    return bytes(digest), [by_id[i] for i in ids if i in by_id]


def ping(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()


@dataclass(frozen=True)
class PastQuery:
    start: datetime | None  # inclusive
    end_before: datetime | None  # exclusive
    source: str | None  # None: every source
    limit: int
    after: tuple[datetime, int] | None = None  # keyset: rows strictly older than this


# psycopg2 binds the values client-side, so the planner sees constants and drops the
# `IS NULL OR` branches that do not apply: one statement covers every filter combination.
PAST_SQL = f"""SELECT {_COLUMNS} FROM predictions
    WHERE (%(start)s::timestamptz IS NULL OR created_at >= %(start)s)
      AND (%(end)s::timestamptz IS NULL OR created_at < %(end)s)
      AND (%(source)s::text IS NULL OR source = %(source)s)
      AND (%(after_ts)s::timestamptz IS NULL OR (created_at, id) < (%(after_ts)s, %(after_id)s))
    ORDER BY created_at DESC, id DESC
    LIMIT %(limit)s"""


def past_params(q: PastQuery) -> dict[str, Any]:
    after_ts, after_id = q.after if q.after else (None, None)
    return {
        "start": q.start,
        "end": q.end_before,
        "source": q.source,
        "after_ts": after_ts,
        "after_id": after_id,
        "limit": q.limit,
    }


def past_predictions(conn, q: PastQuery) -> list[dict[str, Any]]:
    """Newest first, keyset-paginated on (created_at, id), served by the two time indexes."""
    with conn.cursor() as cur:
        cur.execute(PAST_SQL, past_params(q))
        return [_row_dict(r) for r in cur.fetchall()]
