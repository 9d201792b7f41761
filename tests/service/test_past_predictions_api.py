"""GET /past-predictions: filters, the end-day edge, pagination, bad parameters.

Rows are written straight into the service's database with chosen timestamps, in March 2020,
a month no other test writes to, so that each window holds exactly the rows of this module.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import psycopg2
import pytest

from mlsys.db import psycopg2_dsn
from service.openapi_docs import example_record
from tests.service.conftest import Api

T0 = datetime(2020, 3, 10, tzinfo=UTC)
# (created_at, source): three days, both sources, and the edges of 2020-03-11.
ROWS = [
    (T0 + timedelta(hours=h), "webapp" if h % 3 else "scheduled")
    for h in range(0, 72, 2)
] + [
    (datetime(2020, 3, 11, 23, 59, 59, 999999, tzinfo=UTC), "webapp"),  # last instant of the 11th
    (datetime(2020, 3, 12, 0, 0, 0, tzinfo=UTC), "webapp"),  # first instant of the 12th
    (datetime(2020, 3, 11, 0, 0, 0, tzinfo=UTC), "scheduled"),
]  # fmt: skip


@pytest.fixture(scope="module")
def stored(api: Api, spec) -> list[dict]:
    """The module's rows as the database holds them (id, created_at, source)."""
    out = []
    with psycopg2.connect(psycopg2_dsn(api.database_url)) as conn, conn.cursor() as cur:
        for i, (ts, source) in enumerate(ROWS):
            cur.execute(
                """INSERT INTO predictions (created_at, source, features, prediction, probability,
                                            model_version, source_file, source_row)
                   VALUES (%s, %s, %s, '1', 0.5, 'test', %s, %s) RETURNING id""",
                (
                    ts,
                    source,
                    orjson.dumps(example_record(spec, i)).decode(),
                    "past-predictions-test.csv" if source == "scheduled" else None,
                    i if source == "scheduled" else None,
                ),
            )
            out.append({"id": cur.fetchone()[0], "created_at": ts, "source": source})
    return out


def _newest_first(rows: list[dict]) -> list[int]:
    return [r["id"] for r in sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)]


def _ids(api: Api, **params) -> list[int]:
    answer = api.client.get("/past-predictions", params=params)
    assert answer.status_code == 200, answer.text
    return [item["id"] for item in answer.json()["items"]]


def test_a_date_as_end_includes_that_whole_day(api: Api, stored):
    ids = _ids(api, start="2020-03-11", end="2020-03-11", limit=1000)
    day = [r for r in stored if r["created_at"].date().isoformat() == "2020-03-11"]
    assert ids == _newest_first(day)
    last_instant = next(r["id"] for r in stored if r["created_at"].microsecond == 999999)
    first_of_next = next(
        r["id"] for r in stored if r["created_at"] == datetime(2020, 3, 12, tzinfo=UTC)
    )
    assert last_instant in ids and first_of_next not in ids


def test_a_datetime_as_end_is_inclusive_to_the_microsecond(api: Api, stored):
    ids = _ids(api, start="2020-03-11T00:00:00Z", end="2020-03-12T00:00:00+00:00", limit=1000)
    assert datetime(2020, 3, 12, tzinfo=UTC) in {r["created_at"] for r in stored if r["id"] in ids}
    assert ids == _newest_first(
        [r for r in stored if T0 + timedelta(days=1) <= r["created_at"] <= T0 + timedelta(days=2)]
    )


@pytest.mark.parametrize("source", ["webapp", "scheduled"])
def test_the_source_filter(api: Api, stored, source):
    ids = _ids(api, start="2020-03-01", end="2020-03-31", source=source, limit=1000)
    assert ids == _newest_first([r for r in stored if r["source"] == source])


def test_all_sources_newest_first_with_every_field(api: Api, stored):
    answer = api.client.get(
        "/past-predictions", params={"start": "2020-03-01", "end": "2020-03-31", "limit": 1000}
    )
    items = answer.json()["items"]
    assert [i["id"] for i in items] == _newest_first(stored)
    assert set(items[0]) == {
        "id", "created_at", "source", "features", "prediction", "probability", "model_version",
        "source_file", "source_row", "unseen_features",
    }  # fmt: skip
    assert items[0]["unseen_features"] == []
    assert answer.json()["next_cursor"] is None


@pytest.mark.parametrize("limit", [1, 7, 100])
def test_pages_follow_each_other_without_gap_or_repeat(api: Api, stored, limit):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"start": "2020-03-01", "end": "2020-03-31", "limit": limit}
        if cursor:
            params["cursor"] = cursor
        body = api.client.get("/past-predictions", params=params).json()
        assert len(body["items"]) <= limit
        seen += [i["id"] for i in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == _newest_first(stored)
    assert pages == -(-len(stored) // limit)  # no empty last page


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"source": "mobile"}, "source"),
        ({"start": "yesterday"}, "start"),
        ({"end": "2020-02-30"}, "end"),
        ({"start": "2020-03-12", "end": "2020-03-11"}, "start"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WyJ4IiwxXQ"}, "cursor"),  # base64 of ["x",1]
    ],
)
def test_bad_parameters_are_a_422_naming_them(api: Api, params, field):
    answer = api.client.get("/past-predictions", params=params)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["detail"]
    assert [e["field"] for e in body["errors"]] == [field]
