"""The curated schema against the data set (the data engineers' contract)."""

import os
import subprocess

import pandas as pd

from mlsys.features import Kind, load_feature_spec
from tests.conftest import TFDV_PYTHON


def test_the_serving_features_are_the_data_set_columns_minus_the_target(settings):
    spec = load_feature_spec(settings.schema_path, target=settings.target_column)
    columns = pd.read_csv(settings.dataset_path, nrows=1).columns
    assert set(spec.names) == set(columns) - {settings.target_column}
    assert settings.target_column not in spec.names
    assert spec.target_values == ("0", "1")


def test_the_schema_is_curated(settings):
    spec = load_feature_spec(settings.schema_path, target=settings.target_column)
    for feature in spec.features:
        assert feature.required, feature.name
        if feature.kind is Kind.CATEGORICAL:
            assert feature.values, f"{feature.name} has no domain"
        else:
            assert feature.minimum is not None and feature.maximum is not None, feature.name
            assert feature.minimum >= 0, f"{feature.name} allows negative values"
    assert spec["age"].minimum == 18


def test_every_dataset_value_is_inside_the_curated_schema(settings):
    spec = load_feature_spec(settings.schema_path, target=settings.target_column)
    frame = pd.read_csv(settings.dataset_path)
    for f in spec.features:
        if f.kind is Kind.CATEGORICAL:
            assert set(frame[f.name]) <= set(f.values), f.name
        else:
            assert frame[f.name].between(f.minimum, f.maximum).all(), f.name


def test_tfdv_finds_no_anomaly_in_the_clean_data_set(settings):
    """Real TFDV, in its own environment, on the whole data set, TRAINING and SERVING."""
    env = os.environ | {"DATASET_PATH": str(settings.dataset_path)}
    result = subprocess.run(
        [str(TFDV_PYTHON), "-m", "mlsys.tfdv_tools", "check"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "TRAINING: 0 anomalies" in result.stdout
    assert "SERVING: 0 anomalies" in result.stdout
