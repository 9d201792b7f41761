"""Drift is judged on a window of recent rows, with an explicit "not enough data" state."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlsys.features import Kind, get_feature_spec
from pipelines.config import load_pipeline_settings
from pipelines.ingestion.tasks import validation_config
from pipelines.ingestion.tfdv_worker import validate_via_worker


@pytest.fixture(scope="module")
def clean(settings) -> pd.DataFrame:
    return pd.read_csv(settings.dataset_path).drop(columns=[settings.target_column])


def shifted(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Move the numeric feature with the most headroom to the top of its schema range:
    every value stays valid, only the distribution changes."""
    spec = get_feature_spec()
    numeric = [f for f in spec.features if f.kind is not Kind.CATEGORICAL and f.maximum is not None]
    feature = max(
        numeric, key=lambda f: (f.maximum - frame[f.name].max()) / (frame[f.name].std() or 1)
    )
    out = frame.copy()
    out[feature.name] = out[feature.name] + int(feature.maximum - frame[feature.name].max())
    return out, feature.name


def validate(worker: str, data_dir: Path, name: str) -> dict:
    config = validation_config(load_pipeline_settings({"DATA_DIR": str(data_dir)}))
    return validate_via_worker(worker, str(data_dir / "raw-data" / name), config, timeout_s=300)


def test_a_small_window_is_insufficient_data_not_an_alarm(tfdv_worker, data_dir, clean):
    frame, _ = shifted(clean.iloc[:50])
    frame.to_csv(data_dir / "raw-data" / "small.csv", index=False)
    result = validate(tfdv_worker, data_dir, "small.csv")
    assert result["rows_invalid"] == 0
    assert {d["status"] for d in result["drift"]} == {"insufficient_data"}
    assert result["criticality"] == "none"
    assert result["drift_window"] == {"rows": 50, "files": 1, "names": ["small.csv"], "own": True}


def test_sustained_drift_is_detected_on_the_pooled_window(tfdv_worker, data_dir, clean):
    frame, feature = shifted(clean)
    for i in range(5):  # recent good files, drifted as well
        frame.iloc[50 + 50 * i : 100 + 50 * i].to_csv(
            data_dir / "good_data" / f"g{i}.csv", index=False
        )
    frame.iloc[:50].to_csv(data_dir / "raw-data" / "new.csv", index=False)
    result = validate(tfdv_worker, data_dir, "new.csv")
    by_feature = {d["feature"]: d for d in result["drift"]}
    assert by_feature[feature]["window_rows"] == 300
    assert by_feature[feature]["status"] == "drift", by_feature[feature]
    # Drift of the window is the stream's condition, named by its files and rows; the file is
    # rated on its own rows (issue 15: a clean file was rated medium for an earlier one's drift).
    window = result["drift_window"]
    assert (window["rows"], window["files"], window["own"]) == (300, 6, False)
    assert window["names"][0] == "new.csv" and sorted(window["names"][1:]) == [
        f"g{i}.csv" for i in range(5)
    ]
    assert result["rows_invalid"] == 0 and result["criticality"] == "none"


def test_a_file_filling_the_window_alone_is_rated_on_its_own_drift(tfdv_worker, data_dir, clean):
    frame, feature = shifted(clean)
    frame.iloc[:300].to_csv(data_dir / "raw-data" / "big.csv", index=False)
    result = validate(tfdv_worker, data_dir, "big.csv")
    assert {d["feature"]: d["status"] for d in result["drift"]}[feature] == "drift"
    assert result["drift_window"] == {"rows": 300, "files": 1, "names": ["big.csv"], "own": True}
    assert result["rows_invalid"] == 0 and result["criticality"] == "medium"


def test_clean_recent_data_shows_no_drift(tfdv_worker, data_dir, clean):
    sample = clean.sample(300, random_state=7)
    for i in range(5):
        sample.iloc[50 + 50 * i : 100 + 50 * i].to_csv(
            data_dir / "good_data" / f"g{i}.csv", index=False
        )
    sample.iloc[:50].to_csv(data_dir / "raw-data" / "new.csv", index=False)
    result = validate(tfdv_worker, data_dir, "new.csv")
    assert {d["status"] for d in result["drift"]} == {"ok"}, result["drift"]
