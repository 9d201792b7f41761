"""Group commit (`service.group_commit.GroupWriter`) against the real PostgreSQL.

The writer is called directly, as the service's event loop calls it: concurrent requests
must share transactions, each must get exactly its own rows back, in order, and a request
that the database refuses must not take the others of its group down with it.
"""

from __future__ import annotations

import asyncio

import asyncpg
import psycopg2
import pytest

from mlsys.config import libpq_url as asyncpg_dsn  # what GroupWriter gives asyncpg
from mlsys.db import psycopg2_dsn
from ops import pg
from service.db import DatabaseUnavailable
from service.group_commit import GroupWriter, Row


def writer_for(url: str, **kw) -> GroupWriter:
    options = {"max_group_rows": 1000, "connect_timeout_s": 2, "statement_timeout_ms": 10_000}
    return GroupWriter(url, **(options | kw))


def rows_for(request: int, count: int) -> list[Row]:
    return [
        Row("webapp", {"request": request, "row": k}, "good", (request % 10) / 10, "test-v1")
        for k in range(count)
    ]


def stored(database_url: str, ids: list[int]) -> dict[int, tuple]:
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id, created_at, features, probability FROM predictions WHERE id = ANY(%s)",
            (ids,),
        )
        return {r[0]: r[1:] for r in cur.fetchall()}


async def write_concurrently(writer: GroupWriter, requests: list[list[Row]]):
    try:
        return await asyncio.gather(*(writer.write(r) for r in requests), return_exceptions=True)
    finally:
        await writer.close()


def test_concurrent_requests_share_transactions_and_each_gets_its_own_rows(database_url):
    requests = [rows_for(i, 1 + i % 3) for i in range(40)]
    writer = writer_for(database_url)
    results = asyncio.run(write_concurrently(writer, requests))

    all_ids = [pid for result in results for pid, _ in result]
    assert len(all_ids) == len(set(all_ids)) == sum(len(r) for r in requests)
    rows = stored(database_url, all_ids)
    for request, result in zip(requests, results, strict=True):
        assert len(result) == len(request)
        for row, (pid, created_at) in zip(request, result, strict=True):
            # each request gets back exactly its rows, in its order, as they were committed
            assert rows[pid] == (created_at, row.features, row.probability)
    # 40 requests handed over at once were written in far fewer transactions (rows of one
    # transaction share now()), and the writer counted the same.
    transactions = {created_at for created_at, *_ in rows.values()}
    assert writer.requests == 40
    assert len(transactions) == writer.groups < 10


def test_a_group_never_exceeds_the_row_limit_but_a_large_request_stays_whole(database_url):
    requests = [rows_for(100 + i, 2) for i in range(9)] + [rows_for(200, 7)]
    writer = writer_for(database_url, max_group_rows=5)
    results = asyncio.run(write_concurrently(writer, requests))

    sizes: dict = {}
    for created_at, *_ in stored(database_url, [p for r in results for p, _ in r]).values():
        sizes[created_at] = sizes.get(created_at, 0) + 1
    assert sorted(sizes.values()) == [2, 4, 4, 4, 4, 7]


def test_a_request_the_database_refuses_fails_alone(database_url):
    good = [rows_for(300 + i, 2) for i in range(4)]
    # probability 2.0 breaks the table's CHECK: the group's statement fails as a whole
    bad = [Row("webapp", {"request": "bad"}, "good", 2.0, "test-v1")]
    writer = writer_for(database_url)
    results = asyncio.run(write_concurrently(writer, [good[0], good[1], bad, good[2], good[3]]))

    refused = results[2]
    assert isinstance(refused, asyncpg.exceptions.CheckViolationError)
    accepted = [r for i, r in enumerate(results) if i != 2]
    ids = [pid for result in accepted for pid, _ in result]
    assert len(stored(database_url, ids)) == 8  # every good row is stored, once
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM predictions WHERE features->>'request' = 'bad'")
        assert cur.fetchone()[0] == 0


def test_an_unreachable_database_is_database_unavailable_and_nothing_is_stored():
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{pg.free_port()}/mlsys"
    writer = writer_for(url, connect_timeout_s=1)
    [result] = asyncio.run(write_concurrently(writer, [rows_for(400, 1)]))
    assert isinstance(result, DatabaseUnavailable)
    assert not result.maybe_stored
    assert "unreachable" in str(result)


def test_a_closed_writer_refuses_new_rows(database_url):
    async def scenario():
        writer = writer_for(database_url)
        await writer.write(rows_for(500, 1))
        await writer.close()
        with pytest.raises(DatabaseUnavailable, match="shutting down"):
            await writer.write(rows_for(501, 1))

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg2://u:p@h:5/db", "postgresql://u:p@h:5/db"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
    ],
)
def test_urls_are_converted_for_asyncpg(url, expected):
    assert asyncpg_dsn(url) == expected


def test_a_url_of_another_database_is_refused():
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        asyncpg_dsn("mysql://u:secret@h/db")
