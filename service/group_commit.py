"""Group commit: the predictions of concurrent small requests written by one statement.

A single prediction's cost is dominated by its durable COMMIT and by the round trip to the
database, not by the model. `GroupWriter` runs on the event loop (asyncpg, no threads): a
request hands its rows over and awaits them; one flusher task writes everything handed over
while the previous write was in flight as ONE `INSERT ... SELECT FROM unnest(...)` in
autocommit, i.e. one transaction and one WAL flush for the whole group, and only then answers
each request. Nothing waits on purpose: a lone request is written at once; under load, the
requests that arrive during one write form the next group.

Semantics are the same as one transaction per request:
- every prediction is committed (durably, unless synchronous_commit is off) before its answer;
- a request's rows are all written or none: the group is one statement. If that statement
  fails for a reason other than the connection (it should not: rows are validated before),
  each request is written again on its own, so that one bad request cannot fail the others;
- the connection lost during the write: whether it committed is unknown, so each request of
  the group gets `DatabaseUnavailable(maybe_stored=True)`; lost before: `maybe_stored=False`.
  The next group opens a new connection, so the service recovers by itself.
- a database that hangs (frozen, partitioned) cannot hold a request: each waits at most
  `request_timeout_s` (503; "nothing stored" if its rows were still queued, "may or may not
  be stored" if they were being written), and a statement is abandoned after that time
  (asyncpg's command_timeout; the connection is then dropped, the next group opens a new one).
- errors of the SQLSTATE classes that mean "unavailable" (disk full, too many connections,
  shutdown; `service.db.is_unavailable_sqlstate`) are a 503 for every request of the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import orjson

from mlsys.config import libpq_url
from service.db import DatabaseUnavailable, first_line, is_unavailable_sqlstate
from service.store import array_literal

log = logging.getLogger("service.group_commit")

# Rows are ordered by the sequence, i.e. in the order unnest produced them (the arrays' order).
# unseen_features travel as text[] literals (unnest cannot take an array of ragged arrays).
INSERT_GROUP_SQL = """INSERT INTO predictions
    (source, features, prediction, probability, model_version, unseen_features)
SELECT s, f::jsonb, p, pr, v, u::text[]
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::text[])
    AS t(s, f, p, pr, v, u)
RETURNING id, created_at"""


class Row(NamedTuple):
    """One prediction to store (the columns a webapp prediction has)."""

    source: str
    features: dict[str, Any]
    prediction: str
    probability: float
    model_version: str
    unseen_features: tuple[str, ...] = ()


@dataclass
class _Pending:
    rows: Sequence[Row]
    done: asyncio.Future[list[tuple[int, datetime]]] = field(repr=False)


class GroupWriter:
    def __init__(
        self,
        url: str,
        *,
        max_group_rows: int,
        connect_timeout_s: float,
        statement_timeout_ms: int,
        synchronous_commit: bool = True,
        request_timeout_s: float = 10.0,
    ):
        self.dsn = libpq_url(url)
        self.request_timeout_s = request_timeout_s
        self.max_group_rows = max_group_rows
        self.connect_timeout_s = connect_timeout_s
        self.server_settings = {
            "application_name": "mlsys-service-group",
            "timezone": "UTC",
            "statement_timeout": str(statement_timeout_ms),
            "synchronous_commit": "on" if synchronous_commit else "off",
        }
        self._pending: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closed = False
        # Figures for the benchmark and the tests: how many groups, how many requests.
        self.groups = 0
        self.requests = 0

    async def write(self, rows: Sequence[Row]) -> list[tuple[int, datetime]]:
        """Store `rows` (one request's, all or none); their (id, created_at) once committed."""
        if self._closed:
            raise DatabaseUnavailable("the service is shutting down; nothing was stored")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._flush_forever(_Link()))
        done: asyncio.Future[list[tuple[int, datetime]]] = (
            asyncio.get_running_loop().create_future()
        )
        pending = _Pending(rows, done)
        self._pending.append(pending)
        self._wakeup.set()
        # A timer rather than asyncio.wait_for(shield(...)): the same bound for a third of
        # the cost (2 against 7 us, on every single prediction).
        timer = asyncio.get_running_loop().call_later(self.request_timeout_s, self._expire, pending)
        try:
            return await done
        finally:
            timer.cancel()

    def _expire(self, pending: _Pending) -> None:
        """The request waited `request_timeout_s`: answer it now (a later result is dropped)."""
        queued = pending in self._pending
        if queued:
            self._pending.remove(pending)  # never written, and no longer waited for
        _fail(
            pending,
            DatabaseUnavailable(
                f"the database did not answer within {self.request_timeout_s:g} s",
                maybe_stored=not queued,
            ),
        )

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for p in self._pending:
            _fail(p, DatabaseUnavailable("the service is shutting down; nothing was stored"))

    # --- the flusher --------------------------------------------------------------------
    def _take_group(self) -> list[_Pending]:
        """The oldest pending requests, up to max_group_rows rows (always at least one)."""
        group, rows = [], 0
        while self._pending:
            nxt = self._pending[0]
            if group and rows + len(nxt.rows) > self.max_group_rows:
                break
            group.append(self._pending.popleft())
            rows += len(nxt.rows)
        return group

    async def _flush_forever(self, link: _Link) -> None:
        try:
            while True:
                while not self._pending:
                    self._wakeup.clear()
                    await self._wakeup.wait()
                # One turn of the event loop: requests whose bytes arrived in the same batch of
                # socket events join this group instead of waiting for the next one.
                await asyncio.sleep(0)
                group = self._take_group()
                try:
                    await self._flush(link, group)
                except asyncio.CancelledError:
                    for p in group:
                        _fail(
                            p,
                            DatabaseUnavailable("the service is shutting down", maybe_stored=True),
                        )
                    raise
                except Exception as exc:  # a bug: never leave a request waiting forever
                    log.exception("group commit failed")
                    for p in group:
                        _fail(p, exc)
        finally:
            await link.close()

    async def _connect(self, link: _Link) -> asyncpg.Connection:
        if link.conn is not None and not link.conn.is_closed():
            return link.conn
        link.conn = None
        try:
            link.conn = await asyncpg.connect(
                self.dsn,
                timeout=self.connect_timeout_s,
                # client side: the server's statement_timeout cannot fire if it hangs
                command_timeout=self.request_timeout_s,
                server_settings=self.server_settings,
            )
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise DatabaseUnavailable(f"the database is unreachable: {first_line(exc)}") from exc
        return link.conn

    async def _insert(self, link: _Link, rows: Sequence[Row]) -> list[tuple[int, datetime]]:
        conn = await self._connect(link)
        dumps = orjson.dumps
        try:
            # One statement in autocommit: one transaction, committed before it returns.
            stored = await conn.fetch(
                INSERT_GROUP_SQL,
                [r.source for r in rows],
                [dumps(r.features).decode() for r in rows],
                [r.prediction for r in rows],
                [r.probability for r in rows],
                [r.model_version for r in rows],
                [array_literal(r.unseen_features) for r in rows],
            )
        except (OSError, asyncpg.exceptions.ConnectionDoesNotExistError,
                asyncpg.exceptions.InterfaceError) as exc:  # fmt: skip
            link.drop()
            # The statement may have reached the server and committed before the break.
            raise DatabaseUnavailable(
                f"lost the database connection: {first_line(exc)}", maybe_stored=True
            ) from exc
        except TimeoutError as exc:  # command_timeout: the server hangs, or is very slow
            link.drop()
            raise DatabaseUnavailable(
                f"the database did not answer within {self.request_timeout_s:g} s",
                maybe_stored=True,
            ) from exc
        except asyncpg.PostgresError as exc:
            if not is_unavailable_sqlstate(exc.sqlstate):
                raise
            # The server refused the statement (disk full, shutting down, canceled): nothing
            # was written. Connection-level trouble: start afresh with the next group.
            link.drop()
            raise DatabaseUnavailable(
                f"the database did not complete the request: {first_line(exc)}"
            ) from exc
        # RETURNING gives the rows in insertion order; ids come from the sequence in that
        # order, so sorting by id is a cheap guarantee of the arrays' order.
        result = sorted((r[0], r[1]) for r in stored)
        if len(result) != len(rows):
            raise RuntimeError(f"stored {len(result)} rows for {len(rows)}")
        return result

    async def _flush(self, link: _Link, group: list[_Pending]) -> None:
        rows = [row for p in group for row in p.rows]
        self.groups += 1
        self.requests += len(group)
        try:
            stored = await self._insert(link, rows)
        except DatabaseUnavailable as exc:
            for p in group:
                _fail(p, exc)
            return
        except asyncpg.PostgresError as exc:
            if len(group) == 1:
                # Validated rows refused by the database: a bug, which the route logs (500).
                _fail(group[0], exc)
                return
            # One request's rows made the whole statement fail (nothing was written): write
            # each request alone, so that only the guilty one gets the error.
            for p in group:
                try:
                    _succeed(p, await self._insert(link, p.rows))
                except (DatabaseUnavailable, asyncpg.PostgresError) as exc:
                    _fail(p, exc)
            return
        start = 0
        for p in group:
            stop = start + len(p.rows)
            _succeed(p, stored[start:stop])
            start = stop


class _Link:
    """One flusher's connection (opened on first use, and again after it was lost)."""

    conn: asyncpg.Connection | None = None

    def drop(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.terminate()

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except Exception:
                conn.terminate()


def _succeed(p: _Pending, stored: list[tuple[int, datetime]]) -> None:
    if not p.done.done():  # a request whose client went away is cancelled
        p.done.set_result(stored)


def _fail(p: _Pending, exc: BaseException) -> None:
    if not p.done.done():
        p.done.set_exception(exc)
