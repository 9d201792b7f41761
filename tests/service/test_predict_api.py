"""POST /predict against a real uvicorn process and the real database."""

from __future__ import annotations

import math
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import orjson
import pytest

from mlsys import model as mlmodel
from mlsys.api_auth import Role
from service.openapi_docs import example_record
from tests.conftest import auth_headers
from tests.service.conftest import MAX_BATCH, MAX_BODY, Api


def _post(api: Api, payload) -> httpx.Response:
    """As the UI (webapp rows) or the prediction DAG (scheduled rows) would send it."""
    scheduled = isinstance(payload, dict) and payload.get("source") == "scheduled"
    return (api.scheduler if scheduled else api.client).post("/predict", json=payload)


def test_one_record_is_predicted_stored_and_returned(api: Api, record, spec, trained_model_dir):
    before = api.count()
    answer = _post(api, {"source": "webapp", "records": [record]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    loaded = mlmodel.load(trained_model_dir)
    expected = float(loaded.predict_proba(mlmodel.encode_records([record], spec))[0])
    (p,) = body["predictions"]
    assert body["model_version"] == loaded.version == p["model_version"]
    assert (body["stored"], body["already_stored"]) == (1, 0)
    assert p["features"] == record
    assert math.isclose(p["probability"], expected, rel_tol=1e-12)
    assert p["prediction"] == (loaded.positive_label if expected >= 0.5 else loaded.negative_label)
    assert p["source"] == "webapp" and p["source_file"] is None
    assert api.count() == before + 1
    stored = "id = %s AND features = %s::jsonb AND probability = %s AND model_version = %s"
    assert (
        api.count(stored, (p["id"], orjson.dumps(record).decode(), expected, loaded.version)) == 1
    )


def test_a_batch_keeps_the_order_of_its_records(api: Api, spec, trained_model_dir):
    records = [example_record(spec, i) for i in range(MAX_BATCH)]
    answer = _post(api, {"source": "webapp", "records": records})
    assert answer.status_code == 200, answer.text
    got = answer.json()["predictions"]
    assert [p["features"] for p in got] == records
    expected = mlmodel.load(trained_model_dir).predict_proba(mlmodel.encode_records(records, spec))
    assert np.allclose([p["probability"] for p in got], expected, rtol=1e-12)
    assert len({p["id"] for p in got}) == MAX_BATCH


def test_concurrent_single_predictions_each_get_their_own_record(api: Api, spec, trained_model_dir):
    """Single webapp predictions are stored by group commit: concurrent requests share
    transactions, and each must still get exactly its own record, prediction and row."""
    records = [example_record(spec, i) for i in range(80)]
    before = api.count()

    def send(record: dict) -> httpx.Response:
        return httpx.post(
            f"{api.url}/predict",
            json={"source": "webapp", "records": [record]},
            headers=auth_headers(Role.WEBAPP),
            timeout=30,
        )

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(send, records))
    assert [a.status_code for a in answers] == [200] * 80
    got = [a.json()["predictions"][0] for a in answers]
    assert [p["features"] for p in got] == records
    expected = mlmodel.load(trained_model_dir).predict_proba(mlmodel.encode_records(records, spec))
    assert [p["probability"] for p in got] == expected.tolist()
    assert len({p["id"] for p in got}) == 80
    assert api.count() == before + 80
    for p in got[::16]:  # stored as answered
        assert (
            api.count(
                "id = %s AND features = %s::jsonb", (p["id"], orjson.dumps(p["features"]).decode())
            )
            == 1
        )


def test_integral_floats_are_accepted_as_integers(api: Api, record, spec):
    name = next(f.name for f in spec.features if f.kind.value == "integer")
    sent = {**record, name: float(record[name])}
    answer = _post(api, {"source": "webapp", "records": [sent]})
    assert answer.status_code == 200, answer.text
    stored = answer.json()["predictions"][0]["features"][name]
    assert stored == record[name] and isinstance(stored, int)


def _first(spec, kind: str):
    return next(f for f in spec.features if f.kind.value == kind)


BAD_RECORDS = {
    # name: (how to spoil a valid record, field, words the message must contain)
    "wrong type in a categorical": (lambda r, s: {**r, _first(s, "categorical").name: 3}, "categorical", "must be a string"),
    "string in a numeric field": (lambda r, s: {**r, _first(s, "integer").name: "30"}, "integer", "must be an integer, got a string"),
    "boolean in a numeric field": (lambda r, s: {**r, _first(s, "integer").name: True}, "integer", "got a boolean"),
    "fraction in an integer field": (lambda r, s: {**r, _first(s, "integer").name: 2.5}, "integer", "2.5 is not an integer"),
    "below the minimum": (lambda r, s: {**r, _first(s, "integer").name: _first(s, "integer").minimum - 1}, "integer", "below the minimum"),
    "above the maximum": (lambda r, s: {**r, _first(s, "integer").name: _first(s, "integer").maximum + 1}, "integer", "above the maximum"),
    "unknown category": (lambda r, s: {**r, _first(s, "categorical").name: "martian"}, "categorical", "'martian' is not one of"),
    "missing field": (lambda r, s: {k: v for k, v in r.items() if k != _first(s, "integer").name}, "integer", "is absent: the model needs this feature"),
    "null field": (lambda r, s: {**r, _first(s, "categorical").name: None}, "categorical", "a value is required"),
    "extra field": (lambda r, s: {**r, "shoe_size": 42}, None, "not a feature of the model"),
    "a list instead of a value": (lambda r, s: {**r, _first(s, "categorical").name: ["a"]}, "categorical", "got an array"),
}  # fmt: skip


# The rule (mlsys.rules) each case breaks.
RULES = {
    "wrong type in a categorical": "wrong_type",
    "string in a numeric field": "wrong_type",
    "boolean in a numeric field": "wrong_type",
    "fraction in an integer field": "not_an_integer",
    "below the minimum": "out_of_range",
    "above the maximum": "out_of_range",
    "unknown category": "unknown_category",
    "missing field": "missing_column",
    "null field": "missing_value",
    "extra field": "unexpected_column",
    "a list instead of a value": "wrong_type",
}


@pytest.mark.parametrize("case", BAD_RECORDS, ids=list(BAD_RECORDS))
def test_a_bad_record_is_a_precise_422_and_nothing_is_written(api: Api, record, spec, case):
    spoil, kind, words = BAD_RECORDS[case]
    bad = spoil(record, spec)
    before = api.count()
    answer = _post(api, {"source": "webapp", "records": [record, bad]})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["detail"] == "1 of 2 records are invalid; nothing was stored"
    (error,) = body["errors"]
    field = "shoe_size" if kind is None else _first(spec, kind).name
    assert (error["record"], error["field"]) == (1, field)
    assert words in error["message"], error
    assert error["rule"] == RULES[case]
    assert api.count() == before


@pytest.mark.parametrize(
    ("literal", "words"),
    [
        ("NaN", "'nan' is not a finite number"),
        ("-Infinity", "'-inf' is not a finite number"),
        ("1e400", "'inf' is not a finite number"),
    ],
)
def test_nan_and_infinity_are_refused_by_record_and_field(api: Api, record, spec, literal, words):
    name = _first(spec, "integer").name
    marker = 987654321  # replaced by the literal in the JSON text: json.dumps cannot write it
    text = orjson.dumps(
        {"source": "webapp", "records": [record, {**record, name: marker}]}
    ).decode()
    body = text.replace(str(marker), literal).encode()
    assert literal.encode() in body
    before = api.count()
    answer = api.client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["errors"]
    assert (error["record"], error["field"]) == (1, name)
    assert words in error["message"]
    assert api.count() == before


def test_all_or_nothing_lists_every_bad_record_and_field(api: Api, spec):
    records = [example_record(spec, i) for i in range(6)]
    cat, num = _first(spec, "categorical").name, _first(spec, "integer").name
    records[1][cat] = "nope"
    records[4][num] = "12"
    records[4][cat] = 7
    before = api.count()
    answer = _post(api, {"source": "webapp", "records": records})
    assert answer.status_code == 422
    body = answer.json()
    assert body["detail"] == "2 of 6 records are invalid; nothing was stored"
    assert {(e["record"], e["field"]) for e in body["errors"]} == {(1, cat), (4, cat), (4, num)}
    assert body["error_count"] == 3
    assert api.count() == before


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        (b'{"source": "webapp", "records": [', 400, "not valid JSON"),
        (b"", 400, "body is empty"),
        (b"[1, 2]", 422, "must be a JSON object"),
        (b'{"source": "webapp", "records": []}', 422, "records"),
        (b'{"source": "webapp", "records": {"age": 30}}', 422, "records"),
        (b'{"source": "webapp"}', 422, "records"),
        (b'{"source": "mobile", "records": [{}]}', 422, "source"),
        (b'{"records": [{}]}', 422, "source"),
        (b'{"source": "webapp", "records": [{}], "priority": 1}', 422, "priority"),
        (b'{"source": "webapp", "records": [{}], "source_file": "a.csv"}', 422, "source_file"),
        (b'{"source": "scheduled", "records": [{}]}', 422, "source_file"),
        (b'{"source": "scheduled", "source_file": "a.csv", "source_rows": [0, 1], "records": [{}]}', 422, "source_rows"),
        (b'{"source": "scheduled", "source_file": "a.csv", "source_rows": [-1], "records": [{}]}', 422, "source_rows"),
        (b'{"source": "scheduled", "source_file": "a.csv", "source_rows": [3, 3], "records": [{}, {}]}', 422, "source_rows"),
    ],
)  # fmt: skip
def test_bad_bodies_get_a_4xx_naming_the_problem(api: Api, payload, status, words):
    before = api.count()
    answer = api.client.post(
        "/predict", content=payload, headers={"content-type": "application/json"}
    )
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert words in body["detail"] or any(words == e["field"] for e in body.get("errors", []))
    assert api.count() == before


def test_a_batch_over_the_maximum_is_refused(api: Api, record):
    before = api.count()
    answer = _post(api, {"source": "webapp", "records": [record] * (MAX_BATCH + 1)})
    assert answer.status_code == 422
    assert f"over the maximum of {MAX_BATCH}" in answer.json()["detail"]
    assert api.count() == before


def test_a_huge_body_is_refused_before_it_is_parsed(api: Api, record):
    filler = "x" * (MAX_BODY + 1)
    before = api.count()
    answer = _post(api, {"source": "webapp", "records": [{**record, "note": filler}]})
    assert answer.status_code == 413
    assert "MAX_BODY_BYTES" in answer.json()["detail"]
    # a chunked body (no Content-Length) is counted as it arrives
    chunks = iter([b'{"source": "webapp", "records": ["', filler.encode(), b'"]}'])
    answer = api.client.post(
        "/predict", content=chunks, headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert api.count() == before


def test_a_file_upload_is_refused(api: Api, record):
    answer = api.client.post("/predict", files={"file": ("a.csv", b"age\n30\n", "text/csv")})
    assert answer.status_code == 415
    assert "never a file upload" in answer.json()["detail"]


def _scheduled(records, rows, file):
    return {"source": "scheduled", "source_file": file, "source_rows": rows, "records": records}


def test_scheduled_rows_sent_again_are_returned_and_not_written(api: Api, spec):
    file = f"part-{uuid.uuid4().hex}.csv"
    records = [example_record(spec, i) for i in range(3)]
    first = _post(api, _scheduled(records, [0, 1, 2], file))
    assert first.status_code == 200, first.text
    assert (first.json()["stored"], first.json()["already_stored"]) == (3, 0)
    again = _post(api, _scheduled(records, [0, 1, 2], file))
    assert again.status_code == 200
    assert (again.json()["stored"], again.json()["already_stored"]) == (0, 3)
    assert again.json()["predictions"] == first.json()["predictions"]
    # a retried run with one more row: only the new row is written, answers keep the order
    extended = _post(
        api, _scheduled([records[2], example_record(spec, 7), records[0]], [2, 3, 0], file)
    )
    assert extended.status_code == 200
    body = extended.json()
    assert (body["stored"], body["already_stored"]) == (1, 2)
    assert [p["source_row"] for p in body["predictions"]] == [2, 3, 0]
    assert body["predictions"][0] == first.json()["predictions"][2]
    assert api.count("source_file = %s", (file,)) == 4


def test_scheduled_rows_sent_again_with_other_features_are_a_conflict(api: Api, spec):
    file = f"part-{uuid.uuid4().hex}.csv"
    records = [example_record(spec, i) for i in range(2)]
    assert _post(api, _scheduled(records, [0, 1], file)).status_code == 200
    changed = [records[0], example_record(spec, 2), example_record(spec, 0)]
    answer = _post(api, _scheduled(changed, [0, 1, 2], file))
    assert answer.status_code == 409
    assert [(e["record"], e["value"]) for e in answer.json()["errors"]] == [(1, 1)]
    assert api.count("source_file = %s", (file,)) == 2  # row 2 was not written either


def test_concurrent_retries_of_one_file_store_each_row_once(api: Api, spec):
    file = f"part-{uuid.uuid4().hex}.csv"
    records = [example_record(spec, i) for i in range(20)]
    payload = _scheduled(records, list(range(20)), file)
    with ThreadPoolExecutor(4) as pool:
        answers = list(
            pool.map(
                lambda _: httpx.post(
                    f"{api.url}/predict",
                    json=payload,
                    headers=auth_headers(Role.SCHEDULER),
                    timeout=30,
                ),
                range(4),
            )
        )
    assert [a.status_code for a in answers] == [200] * 4
    assert sorted(a.json()["stored"] for a in answers) == [0, 0, 0, 20]
    ids = {tuple(p["id"] for p in a.json()["predictions"]) for a in answers}
    assert len(ids) == 1
    assert api.count("source_file = %s", (file,)) == 20


def test_the_openapi_examples_work_when_pasted(api: Api):
    doc = api.client.get("/openapi.json").json()
    examples = doc["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"][
        "examples"
    ]
    assert {"one", "batch", "scheduled", "invalid"} <= set(examples)
    for name, example in examples.items():
        answer = _post(api, example["value"])
        assert answer.status_code == (422 if name == "invalid" else 200), (name, answer.text)


def test_no_input_gets_a_500(api: Api, record):
    bodies = [
        b"null", b"0", b'"x"', b"{}", b'{"source": null, "records": null}', b"\xff\xfe",
        b'{"source": "webapp", "records": [null, 1, "a", [], {}]}',
        b'{"source": "scheduled", "source_file": "a\\u0000b", "source_rows": [0], "records": [{}]}',
        b'{"source": "scheduled", "source_file": 5, "source_rows": "0", "records": [1]}',
        b'{"source": "scheduled", "source_file": "a", "source_rows": [99999999999], "records": [1]}',
        b'{"source": ["webapp"], "records": [{"age": {"deep": [1, {"x": null}]}}]}',
        b'{"source": "webapp", "records": [{"age": 123456789012345678901234567890}]}',
    ]  # fmt: skip
    for body in bodies:
        answer = api.client.post(
            "/predict", content=body, headers={"content-type": "application/json"}
        )
        assert 400 <= answer.status_code < 500, (body, answer.status_code, answer.text)
        assert answer.json()["detail"]


def test_a_row_written_meanwhile_by_another_writer_is_a_409_not_a_duplicate(api: Api, spec):
    """The unique constraint is the last line of defence behind the per-file lock."""
    import threading

    import psycopg2

    from mlsys.db import psycopg2_dsn

    file = f"part-{uuid.uuid4().hex}.csv"
    record = example_record(spec)
    other = psycopg2.connect(psycopg2_dsn(api.database_url))  # a writer that takes no lock
    try:
        with other.cursor() as cur:
            cur.execute(
                """INSERT INTO predictions (source, features, prediction, probability, model_version,
                                            source_file, source_row)
                   VALUES ('scheduled', %s, '1', 0.5, 'other', %s, 0)""",
                (orjson.dumps(record).decode(), file),
            )
        answers = []
        call = threading.Thread(
            target=lambda: answers.append(_post(api, _scheduled([record], [0], file)))
        )
        call.start()
        call.join(1.0)  # the service now waits on the uncommitted row
        other.commit()
        call.join(30)
    finally:
        other.close()
    assert answers[0].status_code == 409, answers[0].text
    assert "send it again" in answers[0].json()["detail"]
    assert api.count("source_file = %s", (file,)) == 1
    again = _post(api, _scheduled([record], [0], file))
    assert again.status_code == 200
    assert again.json()["predictions"][0]["model_version"] == "other"
