"""The typed validation result, the one criticality type, the reasons file that the split
streams, rows conserved, and the size limit (without Airflow, without TFDV)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from mlsys import csvfile, rowchecks
from mlsys.config import ConfigError
from mlsys.features import Kind, get_feature_spec
from pipelines.config import load_pipeline_settings
from pipelines.ingestion import alerts, split, tasks
from pipelines.ingestion.result import (
    SAMPLE_ROWS,
    Anomaly,
    Criticality,
    Drift,
    DriftWindow,
    FeatureStats,
    Issue,
    ValidationResult,
    iter_reasons,
    read_reason_chunks,
    reasons_path_for,
    write_reasons_rows,
)
from pipelines.ingestion.validate import (
    FILE_TOO_LARGE,
    ValidationConfig,
    criticality,
    row_verdict,
    validate_file,
)


@pytest.fixture(scope="module")
def clean(settings) -> pd.DataFrame:
    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False)
    return frame.drop(columns=[settings.target_column]).drop_duplicates().reset_index(drop=True)


def _full_result() -> ValidationResult:
    return ValidationResult(
        file="a--1.csv",
        rows_total=10,
        rows_invalid=2,
        criticality=Criticality.MEDIUM,
        issues=(Issue("out_of_range", "age", "row", 1, "d", "-1"),),
        anomalies=(Anomaly("age", ("SCHEMA_NEW_COLUMN",), "short", "long"),),
        drift=(Drift("age", "jensen_shannon", 0.2, 0.1, "drift", 300),),
        drift_window=DriftWindow(rows=300, files=2, names=("a--1.csv", "g.csv"), own=False),
        feature_stats=(
            FeatureStats(
                "sex", "categorical", {"unique": 2, "top": [["m", 0.5]], "missing": 0}, None
            ),
        ),  # fmt: skip
        unexpected_columns=("extra",),
        file_reasons=(rowchecks.Reason(-1, "missing_column", "age", ""),),
        sample=(rowchecks.Reason(3, "out_of_range", "age", "-1"),),
        reasons_path="/data/processing/a--1.reasons.tsv",
        notes=("a `sep=,` line was skipped",),
    )


def test_the_result_round_trips_through_json():
    result = _full_result()
    data = json.loads(json.dumps(result.to_dict()))
    assert ValidationResult.from_dict(data) == result
    assert data["criticality"] == "medium" and data["rows_valid"] == 8
    with pytest.raises(ValueError, match="unknown validation result fields"):
        ValidationResult.from_dict(data | {"bad_rows": {}})


def test_criticality_is_ordered_by_severity_not_alphabetically():
    assert sorted([Criticality.HIGH, Criticality.NONE, Criticality.MEDIUM, Criticality.LOW]) == [
        Criticality.NONE,
        Criticality.LOW,
        Criticality.MEDIUM,
        Criticality.HIGH,
    ]
    assert Criticality.HIGH > "low" and Criticality.LOW < "medium" and Criticality.LOW >= "low"
    with pytest.raises(ValueError):
        assert Criticality.HIGH > "critical"  # never compared as text
    assert Criticality.parse(" Medium ") is Criticality.MEDIUM


def test_one_criticality_type_for_validation_settings_alerts_and_sql(db_conn):
    levels = list(Criticality)
    with db_conn.cursor() as cur:
        cur.execute("SELECT level FROM criticality_levels ORDER BY rank")
        assert [row[0] for row in cur.fetchall()] == [c.value for c in levels]
        for i, level in enumerate(levels):
            cur.execute(
                """INSERT INTO ingestion_files (file_name, rows_total, rows_valid, rows_invalid,
                                                criticality) VALUES (%s, 1, 1, 0, %s)""",
                (f"level-{i}.csv", level.value),
            )
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            cur.execute(
                """INSERT INTO ingestion_files
                   (file_name, rows_total, rows_valid, rows_invalid, criticality)
                   VALUES ('x.csv', 1, 1, 0, 'critical')"""
            )
    for level in levels:
        settings = load_pipeline_settings({"ALERT_MIN_CRITICALITY": level.value.upper()})
        assert settings.alert_min_criticality is level
    with pytest.raises(ConfigError, match="none, low, medium, high"):
        load_pipeline_settings({"ALERT_MIN_CRITICALITY": "critical"})
    assert set(alerts.COLORS) == set(alerts.ADAPTIVE_COLORS) == set(levels)
    assert criticality(_full_result()) is Criticality.MEDIUM  # 20% bad rows


def test_a_file_is_rated_on_its_own_rows_not_on_a_pooled_drift_window():
    """Issue 15: a clean file was rated medium because an earlier file of its window drifted.
    Pooled drift is the stream's condition (its own alert); a file's own drift is its own."""
    drift = (Drift("age", "jensen_shannon", 0.22, 0.1, "drift", 300),)
    pooled = DriftWindow(rows=300, files=6, names=("c--1.csv", "g1.csv"), own=False)
    clean = ValidationResult("c--1.csv", 50, 0, Criticality.NONE, drift=drift, drift_window=pooled)
    assert criticality(clean) is Criticality.NONE
    own = DriftWindow(rows=400, files=1, names=("c--1.csv",), own=True)
    assert criticality(replace(clean, rows_total=400, drift_window=own)) is Criticality.MEDIUM
    # A result from before the window was recorded: drift of unknown rows never rates a file.
    assert criticality(replace(clean, drift_window=None)) is Criticality.NONE


def _mixed(clean: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, list[tuple[str, str, str]]]]:
    """Rows with one, two or no bad cells; values with commas, quotes, tabs and newlines."""
    spec = get_feature_spec()
    cat = next(f for f in spec.features if f.kind is Kind.CATEGORICAL)
    num = next(f for f in spec.features if f.kind is Kind.INTEGER and f.minimum is not None)
    frame = clean.iloc[:300].reset_index(drop=True).copy()
    odd = 'x, "quoted"\tand\nnewline'
    frame.loc[4, cat.name] = odd
    frame.loc[9, num.name] = "12.5"
    frame.loc[9, cat.name] = ""
    frame.loc[250, num.name] = str(int(num.minimum) - 1)
    frame = pd.concat([frame, frame.iloc[[17]]], ignore_index=True)  # row 300 copies row 17
    expected = {
        4: [("unknown_category", cat.name, odd)],
        9: sorted(
            [("not_an_integer", num.name, "12.5"), ("missing_value", cat.name, "")],
            key=lambda r: (r[1], r[0]),
        ),  # fmt: skip
        250: [("out_of_range", num.name, str(int(num.minimum) - 1))],
        300: [("duplicate_row", "", "")],
    }
    return frame, expected


def test_rows_are_conserved_and_bad_rows_carry_their_reasons(tmp_path: Path, clean):
    frame, expected = _mixed(clean)
    claimed = tmp_path / "processing" / "mixed--1.csv"
    claimed.parent.mkdir()
    frame.to_csv(claimed, index=False)
    result, _ = row_verdict(claimed, rowchecks.read_raw_csv(claimed), get_feature_spec())
    # The reasons file is what the split reads: every reason, sorted by row.
    assert Path(result.reasons_path) == reasons_path_for(claimed)
    assert [
        (r.row, r.rule, r.column, r.value) for r in iter_reasons(reasons_path_for(claimed))
    ] == [(row, *reason) for row, reasons in sorted(expected.items()) for reason in reasons]
    assert (result.rows_total, result.rows_invalid) == (301, 4)

    out = split.split_file(claimed, result, tmp_path / "good", tmp_path / "bad")
    good = rowchecks.read_raw_csv(tmp_path / "good" / claimed.name)
    bad = rowchecks.read_raw_csv(tmp_path / "bad" / claimed.name)
    assert out.good_rows + out.bad_rows == len(good) + len(bad) == len(frame) == 301
    assert [int(r) for r in bad[split.ROW_COLUMN]] == sorted(expected)
    for _, row in bad.iterrows():
        reasons = [tuple(x.values()) for x in json.loads(row[split.ERRORS_COLUMN])]
        assert reasons == expected[int(row[split.ROW_COLUMN])]
        original = frame.iloc[int(row[split.ROW_COLUMN])]
        assert list(row[frame.columns]) == list(original)  # exactly as received
    keep = [i for i in range(len(frame)) if i not in expected]
    pd.testing.assert_frame_equal(good, frame.iloc[keep].reset_index(drop=True))
    assert list(claimed.parent.iterdir()) == []  # claimed file and reasons file consumed


def test_reasons_split_across_chunks_are_grouped_by_row(tmp_path: Path):
    path = tmp_path / "r.reasons.tsv"
    rows = [(0, "a", "c1", "v"), (0, "b", "c2", "w"), (0, "c", "c3", "x"), (5, "a", "c1", "y"),
            (5, "b", "c1", "z"), (9, "a", "c1", "")]  # fmt: skip
    write_reasons_rows(path, rows)
    whole = list(split.bad_row_chunks(read_reason_chunks(path), rows_total=10))
    for size in (1, 2, 4):
        chunks = list(split.bad_row_chunks(read_reason_chunks(path, chunk_reasons=size), 10))
        assert [int(r) for rows_, _ in chunks for r in rows_] == [0, 5, 9]
        assert [e for _, errors in chunks for e in errors] == [e for _, es in whole for e in es]
    assert [len(json.loads(e)) for _, es in whole for e in es] == [3, 2, 1]
    with pytest.raises(ValueError, match="outside"):
        list(split.bad_row_chunks(read_reason_chunks(path), rows_total=6))


def test_a_split_that_would_not_conserve_rows_moves_nothing(tmp_path: Path, clean):
    claimed = tmp_path / "processing" / "off--1.csv"
    claimed.parent.mkdir()
    clean.iloc[:10].to_csv(claimed, index=False)
    reasons = reasons_path_for(claimed)
    write_reasons_rows(reasons, [(2, "out_of_range", "age", "-1")])
    # The validation counted two bad rows, the reasons file names one.
    result = ValidationResult("off--1.csv", 10, 2, Criticality.MEDIUM, reasons_path=str(reasons))
    with pytest.raises(split.RowsNotConserved, match="1 bad rows"):
        split.split_file(claimed, result, tmp_path / "good", tmp_path / "bad")
    assert claimed.exists() and reasons.exists()
    assert list((tmp_path / "good").iterdir()) == list((tmp_path / "bad").iterdir()) == []


def test_the_result_stays_small_however_many_rows_are_bad(tmp_path: Path, clean):
    big = pd.concat([clean] * 30, ignore_index=True)  # every copy after the first is bad
    path = tmp_path / "copies--1.csv"
    big.to_csv(path, index=False)
    result, bad = row_verdict(path, rowchecks.read_raw_csv(path), get_feature_spec())
    assert result.rows_invalid == len(bad) == len(big) - len(clean)
    assert len({r.row for r in result.sample}) == SAMPLE_ROWS
    assert len(json.dumps(result.to_dict())) < 20_000
    assert sum(1 for _ in iter_reasons(Path(result.reasons_path))) == result.rows_invalid


def test_a_file_over_the_size_limit_goes_whole_to_bad_data_unread(tmp_path: Path, settings):
    claimed = tmp_path / "processing" / "huge--1.csv"
    claimed.parent.mkdir()
    # Not CSV at all: read, it would be "unreadable"; it is refused on its size alone.
    blob = (bytes(b for b in range(256) if b not in b"\r\n") * 16 + b"\n") * 300
    claimed.write_bytes(blob)
    assert 1 < claimed.stat().st_size / 2**20 < 2
    config = ValidationConfig(settings.schema_path, settings.training_stats_path,
                              settings.target_column, tmp_path / "good", max_file_mb=1)  # fmt: skip
    result = validate_file(claimed, config)
    assert [i.error_type for i in result.issues] == [FILE_TOO_LARGE]
    assert "INGEST_MAX_FILE_MB" in result.parse_error and result.criticality is Criticality.HIGH
    assert result.rows_total == result.rows_invalid == 299 and result.reasons_path is None
    out = split.split_file(claimed, result, tmp_path / "good", tmp_path / "bad")
    assert (out.good_rows, out.bad_rows) == (0, 299) and not claimed.exists()
    assert (tmp_path / "bad" / "huge--1.csv").read_bytes() == blob
    reasons = json.loads((tmp_path / "bad" / "huge--1.reasons.json").read_text())
    assert reasons["issues"][0]["error_type"] == FILE_TOO_LARGE


def test_the_size_limit_and_worker_timeout_are_settings():
    ps = load_pipeline_settings({"INGEST_MAX_FILE_MB": "5", "TFDV_WORKER_TIMEOUT_S": "42"})
    request = tasks.validation_request(ps)
    assert request["config"]["max_file_mb"] == 5 and request["worker_timeout_s"] == 42.0
    assert ValidationConfig.from_dict(request["config"]).max_file_mb == 5
    defaults = load_pipeline_settings({})
    assert (defaults.ingest_max_file_mb, defaults.tfdv_worker_timeout_s) == (200, 180.0)
    with pytest.raises(ConfigError, match="INGEST_MAX_FILE_MB"):
        load_pipeline_settings({"INGEST_MAX_FILE_MB": "0"})


@pytest.mark.parametrize(
    ("content", "rows"),
    [
        (b"a,b\n1,2\n\n3,4", 2),
        (b"a\n  \n1\n2\n\n", 2),
        (b"", 0),
        (b"a", 0),
        (b"a\r\n1\r\n2\r\n", 2),
    ],
)
def test_rows_of_a_file_not_parsed_are_counted_in_blocks(tmp_path: Path, content, rows):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    assert {csvfile.count_data_lines(path, block_bytes=size) for size in (1, 2, 3, 1 << 20)} == {
        rows
    }
