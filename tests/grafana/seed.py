"""Realistic ingestion and prediction history for the dashboard tests, in three scenarios.

- healthy: clean files a minute apart, drift well under the schema thresholds, predictions of
  the real model on real German Credit rows;
- degraded: the last 15 minutes of files are half invalid, two features drift, and the last
  30 minutes of predictions are of rows the model is unsure about;
- stalled: healthy, but no file arrived in the last 20 minutes.

Everything is written with bound parameters, in the tables the ingestion and prediction DAGs
fill, and returned as plain records so that tests can compute what each panel must show.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from psycopg2.extras import execute_values

from mlsys import rowchecks
from mlsys.features import FeatureSpec

SCENARIOS = ("healthy", "degraded", "stalled")
ROW_ERRORS = (
    rowchecks.MISSING_VALUE,
    rowchecks.UNKNOWN_CATEGORY,
    rowchecks.OUT_OF_RANGE,
    rowchecks.NOT_A_NUMBER,
)
FILE_ROWS = 50
FILE_EVERY = timedelta(seconds=90)
HISTORY = timedelta(minutes=60)
MEDIUM_SHARE, HIGH_SHARE = 0.10, 0.50  # as the ingestion judges a file


@dataclass(frozen=True)
class DriftRule:
    metric: str  # 'jensen_shannon' | 'l_infinity'
    threshold: float


@dataclass
class Seeded:
    now: datetime
    files: list[dict] = field(default_factory=list)
    drift: list[dict] = field(default_factory=list)
    predictions: list[dict] = field(default_factory=list)
    ledger: list[dict] = field(default_factory=list)
    drifting_features: tuple[str, ...] = ()

    def files_since(self, span: timedelta) -> list[dict]:
        return [f for f in self.files if f["ingested_at"] >= self.now - span]

    def predictions_since(self, span: timedelta) -> list[dict]:
        return [p for p in self.predictions if p["created_at"] >= self.now - span]


def drift_rules(schema_path: Path, spec: FeatureSpec) -> dict[str, DriftRule]:
    """Each serving feature's drift comparator, read from the curated schema."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(schema_path.read_text(encoding="utf-8"), schema_pb2.Schema())
    rules = {}
    for feature in schema.feature:
        if feature.name not in spec.names or not feature.HasField("drift_comparator"):
            continue
        comparator = feature.drift_comparator
        if comparator.HasField("jensen_shannon_divergence"):
            rules[feature.name] = DriftRule(
                "jensen_shannon", comparator.jensen_shannon_divergence.threshold
            )
        else:
            rules[feature.name] = DriftRule("l_infinity", comparator.infinity_norm.threshold)
    return rules


def _criticality(invalid: int, total: int, drifting: bool) -> str:
    share = invalid / total
    if share >= HIGH_SHARE:
        return "high"
    if share >= MEDIUM_SHARE or drifting:
        return "medium"
    return "low" if invalid else "none"


def build(
    scenario: str,
    *,
    now: datetime,
    spec: FeatureSpec,
    rules: dict[str, DriftRule],
    rows: pd.DataFrame,
    probabilities: np.ndarray,
    model_version: str,
    seed: int = 7,
) -> Seeded:
    """Plan the history of one scenario (nothing is written yet)."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}")
    rng = random.Random(seed)
    seeded = Seeded(now=now)
    degraded = scenario == "degraded"
    numeric = [f.name for f in spec.features if not f.is_categorical and f.name in rules]
    categorical = [f.name for f in spec.features if f.is_categorical and f.name in rules]
    if degraded:
        seeded.drifting_features = (numeric[0], categorical[0])

    moment, index = now - HISTORY + timedelta(seconds=20), 0
    last_file = now - (timedelta(minutes=20) if scenario == "stalled" else timedelta(0))
    while moment < last_file:
        recent = now - moment <= timedelta(minutes=15)
        invalid = rng.randint(15, 35) if degraded and recent else rng.choice((0, 0, 0, 1, 2))
        drifting_now = degraded and now - moment <= timedelta(minutes=30)
        window_rows = min((index + 1) * FILE_ROWS, 300)  # the DAG pools up to 300 recent rows
        for name, rule in rules.items():
            factor = (
                rng.uniform(1.2, 2.0)
                if drifting_now and name in seeded.drifting_features
                else rng.uniform(0.1, 0.6)
            )
            enough = window_rows >= 200
            value = rule.threshold * factor
            seeded.drift.append(
                {"file": index, "feature": name, "metric": rule.metric, "value": value,
                 "threshold": rule.threshold, "window_rows": window_rows,
                 "status": ("drift" if value > rule.threshold else "ok") if enough else "insufficient_data"}
            )  # fmt: skip
        drifting = any(d["status"] == "drift" for d in seeded.drift if d["file"] == index)
        issues, left = [], invalid
        for error in ROW_ERRORS:
            if left <= 0:
                break
            count = left if error == ROW_ERRORS[-1] else rng.randint(1, left)
            issues.append({"error_type": error, "column": rng.choice(spec.names), "rows": count})
            left -= count
        seeded.files.append(
            {"index": index, "file_name": f"part-{index:04d}.csv", "ingested_at": moment,
             "rows_total": FILE_ROWS, "rows_invalid": invalid, "rows_valid": FILE_ROWS - invalid,
             "criticality": _criticality(invalid, FILE_ROWS, drifting), "issues": issues,
             "report_path": f"/data/reports/part-{index:04d}.html"}
        )  # fmt: skip
        moment += FILE_EVERY
        index += 1

    # Predictions: 5 a minute, scheduled (from good_data files, row by row) or from the web app.
    order = np.arange(len(rows))
    unsure = order[np.abs(probabilities - 0.5) < 0.08]  # confidence under 0.58
    count = int(HISTORY.total_seconds() // 12)
    for i in range(count):
        created = now - HISTORY + timedelta(seconds=12 * i + 5)
        pool = unsure if degraded and now - created <= timedelta(minutes=30) else order
        row = int(rng.choice(pool))
        scheduled = i % 10 < 7
        # Values the model never saw: now and then an age past the training maximum; in the
        # degraded scenario's last 30 minutes, a third of the rows hold a category approved
        # after training (as the service flags them: mlsys/training_values.py).
        unseen = (["age"] if i % 40 == 0 else []) + (
            ["purpose"]
            if degraded and now - created <= timedelta(minutes=30) and i % 3 == 0
            else []
        )
        seeded.predictions.append(
            {"created_at": created, "source": "scheduled" if scheduled else "webapp",
             "features": {k: _plain(v) for k, v in rows.iloc[row][spec.names].items()},
             "probability": float(probabilities[row]), "model_version": model_version,
             "source_file": f"good-{i // 25:04d}.csv" if scheduled else None,
             "source_row": i % 25 if scheduled else None, "unseen_features": unseen}
        )  # fmt: skip
    for p in seeded.predictions:
        if p["source_file"]:
            seeded.ledger.append({"file_name": p["source_file"], "recorded_at": p["created_at"]})
    ledger = {e["file_name"]: e for e in seeded.ledger}
    seeded.ledger = [
        {**e, "status": "failed" if degraded and n % 2 == 0 and now - e["recorded_at"] <= timedelta(minutes=30) else "done"}
        for n, e in enumerate(ledger.values())
    ]  # fmt: skip
    return seeded


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def write(conn, seeded: Seeded, *, positive_label: str, negative_label: str) -> None:
    """Insert the planned history in one transaction, with bound parameters."""
    with conn, conn.cursor() as cur:
        ids = {}
        for f in seeded.files:
            cur.execute(
                """INSERT INTO ingestion_files (file_name, ingested_at, rows_total, rows_valid,
                                               rows_invalid, criticality, report_path)
                   VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id""",
                (f["file_name"], f["ingested_at"], f["rows_total"], f["rows_valid"],
                 f["rows_invalid"], f["criticality"], f["report_path"]),
            )  # fmt: skip
            ids[f["index"]] = cur.fetchone()[0]
            execute_values(
                cur,
                """INSERT INTO data_quality_issues (file_id, error_type, column_name, level,
                                                    row_count, description) VALUES %s""",
                [(ids[f["index"]], i["error_type"], i["column"], "row", i["rows"],
                  rowchecks.RULE_DESCRIPTIONS[i["error_type"]]) for i in f["issues"]],
            )  # fmt: skip
        execute_values(
            cur,
            """INSERT INTO feature_drift (file_id, feature, metric, value, threshold, status,
                                          window_rows) VALUES %s""",
            [(ids[d["file"]], d["feature"], d["metric"], d["value"], d["threshold"], d["status"],
              d["window_rows"]) for d in seeded.drift],
        )  # fmt: skip
        execute_values(
            cur,
            """INSERT INTO predictions (created_at, source, features, prediction, probability,
                                        model_version, source_file, source_row, unseen_features)
               VALUES %s""",
            [(p["created_at"], p["source"], json.dumps(p["features"]),
              positive_label if p["probability"] >= 0.5 else negative_label, p["probability"],
              p["model_version"], p["source_file"], p["source_row"], p["unseen_features"])
             for p in seeded.predictions],
        )  # fmt: skip
        execute_values(
            cur,
            "INSERT INTO predicted_files (file_name, status, rows, reason, recorded_at) VALUES %s",
            [(e["file_name"], e["status"], 25, "API answered 503" if e["status"] == "failed" else None,
              e["recorded_at"]) for e in seeded.ledger],
        )  # fmt: skip
