"""Database access of the service: a small thread pool where each thread owns a connection.

Blocking work (psycopg2, and the validation and prediction around it) runs in a dedicated
executor of API_DB_POOL_SIZE threads, each with its own connection: the pool of connections
can then never be smaller than the pool of threads (a smaller psycopg2 pool was measured failing
requests with "pool exhausted" under FastAPI's 40-thread default pool), and the event loop
stays free to accept requests.

A lost connection is dropped and the next call opens a new one, so the service recovers by
itself when the database comes back. A call that fails on a reused connection before COMMIT
is retried once on a fresh one: the server restarted in between, nothing was written.

A database that hangs instead of dying (a frozen VM, a network partition) never closes the
socket, and `statement_timeout` is enforced by the very server that hangs. So every call has
a client-side bound (`request_timeout_s`): past it the request gets a 503, and the socket of
the connection it was using is shut down, which ends the blocked libpq call in its thread
(the thread would otherwise be lost for as long as the server hangs). Against a remote server
TCP keepalives and TCP_USER_TIMEOUT also end the connection within about that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import socket
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


# SQLSTATE classes meaning "the database cannot do it now", not "this request is wrong":
# 08 connection exception, 53 insufficient resources (disk full, out of memory, too many
# connections), 57 operator intervention (query canceled, admin shutdown, cannot connect now),
# 58 system error (I/O error). They are answered 503, never 500.
UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57", "58"})


def is_unavailable_sqlstate(code: str | None) -> bool:
    return bool(code) and code[:2] in UNAVAILABLE_SQLSTATE_CLASSES


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
        request_timeout_s: float = 10.0,
    ):
        self.dsn = psycopg2_dsn(url)
        self.request_timeout_s = request_timeout_s
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self.statement_timeout_ms = statement_timeout_ms
        self.synchronous_commit = synchronous_commit
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="db")
        self._local = threading.local()
        self._all: set[Connection] = set()
        self._all_lock = threading.Lock()
        # The connection each executor thread is using, to cut it when a call overruns.
        self._conn_of_thread: dict[int, Connection] = {}
        # Threads whose connection was cut: their failing call must not be retried.
        self._cut_threads: set[int] = set()

    # --- connections (one per executor thread) ------------------------------------------
    def _connect(self) -> Connection:
        try:
            conn = psycopg2.connect(
                self.dsn,
                connect_timeout=self.connect_timeout_s,
                application_name="mlsys-service",
                # A server that stops answering (partition, frozen VM) is noticed by TCP:
                # keepalives when idle, TCP_USER_TIMEOUT for unacknowledged data (ms).
                # Both are ignored on a unix socket, which cannot be partitioned.
                keepalives=1,
                keepalives_idle=max(1, int(self.request_timeout_s / 2)),
                keepalives_interval=1,
                keepalives_count=max(1, int(self.request_timeout_s / 2)),
                tcp_user_timeout=int(self.request_timeout_s * 1000),
                # UTC so that every timestamp we return reads the same on every machine.
                options=f"-c timezone=UTC -c statement_timeout={self.statement_timeout_ms}"
                + ("" if self.synchronous_commit else " -c synchronous_commit=off"),
            )
        except psycopg2.Error as exc:
            raise DatabaseUnavailable(f"the database is unreachable: {first_line(exc)}") from exc
        with self._all_lock:
            self._all.add(conn)
            self._conn_of_thread[threading.get_ident()] = conn
        return conn

    def _drop(self, conn: Connection) -> None:
        self._local.conn = None
        with self._all_lock:
            self._all.discard(conn)
            if self._conn_of_thread.get(threading.get_ident()) is conn:
                del self._conn_of_thread[threading.get_ident()]
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
                    with self._all_lock:
                        cut = threading.get_ident() in self._cut_threads
                        self._cut_threads.discard(threading.get_ident())
                    if reused and attempt == 1 and not single_statement and not cut:
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
    async def call(self, fn: Callable[..., T], *args: Any, timeout_s: float | None = None) -> T:
        """Run `fn(*args)` in one of the database threads and await its result.

        Waits at most `timeout_s` (default: `request_timeout_s`), then raises
        `DatabaseUnavailable`: `maybe_stored=False` if `fn` had not started (it never will),
        True if it was running (its connection is then cut: see the module's docstring).
        """
        timeout = self.request_timeout_s if timeout_s is None else timeout_s
        thread: list[int] = []

        def run() -> T:
            thread.append(threading.get_ident())
            return fn(*args)

        future = self._executor.submit(run)
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
        except TimeoutError:
            if future.cancel():
                raise DatabaseUnavailable(
                    f"no database thread was free within {timeout:g} s (the database is slow "
                    "or not answering)"
                ) from None
            if thread and not future.done():
                self._cut(thread[0])
            raise DatabaseUnavailable(
                f"the database did not answer within {timeout:g} s", maybe_stored=True
            ) from None

    def _cut(self, thread: int) -> None:
        """Shut down the socket of `thread`'s connection, so its blocked call returns."""
        with self._all_lock:
            conn = self._conn_of_thread.get(thread)
        if conn is None or conn.closed:
            return
        with self._all_lock:
            self._cut_threads.add(thread)
        # A duplicate of the descriptor: shutdown acts on the socket they share, and closing
        # the duplicate leaves libpq's descriptor to libpq.
        with (
            contextlib.suppress(OSError, psycopg2.Error),
            socket.socket(fileno=os.dup(conn.fileno())) as sock,
        ):
            sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._all_lock:
            conns, self._all = list(self._all), set()
        for conn in conns:
            with contextlib.suppress(psycopg2.Error):
                conn.close()
