"""Every kind of hostile input gets its answer or a 4xx, never a 5xx, and stores nothing.

Issue 18 point 2, by kind rather than by example: numbers of any size, dates at the ends of
the calendar, any nesting depth, any unicode, duplicate keys, a missing Content-Type, records
with many unknown keys, any query string, any Host header. The three inputs of the issue are
in `data/cases/`. All against the real uvicorn process.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from mlsys.api_auth import Role
from tests.conftest import auth_headers
from tests.service.conftest import MAX_BODY, Api

CASES = Path(__file__).parent / "data" / "cases"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module", autouse=True)
def one_stored(api: Api, spec) -> None:
    """At least one stored prediction, so that the date bounds have something to select."""
    from service.openapi_docs import example_record

    answer = api.client.post(
        "/predict", json={"source": "webapp", "records": [example_record(spec)]}
    )
    assert answer.status_code == 200, answer.text


def post_raw(api: Api, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return api.client.post("/predict", content=body, headers=JSON if headers is None else headers)


def assert_refused(api: Api, answer: httpx.Response, before: int, statuses=(400, 422)) -> dict:
    assert answer.status_code in statuses, (answer.status_code, answer.text[:500])
    body = answer.json()
    assert body["detail"]
    assert api.count() == before
    return body


def with_literal(record: dict, field: str, literal: str) -> bytes:
    """A /predict body whose `field` holds `literal` exactly as written (json.dumps cannot)."""
    marker = "__LITERAL__"
    text = orjson.dumps({"source": "webapp", "records": [{**record, field: marker}]}).decode()
    return text.replace(f'"{marker}"', literal).encode()


# --- the examples ---------------------------------------------------------------------
def test_a_401_digit_integer_is_a_422_naming_age(api: Api):
    before = api.count()
    body = assert_refused(
        api, post_raw(api, (CASES / "huge_integer_age.json").read_bytes()), before, (422,)
    )
    assert [e["field"] for e in body["errors"]] == ["age"]


def test_a_body_nested_1100_deep_is_refused_with_a_message(api: Api):
    before = api.count()
    body = assert_refused(api, post_raw(api, (CASES / "deeply_nested.json").read_bytes()), before)
    assert "recursion limit" in body["detail"] or "nest" in body["detail"]


def test_past_predictions_up_to_the_last_day_of_the_calendar(api: Api):
    answer = api.client.get("/past-predictions", params={"end": "9999-12-31"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["items"]  # no upper bound: everything stored so far


# --- numbers of any size ----------------------------------------------------------------------
NUMBERS = [
    "9" * 401, "-" + "9" * 401, "9" * 4300, "9" * 5000, str(2**64), str(-(2**63) - 1),
    str(2**53 + 1), "1e999", "-1e999", "1e-999", "NaN", "Infinity", "-Infinity", "-0", "-0.0",
    "0.1e1", "1E+2", "30.000000000000000000001", "1" + "0" * 300 + ".5", "2.5e308",
]  # fmt: skip


@pytest.mark.parametrize("field", ["age", "credit_amount"])
@pytest.mark.parametrize("literal", NUMBERS, ids=[n[:12] for n in NUMBERS])
def test_numbers_of_any_size_are_an_answer_or_a_4xx(api: Api, record, field, literal):
    before = api.count()
    answer = post_raw(api, with_literal(record, field, literal))
    if answer.status_code == 200:
        assert api.count() == before + 1
        return
    body = assert_refused(api, answer, before)
    if answer.status_code == 422:
        assert [e["field"] for e in body["errors"]] == [field]


@pytest.mark.parametrize("literal", ["9" * 401, "1e999", "NaN", "-1"])
def test_hostile_numbers_in_source_rows_are_refused(api: Api, record, literal):
    body = (
        b'{"source": "scheduled", "source_file": "n.csv", "source_rows": ['
        + literal.encode()
        + b'], "records": ['
        + orjson.dumps(record)
        + b"]}"
    )
    before = api.count()
    answer = assert_refused(api, post_raw(api, body), before)
    assert "source_rows" in orjson.dumps(answer).decode()


# --- dates at the ends of the calendar ----------------------------------------------------------
DATES = [
    "0001-01-01", "9999-12-31", "9999-12-31T23:59:59.999999", "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:00:00-14:00", "0001-01-01T00:00:00+23:59", "10000-01-01", "+10000-01-01",
    "0000-01-01", "2026-02-30", "2026-13-01", "9999-12-31T24:00:00", "garbage", " ", "\x00",
    "2026-11-30T12:00:00+99:00", "9" * 5000, "2026-11-30T12:00:00.1234567891234",
]  # fmt: skip


@pytest.mark.parametrize("name", ["start", "end"])
@pytest.mark.parametrize("value", DATES, ids=[d[:30] for d in DATES])
def test_dates_at_the_ends_of_the_calendar(api: Api, name, value):
    answer = api.client.get("/past-predictions", params={name: value})
    assert answer.status_code in (200, 422), (answer.status_code, answer.text[:300])
    if answer.status_code == 422:
        assert name in {e["field"] for e in answer.json()["errors"]}


def test_calendar_bounds_select_what_they_say(api: Api):
    everything = api.client.get("/past-predictions", params={"limit": 1}).json()["items"]
    assert everything
    for params, some in [
        ({"start": "0001-01-01T00:00:00+14:00"}, True),  # before year 1 in UTC: no lower bound
        ({"end": "9999-12-31T23:59:59-14:00"}, True),  # after 9999 in UTC: no upper bound
        ({"start": "9999-12-31T23:59:59-14:00"}, False),  # after every stored prediction
        ({"end": "0001-01-01T00:00:00+14:00"}, False),  # before every stored prediction
        ({"start": "0001-01-01", "end": "9999-12-31"}, True),
    ]:
        answer = api.client.get("/past-predictions", params={**params, "limit": 1})
        assert answer.status_code == 200, (params, answer.text)
        assert bool(answer.json()["items"]) is some, params


# --- nesting ------------------------------------------------------------------------------------
def nested(depth: int, open_: bytes = b"[", close: bytes = b"]") -> bytes:
    return open_ * depth + b"1" + close * depth


@pytest.mark.parametrize("depth", [150, 199, 200, 201, 1_100, 40_000])
@pytest.mark.parametrize("where", ["body", "records", "a record", "a value", "an object value"])
def test_any_nesting_depth_is_a_4xx(api: Api, record, depth, where):
    value = nested(depth) if where != "an object value" else nested(depth, b'{"a":', b"}")
    body = {
        "body": value,
        "records": b'{"source": "webapp", "records": ' + value + b"}",
        "a record": b'{"source": "webapp", "records": [' + value + b"]}",
        "a value": with_literal(record, "age", value.decode()),
        "an object value": with_literal(record, "sex", value.decode()),
    }[where]
    before = api.count()
    assert_refused(api, post_raw(api, body), before, (400, 413, 422))


# --- unicode --------------------------------------------------------------------------------------
UNICODE_BODIES = {
    "lone high surrogate in a value": rb'"\ud800"',
    "lone low surrogate in a value": rb'"\udc00x"',
    "reversed surrogate pair": rb'"\udc00\ud800"',
    "NUL in a value": rb'"male\u0000"',
    "raw NUL byte": b'"male\x00"',
    "overlong slash": b'"\xc0\xaf"',
    "raw encoded surrogate": b'"\xed\xa0\x80"',
    "truncated UTF-8": b'"\xe2\x82"',
    "latin-1 byte": b'"m\xe4le"',
    "emoji": '"\U0001f600"'.encode(),
    "right-to-left override": '"\u202emale"'.encode(),
    "a noncharacter": '"\uffff"'.encode(),
}


@pytest.mark.parametrize("where", ["value", "key"])
@pytest.mark.parametrize("case", UNICODE_BODIES, ids=list(UNICODE_BODIES))
def test_any_unicode_is_a_4xx(api: Api, record, case, where):
    text = UNICODE_BODIES[case]
    if where == "value":
        body = with_literal(record, "sex", text.decode("latin-1")).replace(
            text.decode("latin-1").encode(), text
        )
    else:
        body = b'{"source": "webapp", "records": [{' + text + b": 1}]}"
    assert text in body
    before = api.count()
    assert_refused(api, post_raw(api, body), before)


def test_a_bom_or_another_encoding_is_refused(api: Api, record):
    before = api.count()
    good = orjson.dumps({"source": "webapp", "records": [record]})
    for body in (b"\xef\xbb\xbf" + good, good.decode().encode("utf-16"), b"\xff\xfe"):
        assert_refused(api, post_raw(api, body), before)


# --- duplicate keys -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "key"),
    [
        (b'{"source": "webapp", "source": "scheduled", "records": [{}]}', "source"),
        (b'{"records": [], "source": "webapp", "records": [{}]}', "records"),
        (None, "age"),
        (None, "sex"),
    ],
)
def test_duplicate_keys_are_refused_naming_the_key(api: Api, record, body, key):
    if body is None:  # the key twice in a valid record: the second would silently win
        text = orjson.dumps({"source": "webapp", "records": [record]}).decode()
        again = orjson.dumps({key: record[key]}).decode()[1:-1]
        body = text.replace("}]}", f", {again}}}]}}").encode()
        assert body.count(f'"{key}"'.encode()) == 2
    before = api.count()
    answer = assert_refused(api, post_raw(api, body), before)
    assert "duplicate" in answer["detail"] and f'"{key}"' in answer["detail"]


# --- content type ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{}, {"content-type": "text/plain"}, {"content-type": "application/x-www-form-urlencoded"},
     {"content-type": ""}, {"content-type": "multipart/form-data; boundary=x"}],
    ids=["none", "text/plain", "form", "empty", "multipart"],
)  # fmt: skip
def test_a_body_that_is_not_declared_json_is_a_415(api: Api, record, headers):
    """Without application/json a browser sends the POST cross-site without asking (CORS)."""
    before = api.count()
    body = orjson.dumps({"source": "webapp", "records": [record]})
    answer = api.client.post("/predict", content=body, headers=headers)
    assert answer.status_code == 415, answer.text
    assert "application/json" in answer.json()["detail"]
    assert api.count() == before


# --- many unknown keys ----------------------------------------------------------------------------
def many_keys_body(record: dict, size: int) -> bytes:
    keys = b",".join(b'"k%d":0' % i for i in range(size // 10))
    return b'{"source": "webapp", "records": [' + orjson.dumps(record)[:-1] + b"," + keys + b"}]}"


def test_a_body_with_more_keys_than_a_full_batch_is_refused_before_parsing(api: Api, record):
    body = many_keys_body(record, MAX_BODY - 1000)
    before = api.count()
    answer = assert_refused(api, post_raw(api, body), before, (422,))
    assert "keys, more than a batch of 50 records" in answer["detail"]


def test_a_record_with_many_unknown_keys_is_refused_whole(api: Api, record):
    keys = b",".join(b'"k%d":0' % i for i in range(100))
    body = b'{"source": "webapp", "records": [' + orjson.dumps(record)[:-1] + b"," + keys + b"}]}"
    before = api.count()
    answer = assert_refused(api, post_raw(api, body), before, (422,))
    assert answer["error_count"] == 1
    (error,) = answer["errors"]
    assert error["record"] == 0 and "has 109 fields; the model takes 9" in error["message"]
    assert len(orjson.dumps(answer)) < 2_000
    wide = b'{"source": "webapp", "records": [{}], ' + keys + b"}"
    answer = assert_refused(api, post_raw(api, wide), before, (422,))
    assert answer["error_count"] == 1 and "the body has 102 fields" in answer["detail"]


def test_a_few_unknown_keys_are_each_named(api: Api, record):
    before = api.count()
    answer = post_raw(api, orjson.dumps({"source": "webapp", "records": [{**record, "x": 1}]}))
    body = assert_refused(api, answer, before, (422,))
    assert [e["field"] for e in body["errors"]] == ["x"]


# --- query strings --------------------------------------------------------------------------------
QUERIES = [
    "limit=1&limit=2", "limit=" + "9" * 30, "limit=" + "9" * 5000, "limit=-1", "limit=0",
    "limit=1.5", "limit=", "limit=%00", "cursor=%C3%A9t%C3%A9", "cursor=" + "A" * 5000,
    "cursor=%ED%A0%80", "cursor=%FF%FE", "cursor=W10", "cursor=WyJ4IiwgMV0",
    "source=%ED%A0%80", "source=" + "x" * 10_000, "source=webapp&source=nope", "unknown=1",
    "start=2026-01-01&start=garbage", "end=%ED%A0%80", "start=%00", "&&&==&", "%", "a=%zz",
]  # fmt: skip


@pytest.mark.parametrize("query", QUERIES, ids=[q[:30] for q in QUERIES])
def test_any_query_string_is_an_answer_or_a_422(api: Api, query):
    answer = api.client.get(f"/past-predictions?{query}")
    assert answer.status_code in (200, 422), (answer.status_code, answer.text[:300])
    assert answer.json()


def raw_request(api: Api, request: bytes) -> tuple[int, bytes]:
    """Bytes sent as they are (httpx would encode a non-ASCII query); status and body back."""
    address = urlsplit(api.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    "target",
    [b"/past-predictions?cursor=\xed\xa0\x80", b"/past-predictions?source=\xff\xfe",
     b"/past-predictions?start=\xc3\xa9", b"/reports/\xed\xa0\x80.html", b"/past-predictions?\x7f"],
)  # fmt: skip
def test_raw_non_ascii_bytes_in_the_target_are_never_a_5xx(api: Api, target):
    host = urlsplit(api.url).netloc.encode()
    status, _ = raw_request(
        api, b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n"
    )
    assert 200 <= status < 500, status


# --- Host header ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io", "localhost.evil.example", ""]
)
def test_an_unknown_host_is_a_400(api: Api, host, record):
    before = api.count()
    for method, path in (("GET", "/health"), ("POST", "/predict")):
        answer = api.client.request(
            method, path, headers={"host": host, **JSON},
            content=orjson.dumps({"source": "webapp", "records": [record]}),
        )  # fmt: skip
        assert answer.status_code == 400, (host, answer.text)
    assert api.count() == before


def test_a_request_without_host_is_a_400(api: Api):
    status, _ = raw_request(api, b"GET /health HTTP/1.0\r\n\r\n")
    assert status == 400


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_local_names_are_answered(api: Api, host):
    port = urlsplit(api.url).port
    assert api.client.get("/livez", headers={"host": f"{host}:{port}"}).status_code == 200


# --- memory and time stay bounded -----------------------------------------------------------------
def test_huge_records_at_once_are_refused_quickly_and_health_keeps_answering(api: Api, record):
    """The issue's load: several bodies at the size limit, each one record with thousands of
    unknown keys, sent together: each is refused quickly and /health answers meanwhile."""
    body = many_keys_body(record, MAX_BODY - 1000)
    before = api.count()

    def send(_: int) -> tuple[int, float]:
        t0 = time.monotonic()
        answer = httpx.post(
            f"{api.url}/predict", content=body, headers=JSON | auth_headers(Role.WEBAPP), timeout=30
        )
        return answer.status_code, time.monotonic() - t0

    with ThreadPoolExecutor(8) as pool:
        sent = [pool.submit(send, i) for i in range(8)]
        t0 = time.monotonic()
        health = api.client.get("/health")
        health_s = time.monotonic() - t0
        results = [f.result() for f in sent]
    assert [status for status, _ in results] == [422] * 8
    assert health.status_code == 200 and health_s < 3.0, health_s
    assert max(seconds for _, seconds in results) < 5.0, results
    assert api.count() == before
