"""The typed core called directly: validation, encoding, streamed COPY, cursors, time bounds."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import orjson
import pytest

from mlsys import model as mlmodel
from service import predictions, store
from service.openapi_docs import example_record
from service.validation import RecordValidator, RequestError, parse_predict_request


@pytest.fixture(scope="module")
def validator(spec) -> RecordValidator:
    return RecordValidator(spec)


@pytest.fixture(scope="module")
def dataset_records(settings, spec) -> list[dict]:
    import pandas as pd

    frame = pd.read_csv(settings.dataset_path)[spec.names]
    return frame.to_dict(orient="records")


def test_the_columnar_and_the_per_record_checks_agree_with_the_model_encoding(
    validator, spec, dataset_records
):
    records = [dict(r) for r in dataset_records]
    clean, matrix, errors = validator.validate(records)
    assert errors == [] and clean is records
    _, slow, slow_errors = validator._validate_each(records)
    assert slow_errors == []
    expected = mlmodel.encode_records(records, spec)
    assert np.array_equal(matrix, expected) and np.array_equal(slow, expected)


def test_small_batches_take_the_record_by_record_pass_with_the_same_result(
    validator, spec, dataset_records
):
    from service.validation import FEW_RECORDS

    few = [dict(r) for r in dataset_records[:FEW_RECORDS]]
    clean, matrix, errors = validator.validate(few)
    assert errors == [] and clean == few
    assert np.array_equal(matrix, validator._validate_clean_batch(few))
    assert np.array_equal(matrix, mlmodel.encode_records(few, spec))


def test_one_bad_value_among_many_is_found_and_named(validator, spec, dataset_records):
    records = [dict(r) for r in dataset_records]
    name = next(f.name for f in spec.features if f.kind.value == "integer")
    records[737][name] = 10**6
    _, _, errors = validator.validate(records)
    assert [(e.record, e.field) for e in errors] == [(737, name)]
    assert "above the maximum" in errors[0].message


def test_every_error_of_a_large_batch_is_counted_but_at_most_1000_listed(validator, spec):
    records = [{"nonsense": i} for i in range(300)]
    with pytest.raises(RequestError) as caught:
        parse_predict_request(
            orjson.dumps({"source": "webapp", "records": records}), validator, max_records=1000
        )
    body = caught.value.to_dict()
    assert body["error_count"] == 300 * (len(spec.features) + 1)
    assert len(body["errors"]) == 1000


def test_a_streamed_copy_stores_every_row_in_order(
    db_conn, spec, trained_model_dir, dataset_records
):
    loaded = mlmodel.load(trained_model_dir)
    records = [dataset_records[i % len(dataset_records)] for i in range(2_345)]  # several chunks
    matrix = mlmodel.encode_records(records, spec)
    rows = list(range(2_345))
    out = store.insert_predictions(
        db_conn,
        source="scheduled",
        model_version=loaded.version,
        source_file="tab\there\\and\nnewline.csv",  # COPY's escapes
        predictions=predictions._new_predictions(loaded, records, matrix, rows=rows),
        count=len(records),
    )
    assert [p["source_row"] for p in out] == rows
    with db_conn.cursor() as cur:
        cur.execute(
            "SELECT id, source_row, features, probability, source_file FROM predictions"
            " WHERE model_version = %s AND source = 'scheduled' ORDER BY source_row",
            (loaded.version,),
        )
        got = cur.fetchall()
    assert [g[0] for g in got] == [p["id"] for p in out]
    assert [g[2] for g in got] == records
    assert np.allclose([g[3] for g in got], loaded.predict_proba(matrix), rtol=1e-12)
    assert {g[4] for g in got} == {"tab\there\\and\nnewline.csv"}


def test_cursors_round_trip_and_refuse_forgeries():
    moment = datetime(2026, 11, 26, 7, 1, 2, 123456, tzinfo=UTC)
    assert predictions.decode_cursor(predictions.encode_cursor(moment, 17)) == (moment, 17)
    for bad in ["", "!!!", "bnVsbA", "WyJ4IiwxXQ", "WyIyMDI2LTExLTI2IiwiMSJd"]:
        with pytest.raises(RequestError):
            predictions.decode_cursor(bad)


@pytest.mark.parametrize(
    ("raw", "end", "expected"),
    [
        ("2026-11-26", False, datetime(2026, 11, 26, tzinfo=UTC)),
        ("2026-11-26", True, datetime(2026, 11, 27, tzinfo=UTC)),  # exclusive: the whole day
        ("2026-11-26T10:00:00", False, datetime(2026, 11, 26, 10, tzinfo=UTC)),  # no zone: UTC
        ("2026-11-26T10:00:00+02:00", False, datetime(2026, 11, 26, 8, tzinfo=UTC)),
        ("2026-11-26T10:00:00Z", True, datetime(2026, 11, 26, 10, 0, 0, 1, tzinfo=UTC)),
    ],
)
def test_time_bounds(raw, end, expected):
    assert predictions.parse_instant("end" if end else "start", raw, end=end) == expected


def test_the_example_records_are_valid(validator, spec):
    records = [example_record(spec, i) for i in range(5)]
    assert validator.validate(records)[2] == []


@pytest.mark.parametrize("source", ["webapp", None])
def test_a_page_is_an_index_range_scan_even_after_a_cursor(db_conn, source):
    """The cursor must be an index condition, not a filter: deep pages stay as cheap as the
    first. (Which of the two time indexes wins depends on the statistics; the benchmark
    measures it on 1,000,000 rows.)"""
    query = store.PastQuery(
        start=datetime(2026, 1, 1, tzinfo=UTC),
        end_before=datetime(2026, 1, 2, tzinfo=UTC),
        source=source,
        limit=101,
        after=(datetime(2026, 1, 1, 12, tzinfo=UTC), 1000),
    )
    with db_conn.cursor() as cur:
        # a tiny test table makes any plan cheap: ask whether a sort-free index plan exists
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            cur.execute(f"SET LOCAL {setting} = off")
        cur.execute("EXPLAIN " + store.PAST_SQL, store.past_params(query))
        plan = [r[0].strip() for r in cur.fetchall()]
    assert any(line.startswith("->  Index Scan using predictions_") for line in plan), plan
    cond = next(line for line in plan if line.startswith("Index Cond:"))
    assert "ROW(created_at, id) < ROW(" in cond, plan
    assert not any("Sort" in line for line in plan), plan


def test_a_body_of_700000_unknown_keys_costs_no_memory(validator, spec):
    """Issue 18: one record with hundreds of thousands of unknown keys within MAX_BODY_BYTES
    cost about 250 MB (an error object per key). It is now refused before it is parsed."""
    import tracemalloc

    from service.openapi_docs import example_record

    keys = b"".join(b',"k%d":0' % i for i in range(700_000))
    record = orjson.dumps(example_record(spec))[:-1] + keys + b"}"
    body = b'{"source": "webapp", "records": [' + record + b"]}"
    assert len(body) < 8 * 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(RequestError) as caught:
            parse_predict_request(body, validator, max_records=10_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.status == 422 and "keys" in caught.value.detail
    assert peak < 1_000_000, peak


def test_allowed_hosts_default_to_the_local_names_and_api_host():
    from service.config import allowed_hosts, load_service_settings

    default = load_service_settings({})
    assert allowed_hosts(default, "127.0.0.1") == ["localhost", "127.0.0.1"]
    assert allowed_hosts(default, "10.0.0.5") == ["localhost", "127.0.0.1", "10.0.0.5"]
    assert allowed_hosts(default, "0.0.0.0") == ["localhost", "127.0.0.1"]  # not a name
    chosen = load_service_settings({"API_ALLOWED_HOSTS": " api, localhost ,,"})
    assert allowed_hosts(chosen, "0.0.0.0") == ["api", "localhost"]
