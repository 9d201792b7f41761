"""Seeded databases for the dashboard tests: one fresh, migrated database per scenario."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest

from mlsys.db import migrate, psycopg2_dsn
from tests.conftest import fresh_database
from tests.grafana import seed


@pytest.fixture(scope="session")
def model_metadata(trained_model_dir: Path) -> dict:
    return json.loads((trained_model_dir / "metadata.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def seeded(pg_server, settings, trained_model_dir) -> dict[str, tuple[str, seed.Seeded]]:
    """scenario -> (psycopg2 DSN of its database, what was written)."""
    import pandas as pd

    from mlsys import model
    from mlsys.features import load_feature_spec

    spec = load_feature_spec(settings.schema_path, target=settings.target_column)
    loaded = model.load(trained_model_dir)
    rows = pd.read_csv(settings.dataset_path)
    probabilities = loaded.predict_proba(model.encode_frame(rows, spec))
    rules = seed.drift_rules(settings.schema_path, spec)
    now = datetime.now(UTC)
    found = {}
    for scenario in seed.SCENARIOS:
        url = fresh_database(pg_server, f"grafana_{scenario}")
        migrate(url)
        planned = seed.build(
            scenario, now=now, spec=spec, rules=rules, rows=rows, probabilities=probabilities,
            model_version=loaded.version,
        )  # fmt: skip
        conn = psycopg2.connect(psycopg2_dsn(url))
        try:
            # As the service does when it loads the model: the dashboards read its prior.
            model.record_metadata(conn, loaded.metadata)
            seed.write(
                conn, planned, positive_label=loaded.positive_label,
                negative_label=loaded.negative_label,
            )  # fmt: skip
        finally:
            conn.close()
        found[scenario] = (psycopg2_dsn(url), planned)
    return found
