"""The ledger of good_data files the prediction DAG has handled (table `predicted_files`).

A file is recorded once its fate is settled: `done` after every row is stored, `failed` when
the API refused its data or it cannot be read. `rows` is how many of its rows have a stored
prediction (all of them for `done`). Recording is an upsert keyed by file name, so that a
retried task overwrites instead of failing. To predict a failed file again, delete its row.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import psycopg2

DONE, FAILED = "done", "failed"

UPSERT = """
INSERT INTO predicted_files (file_name, status, rows, reason)
VALUES (%(file_name)s, %(status)s, %(rows)s, %(reason)s)
ON CONFLICT (file_name) DO UPDATE SET
    status = EXCLUDED.status, rows = EXCLUDED.rows, reason = EXCLUDED.reason,
    recorded_at = now()
"""


@contextmanager
def connect(dsn: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection that commits on success, rolls back on error, and is always closed."""
    conn = psycopg2.connect(dsn)
    try:
        with conn:
            yield conn
    finally:
        conn.close()


def recorded(dsn: str, names: Iterable[str]) -> set[str]:
    """Which of `names` the ledger holds (done or failed)."""
    names = list(names)
    if not names:
        return set()
    with connect(dsn) as conn, conn.cursor() as cur:
        # Asks only about the candidates: the ledger grows forever, the folder listing does not
        # need all of it.
        cur.execute("SELECT file_name FROM predicted_files WHERE file_name = ANY(%s)", (names,))
        return {row[0] for row in cur.fetchall()}


def record(dsn: str, *, file_name: str, status: str, rows: int, reason: str | None = None) -> None:
    if status not in (DONE, FAILED):
        raise ValueError(f"status must be {DONE!r} or {FAILED!r}, got {status!r}")
    with connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            UPSERT, {"file_name": file_name, "status": status, "rows": rows, "reason": reason}
        )
