"""Fixtures of the error-injection tests: the feature spec and the real data set's rows."""

from __future__ import annotations

import pandas as pd
import pytest

from error_injection.generate import load_source
from mlsys.features import FeatureSpec, load_feature_spec


@pytest.fixture(scope="session")
def spec(settings) -> FeatureSpec:
    return load_feature_spec(settings.schema_path, target=settings.target_column)


@pytest.fixture(scope="session")
def source(settings, spec) -> pd.DataFrame:
    """The data set's serving features (target dropped), as the generator reads it."""
    return load_source(settings.dataset_path, spec, settings.target_column)
