"""The prediction DAG's typed functions without Airflow, against a real uvicorn process of the
service and the real database: conversion by the API's feature kinds, the good_data listing,
the ledger, the sorting of API failures, and whole files (resumed, rejected, unreadable)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
import requests

from mlsys.api_auth import Role
from mlsys.db import migrate, psycopg2_dsn
from mlsys.features import Kind, get_feature_spec
from mlsys.rowchecks import read_raw_csv
from ops import pg
from pipelines.config import PipelineSettings, load_pipeline_settings
from pipelines.prediction import ledger, records, tasks
from pipelines.prediction.api import (
    ApiRefused,
    ApiRejected,
    ApiUnavailable,
    PredictionApi,
    rejection_reason,
)
from service import launch
from tests.conftest import API_TOKENS, auth_headers, fresh_database
from tests.service.conftest import service_env, start_api

pytestmark = pytest.mark.timeout(300)
MAX_BATCH = 50  # the service's MAX_BATCH_RECORDS here, to see a batch over it refused


@pytest.fixture(scope="module")
def db_url(pg_server) -> str:
    """A database of its own: these tests count rows in `predictions`."""
    url = fresh_database(pg_server, "prediction_units")
    migrate(url)
    return url


@pytest.fixture(scope="module")
def api_url(db_url, trained_model_dir, tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("prediction-api")
    env = service_env(
        db_url, trained_model_dir, tmp, pg.free_port(), MAX_BATCH_RECORDS=str(MAX_BATCH)
    )
    proc, url = start_api(tmp, env)
    yield url
    launch.stop(proc)


@pytest.fixture
def api(api_url) -> Iterator[PredictionApi]:
    client = PredictionApi(api_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def kinds(api_url) -> dict[str, str]:
    answer = requests.get(f"{api_url}/model-info", headers=auth_headers(Role.SCHEDULER), timeout=10)
    return records.feature_kinds(answer.json())


@pytest.fixture(scope="module")
def clean(settings) -> pd.DataFrame:
    """The data set as good_data holds it: every cell as text, no target."""
    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False)
    return frame.drop(columns=[settings.target_column])


def pipeline_settings(tmp: Path, db_url: str, api_url: str, batch: int) -> PipelineSettings:
    (tmp / "good_data").mkdir(parents=True, exist_ok=True)
    return load_pipeline_settings(
        dict(os.environ) | {
            "DATA_DIR": str(tmp), "DATABASE_URL": db_url, "API_URL": api_url,
            "PREDICT_BATCH_SIZE": str(batch),
        }
    )  # fmt: skip


def stored_rows(db_url: str, file_name: str) -> list[int]:
    with psycopg2.connect(psycopg2_dsn(db_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT source_row FROM predictions WHERE source_file = %s ORDER BY source_row",
            (file_name,),
        )
        return [r[0] for r in cur.fetchall()]


def ledger_row(db_url: str, file_name: str) -> tuple | None:
    with psycopg2.connect(psycopg2_dsn(db_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT status, rows, reason FROM predicted_files WHERE file_name = %s", (file_name,)
        )
        return cur.fetchone()


# --- conversion -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "kind", "expected"),
    [
        ("12", "integer", 12),
        (" -3 ", "integer", -3),
        ("33.0", "integer", 33),  # a whole number, for an integer feature
        ("1e3", "float", 1000.0),
        ("2.5", "float", 2.5),
        ("1_000", "integer", "1_000"),  # int() would take it; pandas and the row checks do not
        ("abc", "integer", "abc"),  # sent as it is: the API names the field and the value
        ("inf", "float", "inf"),  # JSON has no infinity
        ("NaN", "float", None),  # one of the NA markers: missing
        ("", "integer", None),
        (" male ", "categorical", "male"),  # the row checks judged the stripped text
        ("NA", "categorical", None),
        ("007", "categorical", "007"),  # a category is text, never a number
        ("5", None, "5"),  # a column the model does not know stays text
    ],
)
def test_a_cell_becomes_the_json_value_of_its_kind(text, kind, expected):
    value = records.json_value(text, kind)
    assert value == expected and type(value) is type(expected)


def test_the_kinds_come_from_model_info_and_match_the_schema(kinds):
    assert kinds == {f.name: str(f.kind) for f in get_feature_spec().features}
    with pytest.raises(ValueError, match="features"):
        records.feature_kinds({"version": "x"})


def test_every_clean_row_converts_to_the_typed_record(clean, kinds, tmp_path):
    path = tmp_path / "clean.csv"
    clean.to_csv(path, index=False)
    converted = records.to_records(read_raw_csv(path), kinds)
    assert len(converted) == len(clean)
    spec = get_feature_spec()
    for record, (_, row) in zip(converted, clean.iterrows(), strict=True):
        for f in spec.features:
            if f.kind is Kind.CATEGORICAL:
                assert record[f.name] == row[f.name]
            else:
                assert type(record[f.name]) is int and record[f.name] == int(row[f.name])


# --- listing and ledger ------------------------------------------------------------------------
def test_only_complete_csv_files_are_listed_oldest_first(tmp_path, db_url):
    good = tmp_path / "good_data"
    good.mkdir()
    for i, name in enumerate(["b.csv", "a.csv", "c.csv"]):
        (good / name).write_text("x\n1\n")
        os.utime(good / name, (1_000_000 + i, 1_000_000 + i))
    (good / ".d.csv.tmp").write_text("x\n")  # the ingestion's name while writing
    (good / ".e.csv").write_text("x\n")
    (good / "notes.txt").write_text("x\n")
    (good / "folder.csv").mkdir()
    assert [p.name for p in tasks.good_files(good)] == ["b.csv", "a.csv", "c.csv"]
    assert tasks.good_files(tmp_path / "absent") == []

    dsn = psycopg2_dsn(db_url)
    ledger.record(dsn, file_name=f"{tmp_path.name}-x", status=ledger.DONE, rows=1)
    os.rename(good / "a.csv", good / f"{tmp_path.name}-x.csv")
    ledger.record(dsn, file_name=f"{tmp_path.name}-x.csv", status=ledger.FAILED, rows=0)
    assert tasks.new_files(good, dsn) == ["b.csv", "c.csv"]


def test_the_ledger_upserts_and_refuses_unknown_statuses(db_url):
    dsn = psycopg2_dsn(db_url)
    ledger.record(dsn, file_name="upsert.csv", status=ledger.FAILED, rows=3, reason="why")
    ledger.record(dsn, file_name="upsert.csv", status=ledger.DONE, rows=10)
    assert ledger_row(db_url, "upsert.csv") == ("done", 10, None)
    assert ledger.recorded(dsn, ["upsert.csv", "other.csv"]) == {"upsert.csv"}
    assert ledger.recorded(dsn, []) == set()
    with pytest.raises(ValueError, match="status"):
        ledger.record(dsn, file_name="upsert.csv", status="half", rows=1)
    assert ledger_row(db_url, "upsert.csv") == ("done", 10, None)


# --- what the API answers ------------------------------------------------------------------
def test_invalid_records_are_a_rejection_with_file_rows(api, clean, kinds):
    batch = records.to_records(clean.iloc[:3], kinds)
    batch[1]["age"] = -5
    with pytest.raises(ApiRejected) as caught:
        api.predict_scheduled("rejected-units.csv", [40, 41, 42], batch)
    assert caught.value.status == 422
    reason = rejection_reason(caught.value, rows=[40, 41, 42], total=100)
    assert reason.startswith("the API answered 422 for rows 40-42 of 100 (rows 0-39 were stored")
    assert "1 of 3 records are invalid" in reason
    assert "row 41 age -5: -5 is below the minimum 18" in reason


def test_rows_stored_with_other_features_are_a_rejection(api, clean, kinds, db_url):
    batch = records.to_records(clean.iloc[:2], kinds)
    assert api.predict_scheduled("conflict-units.csv", [0, 1], batch).stored == 2
    other = records.to_records(clean.iloc[5:7], kinds)
    with pytest.raises(ApiRejected) as caught:
        api.predict_scheduled("conflict-units.csv", [0, 1], other)
    assert caught.value.status == 409
    again = api.predict_scheduled("conflict-units.csv", [0, 1], batch)
    assert (again.stored, again.already_stored) == (0, 2)
    assert stored_rows(db_url, "conflict-units.csv") == [0, 1]


def test_a_batch_over_the_service_limit_is_refused_not_blamed_on_the_file(api, clean, kinds):
    batch = records.to_records(clean.iloc[: MAX_BATCH + 1], kinds)
    with pytest.raises(ApiRefused, match="MAX_BATCH_RECORDS"):
        api.predict_scheduled("too-big-units.csv", list(range(MAX_BATCH + 1)), batch)


def test_a_missing_or_refused_credential_fails_loudly_and_marks_no_file(
    api_url, clean, kinds, tmp_path, monkeypatch
):
    """The DAG's token is read at each call; none, or one the service refuses, is a
    configuration problem (ApiRefused), never a rejected file."""
    batch = records.to_records(clean.iloc[:1], kinds)
    monkeypatch.setenv("API_TOKEN_SCHEDULER", "")
    nothing = PredictionApi(api_url, var_dir=tmp_path)
    with pytest.raises(ApiRefused, match="API_TOKEN_SCHEDULER is not set"):
        nothing.predict_scheduled("no-token.csv", [0], batch)
    monkeypatch.setenv("API_TOKEN_SCHEDULER", API_TOKENS[Role.WEBAPP])  # the UI's token
    with pytest.raises(ApiRefused, match="403.*may not store predictions of source 'scheduled'"):
        PredictionApi(api_url).predict_scheduled("ui-token.csv", [0], batch)
    monkeypatch.setenv("API_TOKEN_SCHEDULER", "not-a-token-of-this-service")
    with pytest.raises(ApiRefused, match="401"):
        PredictionApi(api_url).model_info()


def test_no_server_and_a_database_down_are_unavailable(tmp_path, trained_model_dir, clean, kinds):
    nobody = PredictionApi(f"http://127.0.0.1:{pg.free_port()}")
    with pytest.raises(ApiUnavailable, match="failed"):
        nobody.model_info()
    # The real service with its database unreachable: 503, which must mean "retry".
    env = service_env(
        f"postgresql+psycopg2://postgres@127.0.0.1:{pg.free_port()}/nowhere",
        trained_model_dir, tmp_path, pg.free_port(), API_DB_CONNECT_TIMEOUT_S="1",
    )  # fmt: skip
    proc, url = start_api(tmp_path, env)
    try:
        client = PredictionApi(url)
        assert records.feature_kinds(client.model_info()) == kinds  # needs no database
        with pytest.raises(ApiUnavailable, match="503"):
            client.predict_scheduled("db-down.csv", [0], records.to_records(clean[:1], kinds))
    finally:
        launch.stop(proc)


# --- whole files ----------------------------------------------------------------------------
def test_a_file_resumes_where_an_earlier_attempt_stopped(api, clean, kinds, tmp_path, db_url):
    path = tmp_path / "resume-units.csv"
    clean.iloc[:95].to_csv(path, index=False)
    first = records.to_records(read_raw_csv(path).iloc[:30], kinds)
    api.predict_scheduled(path.name, list(range(30)), first)  # as a failed attempt left it

    outcome = tasks.predict_file(api, path, kinds, batch_size=20)
    assert (outcome.status, outcome.rows, outcome.total) == ("done", 95, 95)
    assert (outcome.stored, outcome.already_stored) == (65, 30)
    assert stored_rows(db_url, path.name) == list(range(95))


def test_a_rejected_row_stops_the_file_and_says_what_was_stored(
    api, clean, kinds, tmp_path, db_url
):
    frame = clean.iloc[:60].copy()
    frame.loc[25, "sex"] = "unknown"
    path = tmp_path / "rejected-mid-units.csv"
    frame.to_csv(path, index=False)
    outcome = tasks.predict_file(api, path, kinds, batch_size=10)
    assert (outcome.status, outcome.rows, outcome.total) == ("failed", 20, 60)
    assert "for rows 20-29 of 60 (rows 0-19 were stored" in outcome.reason
    assert "row 25 sex 'unknown'" in outcome.reason
    assert stored_rows(db_url, path.name) == list(range(20))


def test_unreadable_and_header_only_files(api, kinds, tmp_path):
    bad = tmp_path / "latin1-units.csv"
    bad.write_bytes("sex,age\nm\xe4nnlich,30\n".encode("latin-1"))
    outcome = tasks.predict_file(api, bad, kinds, batch_size=10)
    assert outcome.status == "failed" and outcome.rows == 0
    assert outcome.reason.startswith("the file cannot be read as CSV")
    empty = tmp_path / "empty-units.csv"
    empty.write_text("")
    assert tasks.predict_file(api, empty, kinds, batch_size=10).status == "failed"
    header = tmp_path / "header-units.csv"
    header.write_text(",".join(kinds) + "\n")
    assert tasks.predict_file(api, header, kinds, batch_size=10).status == "done"


def test_make_predictions_with_the_api_down_records_nothing_then_succeeds(
    clean, tmp_path, db_url, api_url, kinds
):
    down = pipeline_settings(tmp_path, db_url, f"http://127.0.0.1:{pg.free_port()}", 25)
    names = ["down-1-units.csv", "down-2-units.csv"]
    for i, name in enumerate(names):
        clean.iloc[i * 40 : i * 40 + 40].to_csv(down.core.good_data_dir / name, index=False)
    assert tasks.check_for_new_data(down) == names
    with pytest.raises(ApiUnavailable):
        tasks.make_predictions(down, names)
    assert [ledger_row(db_url, n) for n in names] == [None, None]

    up = pipeline_settings(tmp_path, db_url, api_url, 25)
    summary = tasks.make_predictions(up, names + ["vanished-units.csv"])
    assert summary["done"] == names and summary["failed"] == []
    assert summary["vanished"] == ["vanished-units.csv"]
    assert summary["rows_stored"] == 80
    assert [ledger_row(db_url, n) for n in names] == [("done", 40, None)] * 2
    assert ledger_row(db_url, "vanished-units.csv") is None
    assert tasks.check_for_new_data(up) == []
    # A retried task gets the same names: settled files are not sent again (an API that is
    # down proves that nothing is called).
    again = tasks.make_predictions(down, names)
    assert again["done"] == [] and again["settled_before"] == sorted(names)


def test_a_prediction_run_lasts_at_least_its_floor_unless_it_fails():
    """`paced` waits out the rest of PREDICT_MIN_RUN_SECONDS after a short body, nothing after
    a long one, and never after an error (a failing task must fail at once)."""
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    with tasks.paced(10.0, clock=lambda: now[0], sleep=sleep):
        now[0] += 2.5
    assert slept == [7.5]
    slept.clear()
    with tasks.paced(10.0, clock=lambda: now[0], sleep=sleep):
        now[0] += 12.0
    assert slept == []
    with pytest.raises(RuntimeError), tasks.paced(10.0, clock=lambda: now[0], sleep=sleep):
        raise RuntimeError("API down")
    assert slept == []
    assert load_pipeline_settings({"PREDICT_MIN_RUN_SECONDS": "0"}).predict_min_run_seconds == 0
