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
from pipelines.ingestion.result import (
    Criticality,
    Drift,
    Issue,
    ValidationResult,
    reasons_path_for,
    write_reasons_rows,
)


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


def _result(file: str, rows: int, invalid: int, **extra) -> ValidationResult:
    return ValidationResult(
        file=file, rows_total=rows, rows_invalid=invalid, criticality=Criticality.LOW, **extra
    )


def test_split_loses_no_row_and_is_idempotent(tmp_path: Path, clean):
    claimed = tmp_path / "processing" / "x--1.csv"
    claimed.parent.mkdir()
    clean.iloc[:10].assign(extra="e").to_csv(claimed, index=False)
    reasons = reasons_path_for(claimed)
    write_reasons_rows(
        reasons,
        [(2, "out_of_range", "age", "-1"), (2, "unknown_category", "housing", 'a\t"b",\nc'),
         (7, "duplicate_row", "", "")],
    )  # fmt: skip
    result = _result("x--1.csv", 10, 2, unexpected_columns=("extra",), reasons_path=str(reasons))
    out = split.split_file(claimed, result, tmp_path / "good", tmp_path / "bad")
    assert (out.good_rows, out.bad_rows) == (8, 2) and not claimed.exists()
    assert not reasons.exists()  # consumed with the claimed file
    good = rowchecks.read_raw_csv(tmp_path / "good" / "x--1.csv")
    assert "extra" not in good.columns and len(good) == 8
    bad_frame = rowchecks.read_raw_csv(tmp_path / "bad" / "x--1.csv")
    assert list(bad_frame[split.ROW_COLUMN]) == ["2", "7"]
    assert json.loads(bad_frame[split.ERRORS_COLUMN][0]) == [
        {"rule": "out_of_range", "column": "age", "value": "-1"},
        {"rule": "unknown_category", "column": "housing", "value": 'a\t"b",\nc'},
    ]
    # A retry after success finds the outputs instead of failing or writing again.
    again = split.split_file(claimed, result, tmp_path / "good", tmp_path / "bad")
    assert again.retried and again.good == out.good


def test_saving_statistics_twice_does_not_duplicate(database_url):
    issues = (Issue("out_of_range", "age", "row", 1, "d", example="-1"),)
    drift = (Drift("age", "jensen_shannon", 0.2, 0.1, "drift", 300),)
    result = _result("retry--1.csv", 10, 1, issues=issues, drift=drift)
    dsn = psycopg2_dsn(database_url)
    first = store.save_statistics(dsn, result, report_path="retry--1.html")
    second = store.save_statistics(dsn, result, report_path="retry--1.html")
    assert first == second
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM ingestion_files WHERE file_name = 'retry--1.csv'")
        assert cur.fetchone()[0] == 1
        cur.execute("SELECT example FROM data_quality_issues WHERE file_id = %s", (first,))
        assert cur.fetchall() == [("-1",)]
        cur.execute("SELECT status, value FROM feature_drift WHERE file_id = %s", (first,))
        assert cur.fetchall() == [("drift", 0.2)]


def test_alert_levels_and_delivery_errors():
    assert alerts.should_alert(Criticality.HIGH, Criticality.MEDIUM)
    assert not alerts.should_alert(Criticality.LOW, Criticality.MEDIUM)
    # A clean file never pages anybody.
    assert not alerts.should_alert(Criticality.NONE, Criticality.NONE)
    with pytest.raises(alerts.AlertDeliveryError, match="unreachable"):
        alerts.post("http://127.0.0.1:9/hook", {"x": 1}, timeout_s=2)


def test_without_a_webhook_the_card_and_its_links_go_to_the_log(caplog):
    from datetime import UTC, datetime

    from pipelines.ingestion import alert_state

    links = alerts.Links("http://127.0.0.1:8000/reports")  # no key: unsigned links
    observation = alerts.file_observation(
        _result("r--1.csv", 3, 1, issues=(Issue("missing_value", "age", "row", 1, "empty"),)),
        minimum=Criticality.LOW, report_name="r-1a2b3c4d.html",
    )  # fmt: skip
    now = datetime(2026, 12, 1, tzinfo=UTC)
    problems = tuple(
        alert_state.ToldProblem(o.key, o.kind, o.title, True, 1, 1, now, now, o.detail)
        for o in observation.occurrences
    )
    source = alert_state.SourceLine("r--1.csv", "low", 3, 1, "r-1a2b3c4d.html", None, ())
    card = alert_state.Card("problem", problems, (source,), now, now)
    with caplog.at_level("WARNING"):
        assert alerts.teams_delivery(None, "adaptive", links)(card) is False
    assert "http://127.0.0.1:8000/reports/r-1a2b3c4d.html" in caplog.text


def test_the_report_is_self_contained_and_escapes_data():
    sample = (rowchecks.Reason(1, "unknown_category", "housing", '"><img src=x onerror=alert(1)>'),)
    html = report.render_report(_result("r--1.csv", 3, 1, sample=sample))
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
    assert (result.rows_invalid, result.criticality, result.unusable) == (7, "high", True)
    assert [i.error_type for i in result.issues] == ["wrong_delimiter"]
    assert "separated by semicolons (';')" in result.parse_error

    utf16 = tmp_path / "utf16.csv"
    utf16.write_text(clean.iloc[:3].to_csv(index=False), encoding="utf-16")
    result = validate_file(utf16, _config(tmp_path, settings))
    assert "UTF-16" in result.parse_error and result.criticality == "high"
    assert (result.rows_total, result.rows_invalid) == (3, 3)
    assert [i.error_type for i in result.issues] == ["undecodable_text"]

    ragged = tmp_path / "ragged.csv"
    lines = clean.iloc[:5].to_csv(index=False).splitlines()
    lines[3] += ",extra"
    ragged.write_text("sep=,\n" + "\n".join(lines) + "\n")
    result = validate_file(ragged, _config(tmp_path, settings))
    assert [i.error_type for i in result.issues] == ["ragged_rows"]
    assert (result.rows_total, result.rows_invalid) == (5, 5)
    assert "line 5 has 10" in result.parse_error
    assert list(result.notes) == ["line 1 is Excel's 'sep=,' hint: skipped, fields split on ','"]

    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    result = validate_file(empty, _config(tmp_path, settings))
    assert (result.rows_total, result.issues[0].error_type) == (0, "empty_file")


@pytest.mark.parametrize(
    ("name", "rows", "valid"),
    [
        ("trailing_comma_every_row.csv", 12, 12),
        ("excel_sep_hint_line.csv", 20, 20),
        ("LOANS_EXPORT.CSV", 20, 20),
        ("loan applications (1).csv", 20, 19),  # row 2: housing 'castle'
    ],
)
def test_the_issue_files_are_validated_with_their_rows(tfdv_worker, data_dir, name, rows, valid):
    """The files of issue 13 (tests/data/cases/ingestion) through the real validation."""
    from pipelines.config import load_pipeline_settings
    from pipelines.ingestion.tasks import validation_config
    from pipelines.ingestion.tfdv_worker import validate_via_worker
    from tests.data.csv_shapes import case_file

    path = data_dir / "raw-data" / name
    path.write_bytes(case_file(name))
    config = validation_config(load_pipeline_settings({"DATA_DIR": str(data_dir)}))
    result = ValidationResult.from_dict(
        validate_via_worker(tfdv_worker, str(path), config, timeout_s=120)
    )
    assert (result.rows_total, result.rows_valid) == (rows, valid), result.issues
    assert result.parse_error is None and not result.unusable
    out = split.split_file(path, result, data_dir / "good_data", data_dir / "bad_data")
    assert (out.good_rows, out.bad_rows) == (valid, rows - valid)
    good = rowchecks.read_raw_csv(data_dir / "good_data" / name)
    assert list(good.columns) == get_feature_spec().names
    if name.startswith("trailing"):
        assert (good.loc[0, "sex"], good.loc[0, "job"], good.loc[0, "age"]) == ("male", "2", "67")


def test_the_report_says_what_the_reader_normalised():
    notes = ["line 1 is Excel's 'sep=,' hint: skipped, fields split on ','"]
    html = report.render_report(_result("hint.csv", 20, 0, notes=tuple(notes)))
    assert "Reading the file" in html and "line 1 is Excel&#39;s &#39;sep=,&#39; hint" in html
    assert "Reading the file" not in report.render_report(_result("plain.csv", 20, 0))
