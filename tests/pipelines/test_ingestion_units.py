"""The ingestion's typed functions, without Airflow: row checks, claims, split, store,
alerts and report."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from mlsys import rowchecks
from mlsys.db import psycopg2_dsn
from mlsys.features import Kind, get_feature_spec
from pipelines.ingestion import alerts, claim, report, split, store


@pytest.fixture(scope="module")
def clean(settings) -> pd.DataFrame:
    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False)
    return frame.drop(columns=[settings.target_column])


def test_no_row_of_the_clean_data_set_is_flagged(clean):
    result = rowchecks.check_rows(clean.drop_duplicates(), get_feature_spec())
    assert result.reasons == [] and not result.unusable and result.unexpected_columns == []


@pytest.mark.parametrize(
    ("kind", "value", "rule"),
    [
        (Kind.CATEGORICAL, "nope", rowchecks.UNKNOWN_CATEGORY),
        (Kind.CATEGORICAL, "NA", rowchecks.MISSING_VALUE),
        (Kind.INTEGER, "", rowchecks.MISSING_VALUE),
        (Kind.INTEGER, "abc", rowchecks.NOT_A_NUMBER),
        (Kind.INTEGER, "2.5", rowchecks.NOT_AN_INTEGER),
        (Kind.INTEGER, "100000000", rowchecks.OUT_OF_RANGE),
        (Kind.INTEGER, "-1", rowchecks.OUT_OF_RANGE),
    ],
)
def test_each_row_rule_flags_exactly_the_bad_cell(clean, kind, value, rule):
    spec = get_feature_spec()
    feature = next(f for f in spec.features if f.kind is kind)
    frame = clean.iloc[:20].reset_index(drop=True).copy()
    frame.loc[5, feature.name] = value
    result = rowchecks.check_rows(frame, spec)
    assert [(r.row, r.rule, r.column, r.value) for r in result.reasons] == [
        (5, rule, feature.name, value)
    ]


def test_missing_and_extra_columns_are_file_level(clean):
    spec = get_feature_spec()
    frame = clean.iloc[:5].drop(columns=[spec.names[0]]).assign(extra="x")
    result = rowchecks.check_rows(frame, spec)
    assert result.unusable and result.bad_rows == [0, 1, 2, 3, 4]
    assert result.missing_columns == [spec.names[0]] and result.unexpected_columns == ["extra"]


def test_two_claimers_never_take_the_same_file(tmp_path: Path):
    raw, processing = tmp_path / "raw", tmp_path / "processing"
    raw.mkdir()
    for i in range(40):
        (raw / f"f{i:02}.csv").write_text("a\n1\n")
    (raw / ".partial.tmp").write_text("half")
    claimed: list[Path] = []
    lock = threading.Lock()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        while (path := claim.claim_random_file(raw, processing, rng)) is not None:
            with lock:
                claimed.append(path)

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    originals = sorted(p.name.split("--")[0] for p in claimed)
    assert originals == [f"f{i:02}" for i in range(40)]  # each exactly once
    assert [p.name for p in raw.iterdir()] == [".partial.tmp"]  # never a file being written


def _result(file: str, rows: int, bad: dict[str, list[dict]], **extra) -> dict:
    return {
        "file": file, "rows_total": rows, "rows_valid": rows - len(bad), "rows_invalid": len(bad),
        "unusable": False, "parse_error": None, "bad_rows": bad, "unexpected_columns": [],
        "issues": [], "tfdv_anomalies": [], "drift": [], "feature_stats": [], "criticality": "low",
    } | extra  # fmt: skip


def test_split_loses_no_row_and_is_idempotent(tmp_path: Path, clean):
    claimed = tmp_path / "processing" / "x--1.csv"
    claimed.parent.mkdir()
    clean.iloc[:10].assign(extra="e").to_csv(claimed, index=False)
    bad = {
        "2": [{"rule": "out_of_range", "column": "age", "value": "-1"}],
        "7": [{"rule": "duplicate_row", "column": "", "value": ""}],
    }
    result = _result("x--1.csv", 10, bad, unexpected_columns=["extra"])
    out = split.split_file(claimed, result, tmp_path / "good", tmp_path / "bad")
    assert (out["good_rows"], out["bad_rows"]) == (8, 2) and not claimed.exists()
    good = rowchecks.read_raw_csv(tmp_path / "good" / "x--1.csv")
    assert "extra" not in good.columns and len(good) == 8
    bad_frame = rowchecks.read_raw_csv(tmp_path / "bad" / "x--1.csv")
    assert list(bad_frame[split.ROW_COLUMN]) == ["2", "7"]
    assert json.loads(bad_frame[split.ERRORS_COLUMN][0]) == bad["2"]
    # A retry after success finds the outputs instead of failing or writing again.
    again = split.split_file(claimed, result, tmp_path / "good", tmp_path / "bad")
    assert again["retried"] and again["good"] == out["good"]


def test_saving_statistics_twice_does_not_duplicate(database_url):
    issues = [
        {
            "error_type": "out_of_range",
            "column": "age",
            "level": "row",
            "row_count": 1,
            "description": "d",
        }
    ]
    drift = [
        {
            "feature": "age",
            "metric": "jensen_shannon",
            "value": 0.2,
            "threshold": 0.1,
            "status": "drift",
            "window_rows": 300,
        }
    ]
    result = _result("retry--1.csv", 10, {"2": []}, issues=issues, drift=drift)
    dsn = psycopg2_dsn(database_url)
    first = store.save_statistics(dsn, result, report_path="retry--1.html")
    second = store.save_statistics(dsn, result, report_path="retry--1.html")
    assert first == second
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ingestion_files WHERE file_name = 'retry--1.csv'")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT count(*) FROM data_quality_issues WHERE file_id = %s", (first,))
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT status, value FROM feature_drift WHERE file_id = %s", (first,))
        assert cur.fetchall() == [("drift", 0.2)]


def test_alert_levels_and_delivery_errors():
    assert alerts.should_alert("high", "medium") and not alerts.should_alert("low", "medium")
    assert not alerts.should_alert("none", "none")  # a clean file never pages anybody
    with pytest.raises(alerts.AlertDeliveryError, match="unreachable"):
        alerts.post("http://127.0.0.1:9/hook", {"x": 1}, timeout_s=2)


def test_the_report_is_self_contained_and_escapes_data():
    result = _result(
        "r--1.csv",
        3,
        {
            "1": [
                {
                    "rule": "unknown_category",
                    "column": "housing",
                    "value": '"><img src=x onerror=alert(1)>',
                }
            ]
        },
    )
    html = report.render_report(result)
    assert "<img" not in html and "&lt;img" in html
    # Opens offline: no script, stylesheet or image fetched from anywhere.
    assert "<script" not in html and "<link" not in html and "src=" not in html.replace("src=x", "")


def _config(tmp_path: Path, settings):
    from pipelines.ingestion.validate import ValidationConfig

    return ValidationConfig(
        settings.schema_path, settings.training_stats_path, settings.target_column, tmp_path
    )


def test_unusable_files_are_judged_without_tfdv(tmp_path: Path, clean, settings):
    """Unusable files never reach TFDV, so these run here, in the app environment."""
    from pipelines.ingestion.validate import validate_file

    semi = tmp_path / "semi.csv"
    clean.iloc[:7].to_csv(semi, index=False, sep=";")
    result = validate_file(semi, _config(tmp_path, settings))
    assert (result["rows_invalid"], result["criticality"], result["unusable"]) == (7, "high", True)
    assert "wrong_delimiter" in {i["error_type"] for i in result["issues"]}

    utf16 = tmp_path / "utf16.csv"
    utf16.write_text(clean.iloc[:3].to_csv(index=False), encoding="utf-16")
    result = validate_file(utf16, _config(tmp_path, settings))
    assert result["parse_error"].startswith("not UTF-8") and result["criticality"] == "high"
    assert [i["error_type"] for i in result["issues"]] == ["unreadable_file"]

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = validate_file(empty, _config(tmp_path, settings))
    assert (result["rows_total"], result["issues"][0]["error_type"]) == (0, "empty_file")
