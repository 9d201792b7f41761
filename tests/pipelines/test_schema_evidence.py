"""What one file says about the schema (pipelines/proposals/evidence.py), from the real row
checks on real rows of the data set: values, bounds and unknown columns, bounded per column."""

from __future__ import annotations

import pandas as pd

from mlsys import rowchecks
from mlsys.config import get_settings
from mlsys.features import load_feature_spec
from pipelines.proposals.evidence import MAX_VALUES, Evidence, file_evidence


def frame(n: int = 60) -> pd.DataFrame:
    s = get_settings()
    rows = pd.read_csv(s.dataset_path, dtype=str, keep_default_na=False).head(n)
    return rows.drop(columns=[s.target_column]).reset_index(drop=True)


def evidence_of(raw: pd.DataFrame) -> dict[tuple[str, str, str], Evidence]:
    s = get_settings()
    spec = load_feature_spec(s.schema_path, target=s.target_column)
    found = file_evidence(rowchecks.check_rows(raw, spec), raw, spec)
    return {(e.kind, e.column, e.value): e for e in found}


def test_values_bounds_and_columns_with_their_rows():
    raw = frame()
    raw.loc[0:4, "purpose"] = "crypto"
    raw.loc[5, "purpose"] = " crypto "  # surrounding spaces are ignored, as the rules do
    raw.loc[6, "purpose"] = "CAR"
    raw.loc[7:8, "credit_amount"] = ["60000", "70000"]
    raw.loc[9, "age"] = "-48"
    raw.loc[10, "age"] = "abc"  # not a number: no bound evidence
    raw["channel"] = ["web", "branch", "web"] * 20
    raw.loc[3, "channel"] = "NA"
    raw["score"] = [str(i / 2) for i in range(60)]
    found = evidence_of(raw)
    assert found["category", "purpose", "crypto"].rows == 6
    assert found["category", "purpose", "CAR"].rows == 1
    above = found["above_max", "credit_amount", ""]
    assert (above.rows, above.extreme) == (2, 70000.0)
    below = found["below_min", "age", ""]
    assert (below.rows, below.extreme) == (1, -48.0)
    assert ("above_max", "age", "") not in found
    channel = found["column", "channel", ""]
    assert channel.rows == 59 and channel.detail["missing"] == 1
    assert (
        channel.detail["values"] == [["web", 39], ["branch", 20]] and not channel.detail["numeric"]
    )
    score = found["column", "score", ""].detail
    assert (score["numeric"], score["integer"], score["min"], score["max"]) == (
        True,
        False,
        0,
        29.5,
    )
    assert Evidence.from_dict(channel.to_dict()) == channel


def test_a_column_keeps_its_most_frequent_values_only():
    raw = frame(100)
    raw["purpose"] = [f"typo-{i % 30}" for i in range(70)] + ["crypto"] * 30
    values = {k[2]: e.rows for k, e in evidence_of(raw).items() if k[0] == "category"}
    assert len(values) == MAX_VALUES and values["crypto"] == 30
