"""Database access of the service: a small thread pool where each thread owns a connection.

Blocking work (psycopg2, and the validation and prediction around it) runs in a dedicated
executor of API_DB_POOL_SIZE threads, each with its own connection: the pool of connections
can then never be smaller than the pool of threads (ARCHITECTURE.md measured "pool exhausted"
with FastAPI's 40-thread default pool), and the event loop stays free to accept requests.

A lost connection is dropped and the next call opens a new one, so the service recovers by
itself when the database comes back. A call that fails on a reused connection before COMMIT
is retried once on a fresh one: the server restarted in between, nothing was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg2
import psycopg2.extensions

from mlsys.db import psycopg2_dsn

T = TypeVar("T")
Connection = psycopg2.extensions.connection


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or did not answer in time (a 503, never a 500).

    `maybe_stored`: the connection broke during COMMIT, so whether it happened is unknown.
    """

    def __init__(self, message: str, *, maybe_stored: bool = False):
        super().__init__(message)
        self.maybe_stored = maybe_stored


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class Database:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int,
        connect_timeout_s: int,
        statement_timeout_ms: int,
        synchronous_commit: bool = True,
    ):
        self.dsn = psycopg2_dsn(url)
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_ms = statement_timeout_ms
        self.synchronous_commit = synchronous_commit
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="db")
        self._local = threading.local()
        self._all: set[Connection] = set()
        self._all_lock = threading.Lock()

    # --- connections (one per executor thread) ------------------------------------------
    def _connect(self) -> Connection:
        try:
            conn = psycopg2.connect(
                self.dsn,
                connect_timeout=self.connect_timeout_s,
                application_name="mlsys-service",
                # UTC so that every timestamp we return reads the same on every machine.
                options=f"-c timezone=UTC -c statement_timeout={self.statement_timeout_ms}"
                + ("" if self.synchronous_commit else " -c synchronous_commit=off"),
            )
        except psycopg2.Error as exc:
            raise DatabaseUnavailable(f"the database is unreachable: {first_line(exc)}") from exc
        with self._all_lock:
            self._all.add(conn)
        return conn

    def _drop(self, conn: Connection) -> None:
        self._local.conn = None
        with self._all_lock:
            self._all.discard(conn)
        with contextlib.suppress(psycopg2.Error):
            conn.close()

    def _connection(self) -> tuple[Connection, bool]:
        """This thread's connection (opened if needed) and whether it was used before.

        An idle connection whose socket is readable has been closed by the server (restart,
        admin command): it is dropped without a round trip, so the next statement does not
        fail on it.
        """
        conn = getattr(self._local, "conn", None)
        if conn is not None and (conn.closed or select.select([conn], [], [], 0)[0]):
            self._drop(conn)
            conn = None
        if conn is None:
            conn = self._local.conn = self._connect()
            return conn, False
        return conn, True

    def transaction(self, work: Callable[[Connection], T], *, single_statement: bool = False) -> T:
        """Run `work(conn)` in one transaction on this thread's connection, then commit.

        `single_statement`: `work` runs exactly one statement, sent in autocommit mode, which
        saves the separate COMMIT round trip (a single prediction's latency). Such a call is
        never retried: had the connection broken after the server received it, it might be
        committed already.

        Must run in one of our executor threads (see `call`). Database errors that mean "not
        reachable" or "too slow" become `DatabaseUnavailable`; others propagate after rollback.
        """
        for attempt in (1, 2):
            conn, reused = self._connection()
            conn.autocommit = single_statement
            try:
                result = work(conn)
            except (psycopg2.OperationalError, psycopg2.InterfaceError) as exc:
                if conn.closed:
                    self._drop(conn)
                    if reused and attempt == 1 and not single_statement:
                        continue  # broken before COMMIT: nothing was written, try a fresh one
                    # in autocommit the statement may have committed before the break
                    raise DatabaseUnavailable(
                        f"lost the database connection: {first_line(exc)}",
                        maybe_stored=single_statement,
                    ) from exc
                self._rollback(conn)
                # Still connected: a statement timeout or a server shutting down.
                raise DatabaseUnavailable(
                    f"the database did not complete the request: {first_line(exc)}"
                ) from exc
            except BaseException:
                self._rollback(conn)
                raise
            if single_statement:
                return result
            try:
                conn.commit()
            except psycopg2.Error as exc:
                # Whether the COMMIT reached the server is unknown: never retry it blindly.
                self._drop(conn)
                raise DatabaseUnavailable(
                    f"the database failed while committing: {first_line(exc)}", maybe_stored=True
                ) from exc
            return result
        raise AssertionError("unreachable")

    def _rollback(self, conn: Connection) -> None:
        try:
            conn.rollback()
        except psycopg2.Error:
            self._drop(conn)

    # --- running blocking work off the event loop ---------------------------------------
    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in one of the database threads and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._all_lock:
            conns, self._all = list(self._all), set()
        for conn in conns:
            with contextlib.suppress(psycopg2.Error):
                conn.close()
