from pathlib import Path

import pytest

from mlsys.config import ROOT, ConfigError, load_settings


def test_defaults_live_under_the_repository():
    s = load_settings({})
    assert s.data_dir == ROOT / "data"
    assert s.raw_data_dir == ROOT / "data" / "raw-data"
    assert s.embedded_postgres
    assert s.database_url == "postgresql+psycopg2://postgres@127.0.0.1:5432/mlsys"
    assert s.airflow_database_url.endswith("/airflow")
    assert s.dataset_path.name == "german.csv" and s.dataset_path.exists()


def test_database_url_override_disables_the_embedded_server():
    s = load_settings({"DATABASE_URL": "postgresql://u:p@db:5433/app?sslmode=require"})
    assert not s.embedded_postgres
    assert s.database_url == "postgresql+psycopg2://u:p@db:5433/app?sslmode=require"
    assert s.airflow_database_url == "postgresql+psycopg2://u:p@db:5433/airflow?sslmode=require"


def test_relative_paths_are_taken_from_the_root(tmp_path: Path):
    s = load_settings({"DATA_DIR": "elsewhere", "MODEL_DIR": str(tmp_path)})
    assert s.data_dir == ROOT / "elsewhere"
    assert s.model_dir == tmp_path


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PGPORT_EMBEDDED": "five"}, "PGPORT_EMBEDDED='five' is not an integer"),
        ({"PGPORT_EMBEDDED": "70000"}, "PGPORT_EMBEDDED=70000 is outside"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL must be a postgresql:// URL"),
        ({"TARGET_COLUMN": "  "}, "TARGET_COLUMN must not be empty"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env)


def test_api_workers_default_to_one_per_core_but_one():
    from service.config import default_workers, load_service_settings

    assert [default_workers(c) for c in (1, 2, 4, 8)] == [1, 1, 3, 7]
    assert load_service_settings({}).workers == default_workers()
    assert load_service_settings({"API_WORKERS": ""}).workers == default_workers()
    assert load_service_settings({"API_WORKERS": "3"}).workers == 3
