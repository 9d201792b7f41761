"""Validate one claimed raw file: bad rows and why, TFDV anomalies, drift, a criticality.

Runs in the `tfdv` environment (the `validate_data` task, or the warm TFDV worker). The
result is a small JSON-ready dict (row numbers and reasons, never the data itself) that the
downstream tasks use to save statistics, alert and split the file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsys import csvfile, rowchecks
from mlsys.features import FeatureSpec, load_feature_spec

NONE, LOW, MEDIUM, HIGH = "none", "low", "medium", "high"
# Share of bad rows from which a file is of medium / high criticality.
MEDIUM_SHARE, HIGH_SHARE = 0.10, 0.50


@dataclass(frozen=True)
class ValidationConfig:
    schema_path: Path
    training_stats_path: Path
    target: str
    good_data_dir: Path
    drift_window_rows: int = 300  # rows pooled from the most recent good files
    drift_min_rows: int = 200  # fewer rows: drift is "insufficient_data", not an alarm

    def to_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationConfig:
        paths = {"schema_path", "training_stats_path", "good_data_dir"}
        return cls(**{k: Path(v) if k in paths else v for k, v in data.items()})


def _issue(error_type: str, column: str, level: str, rows: int, description: str) -> dict:
    return {
        "error_type": error_type,
        "column": column,
        "level": level,
        "row_count": rows,
        "description": description,
    }


def unreadable_result(
    path: Path, message: str, *, rule: str | None = None, rows: int | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    rows = csvfile.count_data_lines(path) if rows is None else rows
    rule = rule or (rowchecks.EMPTY_FILE if rows == 0 else rowchecks.UNREADABLE_FILE)
    return {
        "file": path.name,
        "rows_total": rows,
        "rows_valid": 0,
        "rows_invalid": rows,
        "unusable": True,
        "parse_error": message,
        "bad_rows": {},
        "issues": [
            _issue(rule, "", "file", rows, f"{rowchecks.RULE_DESCRIPTIONS[rule]}: {message}")
        ],
        "tfdv_anomalies": [],
        "drift": [],
        "feature_stats": [],
        "criticality": HIGH,
        "notes": list(notes or []),
    }


def validate_file(path: Path, config: ValidationConfig) -> dict[str, Any]:
    """Judge one raw CSV file. Never raises for bad content: that is what it reports."""
    spec = load_feature_spec(config.schema_path, target=config.target)
    try:
        table = csvfile.read_csv(path)
    except csvfile.CsvRefused as exc:
        return unreadable_result(path, exc.reason, rule=exc.rule, rows=exc.rows, notes=exc.notes)
    raw = table.frame

    checks = rowchecks.check_rows(raw, spec)
    bad_rows: dict[str, list[dict[str, str]]] = {}
    for reason in checks.reasons:
        bad_rows.setdefault(str(reason.row), []).append(
            {"rule": reason.rule, "column": reason.column, "value": reason.value}
        )
    if checks.unusable:
        for row in range(checks.rows_total):
            bad_rows.setdefault(str(row), []).extend(
                {"rule": rowchecks.MISSING_COLUMN, "column": c, "value": ""}
                for c in checks.missing_columns
            )

    issues = []
    file_rules = {rowchecks.MISSING_COLUMN, rowchecks.UNEXPECTED_COLUMN}
    for (rule, column), rows in sorted(checks.counts_by_rule().items()):
        level = "file" if rule in file_rules else "row"
        issues.append(_issue(rule, column, level, rows, rowchecks.RULE_DESCRIPTIONS[rule]))
    delimiter = _wrong_delimiter(raw) if checks.unusable else None
    if delimiter:
        issues.append(
            _issue("wrong_delimiter", "", "file", checks.rows_total,
                   f"the header reads as one column holding {delimiter!r}: the file seems "
                   f"delimited by {delimiter!r} instead of ','")
        )  # fmt: skip
    if checks.rows_total == 0:
        issues.append(
            _issue(
                rowchecks.EMPTY_FILE,
                "",
                "file",
                0,
                rowchecks.RULE_DESCRIPTIONS[rowchecks.EMPTY_FILE],
            )
        )

    anomalies, feature_stats, drift = [], [], []
    if checks.rows_total > 0 and not checks.unusable:
        anomalies, feature_stats = _tfdv_file_checks(raw, spec, config)
        good = raw.drop(index=[int(r) for r in bad_rows]).drop(columns=checks.unexpected_columns)
        drift = _windowed_drift(good, config)
        explained = {i["column"] for i in issues}
        for anomaly in anomalies:
            if anomaly["feature"] not in explained:
                issues.append(
                    _issue("tfdv_" + anomaly["types"][0].lower(), anomaly["feature"], "file", 0,
                           anomaly["description"])
                )  # fmt: skip

    rows_invalid = len(bad_rows)
    result = {
        "file": path.name,
        "rows_total": checks.rows_total,
        "rows_valid": checks.rows_total - rows_invalid,
        "rows_invalid": rows_invalid,
        "unusable": checks.unusable or checks.rows_total == 0,
        "parse_error": None,
        "bad_rows": bad_rows,
        "unexpected_columns": checks.unexpected_columns,
        "issues": issues,
        "tfdv_anomalies": anomalies,
        "drift": drift,
        "feature_stats": feature_stats,
        "notes": table.notes,  # what the reader normalised (a skipped hint line, ...)
    }
    result["criticality"] = criticality(result)
    return result


def _wrong_delimiter(raw) -> str | None:
    """The delimiter a one-column file seems to use, if its header splits on one."""
    if len(raw.columns) != 1:
        return None
    header = str(raw.columns[0])
    return next((d for d in (";", "\t", "|") if d in header), None)


def criticality(result: dict[str, Any]) -> str:
    """high: nothing usable or most rows bad; medium: many bad rows, drift, or an anomaly our
    row checks do not explain; low: a few bad rows or an extra column; none: clean."""
    total = result["rows_total"]
    share = result["rows_invalid"] / total if total else 1.0
    if result["unusable"] or share >= HIGH_SHARE:
        return HIGH
    drifting = any(d["status"] == "drift" for d in result["drift"])
    unexplained = any(i["error_type"].startswith("tfdv_") for i in result["issues"])
    if share >= MEDIUM_SHARE or drifting or unexplained:
        return MEDIUM
    if result["rows_invalid"] or result["issues"]:
        return LOW
    return NONE


def _typed(raw):
    """Text frame -> the frame pd.read_csv would have produced (what TFDV expects)."""
    import pandas as pd

    buffer = io.StringIO()
    raw.to_csv(buffer, index=False)
    buffer.seek(0)
    return pd.read_csv(buffer)


def _tfdv_file_checks(raw, spec: FeatureSpec, config: ValidationConfig):
    from mlsys import tfdv_validate as tv

    frame = tv.prepare_frame(_typed(raw), config.schema_path)
    stats = tv.statistics(frame)
    anomalies = [a.to_dict() for a in tv.file_anomalies(stats, config.schema_path)]
    training = tv.load_training_stats(str(config.training_stats_path))
    return anomalies, feature_summary(stats, training, spec)


def _windowed_drift(good, config: ValidationConfig) -> list[dict[str, Any]]:
    """Drift of the newest rows (this file's good rows, then the most recent good files)."""
    import pandas as pd

    from mlsys import tfdv_validate as tv

    frames, rows = [good], len(good)
    recent = sorted(
        config.good_data_dir.glob("*.csv"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for path in recent:
        if rows >= config.drift_window_rows:
            break
        try:
            frame = rowchecks.read_raw_csv(path)
        except csvfile.CsvRefused:
            continue
        frames.append(frame)
        rows += len(frame)
    window = pd.concat(frames, ignore_index=True)
    if len(window) == 0:
        return []
    stats = tv.statistics(tv.prepare_frame(_typed(window), config.schema_path))
    measures = tv.drift(stats, config.schema_path, config.training_stats_path)
    enough = len(window) >= config.drift_min_rows
    return [
        m.to_dict()
        | {
            "status": ("drift" if m.value > m.threshold else "ok")
            if enough
            else "insufficient_data",
            "window_rows": len(window),
        }
        for m in measures
    ]


def feature_summary(stats, training, spec: FeatureSpec) -> list[dict[str, Any]]:
    """Per feature: this file's statistics beside the training statistics (for the report)."""

    def by_name(dataset_list):
        return {".".join(f.path.step): f for f in dataset_list.datasets[0].features}

    current, reference = by_name(stats), by_name(training)
    summary = []
    for feature in spec.features:
        cur, ref = current.get(feature.name), reference.get(feature.name)
        entry: dict[str, Any] = {"feature": feature.name, "kind": feature.kind.value}
        for label, proto in (("file", cur), ("training", ref)):
            if proto is None:
                entry[label] = None
            elif proto.HasField("num_stats"):
                n = proto.num_stats
                entry[label] = {"mean": n.mean, "std": n.std_dev, "min": n.min, "max": n.max,
                                "missing": int(n.common_stats.num_missing)}  # fmt: skip
            else:
                s = proto.string_stats
                total = s.common_stats.num_non_missing or 1
                entry[label] = {
                    "unique": int(s.unique),
                    "top": [(t.value, round(t.frequency / total, 3)) for t in s.top_values[:5]],
                    "missing": int(s.common_stats.num_missing),
                }
        summary.append(entry)
    return summary
