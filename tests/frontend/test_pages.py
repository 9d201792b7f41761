"""Both pages under Streamlit's AppTest, against the real service and database.

Expected predictions are computed here from the same trained model (mlsys.model), and what the
page claims is checked against the rows in PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from frontend import chunked_sending
from frontend.api_client import ApiClient
from frontend.config import get_ui_settings
from frontend.upload_checks import parse_upload
from mlsys import model
from mlsys.features import get_feature_spec
from ops import pg
from tests.frontend.conftest import (
    INVALID_CELLS,
    count_predictions,
    post_scheduled,
    with_invalid_rows,
)

APP = str(Path(chunked_sending.__file__).with_name("app.py"))
PAST = "app_pages/past_predictions.py"
TIMEOUT = 60


@pytest.fixture
def use_api(monkeypatch: pytest.MonkeyPatch):
    """Point the UI at a base URL (the settings and Streamlit's caches are per process)."""

    def point(url: str, **env: str) -> None:
        monkeypatch.setenv("API_URL", url)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_ui_settings.cache_clear()
        st.cache_data.clear()

    yield point
    get_ui_settings.cache_clear()
    st.cache_data.clear()


@pytest.fixture(scope="module")
def expected(trained_model_dir, applications) -> pd.DataFrame:
    """What the model says for every application: label and probability of the positive class."""
    loaded = model.load(trained_model_dir)
    proba = loaded.predict_proba(model.encode_frame(applications, get_feature_spec()))
    return pd.DataFrame({"prediction": [loaded.label(p) for p in proba], "probability": proba})


def app() -> AppTest:
    return AppTest.from_file(APP, default_timeout=TIMEOUT).run()


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]


# --- predict page: the form -------------------------------------------------------------------


def fill_form(at: AppTest, record: dict) -> None:
    for name, value in record.items():
        widget = at.selectbox(key=f"predict_one_{name}") if isinstance(value, str) else None
        if widget is not None:
            widget.select(value)
        else:
            at.number_input(key=f"predict_one_{name}").set_value(int(value))


def test_the_form_is_built_from_the_models_features(api_url, use_api):
    use_api(api_url)
    at = app()
    assert_no_exception(at)
    info = ApiClient(api_url).model_info()
    selects = {w.label: w for w in at.selectbox}
    numbers = {w.label: w for w in at.number_input}
    for feature in info.features:
        if feature.is_categorical:
            assert selects[feature.name].options == list(feature.values)
        else:
            assert (numbers[feature.name].min, numbers[feature.name].max) == (
                feature.minimum,
                feature.maximum,
            )
    assert len(selects) + len(numbers) == len(info.features)


def test_predict_one_application_from_the_form(api_url, use_api, ui_db, applications, expected):
    use_api(api_url)
    at = app()
    record = applications.iloc[1].to_dict()
    fill_form(at, record)
    at.button(key="FormSubmitter:predict_one_form-Predict").click().run()
    assert_no_exception(at)

    want = expected.iloc[1]
    [message] = [s.value for s in at.success]
    assert message.startswith(f"Prediction: {want.prediction} (")
    assert f", probability of class 1: {want.probability:.2f}." in message
    with ui_db.cursor() as cur:
        cur.execute("SELECT id, source, prediction, features FROM predictions")
        [(row_id, source, prediction, features)] = cur.fetchall()
    assert (source, prediction) == ("webapp", want.prediction)
    assert message.endswith(f"Stored as #{row_id}.")
    assert features == {k: (v if isinstance(v, str) else int(v)) for k, v in record.items()}


def test_a_value_the_model_never_saw_is_flagged_on_the_page_and_stored(
    api_url, use_api, ui_db, applications, trained_model_dir
):
    """An age the schema accepts but above every training row's: the page says so."""
    use_api(api_url)
    at = app()
    metadata = json.loads((trained_model_dir / "metadata.json").read_text(encoding="utf-8"))
    caption = " ".join(c.value for c in at.caption)
    trained = metadata["schema_version"]
    assert f"with schema v{trained['version']} ({trained['sha256'][:8]})." in caption
    assert f"checked against schema v{trained['version']} ({trained['sha256'][:8]})." in caption
    assert not at.info  # the same schema: no note about a newer one
    age = int(metadata["seen_in_training"]["age"]["maximum"]) + 1
    fill_form(at, applications.iloc[1].to_dict() | {"age": age})
    at.button(key="FormSubmitter:predict_one_form-Predict").click().run()
    assert_no_exception(at)
    assert at.success
    [warning] = [w.value for w in at.warning]
    assert warning.startswith("The model never saw this value of age in training")
    with ui_db.cursor() as cur:
        cur.execute("SELECT unseen_features FROM predictions ORDER BY id DESC LIMIT 1")
        assert cur.fetchone() == (["age"],)


def test_an_incomplete_form_names_the_empty_fields_and_sends_nothing(api_url, use_api, ui_db):
    use_api(api_url)
    at = app()
    at.selectbox(key="predict_one_sex").select("female")
    at.number_input(key="predict_one_age").set_value(30)
    at.button(key="FormSubmitter:predict_one_form-Predict").click().run()
    [error] = [e.value for e in at.error]
    assert error.startswith("Fill in every field first; empty: job, housing,")
    assert "sex" not in error and "age" not in error
    assert count_predictions(ui_db) == 0


# --- predict page: a CSV ----------------------------------------------------------------------


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="predict_csv_file").set_value((name, data, "text/csv"))
    return at.run()


def test_predict_a_csv_in_chunks_with_summary_and_download(
    api_url, use_api, ui_db, applications, expected
):
    use_api(api_url, UI_BATCH_RECORDS="300")  # 1000 rows: four requests
    at = upload(app(), "applications.csv", applications.to_csv(index=False).encode())
    assert_no_exception(at)
    assert any("1000 rows, all valid" in m.value for m in at.markdown)
    assert count_predictions(ui_db) == 0  # parsed and checked, nothing sent before the button

    at.button(key="predict_csv_send").click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == ["Predicted 1000 rows."]
    [results] = [d.value for d in at.dataframe]
    want = expected["prediction"].value_counts()
    assert {m.label: m.value for m in at.metric} == {
        "class 0 (negative)": str(want.get("0", 0)),
        "class 1 (positive)": str(want.get("1", 0)),
    }
    assert len(results) == 1000
    assert list(results["prediction"]) == list(expected["prediction"])
    assert list(results["age"]) == list(applications["age"])
    assert at.get("download_button")  # the results can be downloaded
    with ui_db.cursor() as cur:
        cur.execute("SELECT prediction, count(*) FROM predictions GROUP BY 1")
        assert dict(cur.fetchall()) == {k: v for k, v in want.items()}

    # Streamlit keeps the file across reruns (streamlit#7097): a rerun must not send it again.
    at.run()
    at.selectbox(key="predict_one_sex").select("male").run()
    assert count_predictions(ui_db) == 1000
    assert [s.value for s in at.success] == ["Predicted 1000 rows."]


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("missing.csv", lambda f: f.drop(columns="age").to_csv(index=False).encode(),
         "missing column: age"),
        ("empty.csv", lambda f: b"", "The file is empty (0 bytes): not even a header."),
        ("photo.csv", lambda f: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00", "this is binary data, not CSV text"),
        ("huge.csv", lambda f: pd.concat([f] * 30).to_csv(index=False).encode(),
         "over the limit of 1 MB"),
    ],
)  # fmt: skip
def test_a_bad_csv_is_refused_with_the_problem_and_nothing_is_sent(
    api_url, use_api, ui_db, applications, name, make, expected
):
    use_api(api_url, UI_MAX_UPLOAD_MB="1")
    at = upload(app(), name, make(applications))
    assert_no_exception(at)
    [error] = [e.value for e in at.error]
    assert error.startswith(f"{name}: ")
    assert expected in error
    assert not [b for b in at.button if b.key == "predict_csv_send"]  # no way to send it
    assert count_predictions(ui_db) == 0


def test_invalid_rows_are_listed_and_only_the_valid_ones_predicted_on_request(
    api_url, use_api, ui_db, applications, expected
):
    """30 rows of which 11 are invalid: the 11 listed with their reasons, the 19 predicted only
    after the button, and the results keep all 30 rows with a status."""
    use_api(api_url, UI_BATCH_RECORDS="5")  # 19 rows: four chunks
    frame = with_invalid_rows(applications)
    at = upload(app(), "mixed.csv", frame.to_csv(index=False).encode())
    assert_no_exception(at)
    [warning] = [w.value for w in at.warning]
    assert warning.startswith("**mixed.csv**: 11 of 30 rows have invalid values and cannot be")
    assert "12 invalid values in 11 rows: " in warning
    [problems] = [d.value for d in at.dataframe]
    assert sorted(set(problems["row"])) == sorted(INVALID_CELLS)
    assert len(problems) == sum(len(c) for c in INVALID_CELLS.values())
    for row, column, value in zip(
        problems["row"], problems["column"], problems["value"], strict=True
    ):
        assert INVALID_CELLS[row][column] == value
    assert [d.label for d in at.get("download_button")] == [
        "Download the 11 invalid rows with their reasons (CSV)"
    ]
    assert count_predictions(ui_db) == 0  # nothing sent before the button

    send = at.button(key="predict_csv_send")
    assert send.label == "Predict the 19 valid rows"
    send.click().run()
    assert_no_exception(at)
    assert [s.value for s in at.success] == ["Predicted 19 rows."]
    [note] = [i.value for i in at.info]
    assert note.startswith("11 rows were not predicted because of invalid values (rows 2, 4, 5,")
    results = at.dataframe[-1].value
    assert len(results) == 30 and list(results.index) == list(range(1, 31))
    valid = [r for r in range(1, 31) if r not in INVALID_CELLS]
    assert list(results.loc[valid, "status"]) == ["predicted"] * 19
    assert list(results.loc[valid, "prediction"]) == [expected.prediction[r - 1] for r in valid]
    assert set(results.loc[sorted(INVALID_CELLS), "status"]) == {"invalid, not sent"}
    with ui_db.cursor() as cur:
        cur.execute("SELECT features FROM predictions ORDER BY id")
        stored = [f for (f,) in cur.fetchall()]
    assert stored == [{k: (v if isinstance(v, str) else int(v)) for k, v in
                       applications.iloc[r - 1].to_dict().items()} for r in valid]  # fmt: skip

    at.run()  # a rerun sends nothing again
    assert count_predictions(ui_db) == 19


def test_a_file_without_a_valid_row_offers_nothing_to_send(api_url, use_api, ui_db, applications):
    use_api(api_url)
    at = upload(
        app(), "young.csv", applications.iloc[:5].assign(age=3).to_csv(index=False).encode()
    )
    assert_no_exception(at)
    assert at.warning[0].value.startswith("**young.csv**: 5 of 5 rows have invalid values")
    assert [e.value for e in at.error] == [
        "No row is valid: nothing can be predicted. Fix the file and upload it again."
    ]
    assert not [b for b in at.button if b.key == "predict_csv_send"]
    assert count_predictions(ui_db) == 0


def test_an_excel_export_is_read_and_the_user_told_how(api_url, use_api, ui_db):
    """The same reader as the ingestion: the issue's Excel file (a `sep=,` line, CRLF)."""
    from tests.data.csv_shapes import case_file

    use_api(api_url)
    at = upload(app(), "excel.csv", case_file("excel_sep_hint_line.csv"))
    assert_no_exception(at)
    assert [i.value for i in at.info] == [
        "While reading the file: line 1 is Excel's 'sep=,' hint: skipped, fields split on ','."
    ]
    assert any("20 rows, all valid" in m.value for m in at.markdown)
    assert count_predictions(ui_db) == 0


def _upload_records(api_url: str, applications, rows: int) -> list[dict]:
    """The first `rows` applications, as the UI's CSV check hands them to send_in_chunks."""
    with ApiClient(api_url) as api:
        return parse_upload(
            applications.iloc[:rows].to_csv(index=False).encode(),
            api.model_info().features,
            max_bytes=1 << 20,
        ).records


def test_a_chunk_the_api_refuses_is_reported_with_rows_and_what_was_stored(
    api_url, ui_db, applications
):
    """The API's own check, bypassing the UI's: chunk 1 is stored, chunk 2 refused whole."""
    records = _upload_records(api_url, applications, 4)
    records[3] = records[3] | {"age": 5}
    with ApiClient(api_url) as api:
        outcome = chunked_sending.send_in_chunks(api, records, chunk_size=2)
    assert not outcome.complete and len(outcome.predictions) == 2
    assert outcome.error.startswith("The API refused rows 3 to 4:")
    assert outcome.error.endswith("Rows 1 to 2 were predicted and stored; rows 3 to 4 were not.")
    assert [(p.row, p.column, p.value) for p in outcome.problems] == [(4, "age", "5")]
    assert not outcome.retryable  # the same rows would be refused again
    assert outcome.refused == (2, 4)
    assert count_predictions(ui_db) == 2

    # Fixed, it resumes after the last stored row: rows 1 and 2 are not sent twice.
    records[3]["age"] = 50
    outcome.retry()
    with ApiClient(api_url) as api:
        chunked_sending.send_in_chunks(api, records, chunk_size=2, outcome=outcome)
    assert outcome.complete and outcome.sent == 4
    assert count_predictions(ui_db) == 4


def test_a_refused_chunk_names_rows_of_the_file_when_invalid_rows_were_skipped(
    api_url, ui_db, applications
):
    """The valid rows of the 30-row file in chunks of 5; the API refuses the second chunk."""
    with ApiClient(api_url) as api:
        checked = parse_upload(
            with_invalid_rows(applications).to_csv(index=False).encode(),
            api.model_info().features,
            max_bytes=1 << 20,
        )
        records = [dict(r) for r in checked.records]
        records[6]["age"] = 5  # row 11 of the file, which the UI's check passed
        outcome = chunked_sending.BatchOutcome(total=len(records), rows=checked.valid_rows)
        chunked_sending.send_in_chunks(api, records, chunk_size=5, outcome=outcome)
    assert outcome.sent == 5 and count_predictions(ui_db) == 5
    assert outcome.error.startswith("The API refused the 5 valid rows among rows 10 to 16:")
    assert outcome.error.endswith(
        "The 5 valid rows among rows 1 to 8 were predicted and stored; "
        "the 14 valid rows among rows 10 to 29 were not."
    )
    assert [(p.row, p.column, p.value) for p in outcome.problems] == [(11, "age", "5")]


def test_send_the_remaining_rows_after_a_timeout_never_stores_a_row_twice(
    api_url, ui_db, ui_database_url, applications
):
    """The UI gives up on chunk 1 while the service is still storing it (the predictions
    table is locked for writes meanwhile, as a slow database would be); the service then
    stores it, after the UI said "nothing was stored". "Send the remaining rows" sends that
    chunk again, with the same Idempotency-Key: it is answered "already stored"."""
    import time

    import psycopg2

    from mlsys.db import psycopg2_dsn

    records = _upload_records(api_url, applications, 6)
    before = count_predictions(ui_db)
    outcome = chunked_sending.BatchOutcome(total=len(records))
    slow = psycopg2.connect(psycopg2_dsn(ui_database_url))
    try:
        with slow.cursor() as cur:
            cur.execute("LOCK TABLE predictions IN EXCLUSIVE MODE")  # reads go on
        with ApiClient(api_url, timeout_s=1) as api:
            chunked_sending.send_in_chunks(api, records, chunk_size=2, outcome=outcome)
        assert outcome.retryable and outcome.sent == 0
        assert "did not answer in time" in outcome.error and "Nothing was stored" in outcome.error
    finally:
        slow.rollback()  # the service goes on and stores the chunk the UI gave up on
        slow.close()
    deadline = time.monotonic() + 20
    while count_predictions(ui_db) < before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert count_predictions(ui_db) == before + 2

    outcome.retry()  # the button "Send the remaining 6 rows"
    with ApiClient(api_url) as api:
        chunked_sending.send_in_chunks(api, records, chunk_size=2, outcome=outcome)
    assert outcome.complete and [p.features for p in outcome.predictions] == records
    assert count_predictions(ui_db) == before + 6  # not 8: rows 1-2 are stored once
    assert len({p.id for p in outcome.predictions}) == 6


def test_two_runs_of_the_page_sending_one_file_at_once_store_each_row_once(
    api_url, ui_db, applications
):
    """Streamlit's fast reruns start a new run of the page while the old one is stopping:
    both then call send_in_chunks with the same outcome. One must wait for the other."""
    import threading

    records = _upload_records(api_url, applications, 60)
    before = count_predictions(ui_db)
    outcome = chunked_sending.BatchOutcome(total=len(records))
    started = threading.Barrier(2)

    def run_of_the_page() -> None:
        with ApiClient(api_url) as api:
            started.wait()
            chunked_sending.send_in_chunks(api, records, chunk_size=5, outcome=outcome)

    runs = [threading.Thread(target=run_of_the_page) for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(60)
    assert outcome.complete and outcome.sent == 60
    assert [p.features for p in outcome.predictions] == records
    assert count_predictions(ui_db) == before + 60


def test_the_api_down_while_sending_says_so_and_the_rest_can_be_sent_later(
    use_api, ui_db, ui_database_url, trained_model_dir, tmp_path, applications
):
    """An API of this test's own, stopped after the page loaded and started again."""
    from service.launch import spawn, stop, wait_until_serving

    port = pg.free_port()
    env = {"DATABASE_URL": ui_database_url, "MODEL_DIR": str(trained_model_dir),
           "DATA_DIR": str(tmp_path / "data"), "API_PORT": str(port), "API_WORKERS": "1"}  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    proc = spawn(env, tmp_path / "api.log")
    try:
        wait_until_serving(proc, url)
        use_api(url, UI_BATCH_RECORDS="40")
        at = upload(app(), "applications.csv", applications.iloc[:100].to_csv(index=False).encode())
        stop(proc)

        at.button(key="predict_csv_send").click().run()
        assert_no_exception(at)
        [error] = [e.value for e in at.error]
        assert error.startswith(f"The model API at {url} is down or unreachable")
        assert error.endswith("Nothing was stored.")
        assert count_predictions(ui_db) == 0
        resume = at.button(key="predict_csv_resume")
        assert resume.label == "Send the remaining 100 rows"
        assert not [b for b in at.button if b.key == "predict_csv_send"]  # sent at most once

        proc = spawn(env, tmp_path / "api.log")
        wait_until_serving(proc, url)
        resume.click().run()
        assert_no_exception(at)
        assert [s.value for s in at.success] == ["Predicted 100 rows."]
        assert count_predictions(ui_db) == 100
    finally:
        stop(proc)


# --- the API down -------------------------------------------------------------------------------


def test_both_pages_say_the_api_is_down_without_a_stack_trace(use_api):
    url = f"http://127.0.0.1:{pg.free_port()}"
    use_api(url)
    at = app()
    assert_no_exception(at)
    [error] = [e.value for e in at.error]
    assert error.startswith(f"The model API at {url} is down or unreachable")
    at.switch_page(PAST).run()
    assert_no_exception(at)
    assert [e.value for e in at.error] == [error]


def test_the_database_down_behind_the_api_is_a_message_and_a_retry(
    use_api, trained_model_dir, tmp_path, applications
):
    """A real service whose database does not answer: it serves /model-info, answers 503."""
    from service.launch import spawn, stop, wait_until_serving

    port = pg.free_port()
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{pg.free_port()}/gone",
           "MODEL_DIR": str(trained_model_dir), "DATA_DIR": str(tmp_path / "data"),
           "API_PORT": str(port), "API_WORKERS": "1"}  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    proc = spawn(env, tmp_path / "api.log")
    try:
        wait_until_serving(proc, url)
        use_api(url)
        at = app()
        fill_form(at, applications.iloc[0].to_dict())
        at.button(key="FormSubmitter:predict_one_form-Predict").click().run()
        assert_no_exception(at)
        [error] = [e.value for e in at.error]
        assert error.startswith("The model API failed: the database is unreachable")
        assert not at.success

        upload(at, "applications.csv", applications.iloc[:10].to_csv(index=False).encode())
        at.button(key="predict_csv_send").click().run()
        assert_no_exception(at)
        assert at.error[-1].value.endswith("Nothing was stored.")
        assert at.button(key="predict_csv_resume").label == "Send the remaining 10 rows"

        at.switch_page(PAST).run()
        assert_no_exception(at)
        assert at.error[0].value.startswith("The model API failed: the database is unreachable")
    finally:
        stop(proc)


# --- past predictions ---------------------------------------------------------------------------


def seed(api_url: str, conn, applications: pd.DataFrame) -> None:
    """30 webapp predictions, 5 scheduled ones, and one webapp prediction of ten days ago."""
    records = applications.iloc[:36].to_dict("records")
    with ApiClient(api_url) as api:
        api.predict(records[:30])
        post_scheduled(api_url, "part-0001.csv", records[30:35])
        [old] = api.predict(records[35:]).predictions
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE predictions SET created_at = now() - interval '10 days' WHERE id = %s",
            (old.id,),
        )


def test_past_predictions_filter_by_source_and_date_and_page(api_url, use_api, ui_db, applications):
    seed(api_url, ui_db, applications)
    use_api(api_url)
    at = app().switch_page(PAST).run()
    assert_no_exception(at)
    # Default: the last 7 days, every source.
    assert any(m.value.startswith("**35 predictions** (all)") for m in at.markdown)
    [chart] = at.get("vega_lite_chart")
    assert "10 minutes (UTC)" in chart.proto.spec  # predictions of the last minutes
    table = at.dataframe[0].value
    assert len(table) == 35 and set(table["source"]) == {"webapp", "scheduled"}
    assert {"age", "purpose", "prediction", "probability"} <= set(table.columns)

    at.radio(key="past_source").set_value("scheduled predictions").run()
    table = at.dataframe[0].value
    assert sorted(table["source_row"]) == [0, 1, 2, 3, 4]
    assert set(table["source_file"]) == {"part-0001.csv"}

    at.radio(key="past_source").set_value("webapp").run()
    at.selectbox(key="past_page_size").set_value(25).run()
    assert len(at.dataframe[0].value) == 25
    assert at.button(key="past_prev").disabled
    at.button(key="past_next").click().run()
    second = at.dataframe[0].value
    assert len(second) == 5 and at.button(key="past_next").disabled
    assert not set(second["id"]) & set(table["id"])
    at.button(key="past_prev").click().run()
    assert len(at.dataframe[0].value) == 25

    today = datetime.now(UTC).date()
    at.date_input(key="past_dates").set_value(
        (today - timedelta(days=11), today - timedelta(days=9))
    ).run()
    [old] = at.dataframe[0].value.to_dict("records")
    assert old["source"] == "webapp"

    at.date_input(key="past_dates").set_value((today.replace(year=2020), today.replace(year=2020)))
    at.run()
    assert [i.value for i in at.info][0].startswith("No predictions from webapp between 2020-")


def test_the_form_follows_a_new_schema_version_at_the_next_rerun(
    use_api, ui_database_url, trained_model_dir, tmp_path, monkeypatch
):
    """Issue 16: a schema written while the UI and the API run changes the form at the next
    rerun (not a minute later: the cached /model-info is keyed by the schema's hash), and the
    page names the version. The API is a real uvicorn on a copy of the schema."""
    import shutil

    from mlsys.config import ROOT, get_settings
    from mlsys.schema_versions import read_snapshot, write_schema
    from service.launch import spawn, stop, wait_until_serving

    schema_path = tmp_path / "schema.pbtxt"
    shutil.copy(ROOT / "schema" / "schema.pbtxt", schema_path)
    first = read_snapshot(schema_path)
    port = pg.free_port()
    env = {"DATABASE_URL": ui_database_url, "MODEL_DIR": str(trained_model_dir),
           "DATA_DIR": str(tmp_path / "data"), "API_PORT": str(port), "API_WORKERS": "1",
           "SCHEMA_PATH": str(schema_path)}  # fmt: skip
    proc = spawn(env, tmp_path / "api.log")
    try:
        wait_until_serving(proc, f"http://127.0.0.1:{port}")
        use_api(f"http://127.0.0.1:{port}", SCHEMA_PATH=str(schema_path))
        get_settings.cache_clear()
        st.cache_resource.clear()
        at = app()
        assert_no_exception(at)
        assert at.number_input(key="predict_one_age").max == 100
        assert f"schema {first.version.short}" in at.caption[0].value
        narrowed = first.text.replace("min: 18\n    max: 100", "min: 18\n    max: 65", 1)
        second = write_schema(schema_path, narrowed, base=first.version,
                              change_comment="applicants up to 65 only")  # fmt: skip
        at.run()
        assert_no_exception(at)
        assert at.number_input(key="predict_one_age").max == 65
        assert f"schema {second.short}" in at.caption[0].value
    finally:
        stop(proc)
        monkeypatch.undo()
        get_settings.cache_clear()
        st.cache_resource.clear()
