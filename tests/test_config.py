import traceback
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from mlsys.config import DB_ROLES, ROOT, ConfigError, load_settings
from mlsys.credentials import SecretError, ensure_secret


def test_defaults_live_under_the_repository():
    s = load_settings({})
    assert s.data_dir == ROOT / "data"
    assert s.raw_data_dir == ROOT / "data" / "raw-data"
    assert s.embedded_postgres
    assert s.dataset_path.name == "german.csv" and s.dataset_path.exists()


def test_each_component_has_its_own_role_and_password(tmp_path: Path):
    for _, secret in DB_ROLES.values():
        ensure_secret(tmp_path, secret)
    urls = {}
    for component in ("owner", "service", "pipelines"):
        s = load_settings({"VAR_DIR": str(tmp_path), "MLSYS_DB_ROLE": component})
        urls[component] = make_url(s.database_url)
    assert {c: u.username for c, u in urls.items()} == {
        "owner": "mlsys_owner", "service": "mlsys_service", "pipelines": "mlsys_pipelines",
    }  # fmt: skip
    assert len({u.password for u in urls.values()}) == 3  # three different generated passwords
    assert all(u.database == "mlsys" and u.port == 5432 for u in urls.values())
    airflow = make_url(load_settings({"VAR_DIR": str(tmp_path)}).airflow_database_url)
    assert (airflow.username, airflow.database) == ("mlsys_airflow", "airflow")
    assert load_settings({}).db_component == "owner"  # outside `make up`: the owner


def test_a_missing_password_names_its_variable_not_a_value(tmp_path: Path):
    s = load_settings({"VAR_DIR": str(tmp_path), "MLSYS_DB_ROLE": "service"})
    with pytest.raises(SecretError, match="PG_SERVICE_PASSWORD is not set"):
        _ = s.database_url
    given = load_settings({"VAR_DIR": str(tmp_path), "MLSYS_DB_ROLE": "service",
                           "PG_SERVICE_PASSWORD": "p@ss:w/rd"})  # fmt: skip
    assert make_url(given.database_url).password == "p@ss:w/rd"  # quoted into the URL


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:hunter2-secret@db:notaport/mlsys",
        "postgresql://app:hunter2-secret@db:5432",
        "postgresql://app:hunter2-secret@db:5432/",
        "app:hunter2-secret@db:5432/mlsys",
        "mysql://app:hunter2-secret@db/mlsys",
        "postgresql://:hunter2-secret@db/mlsys",
    ],
)
def test_a_malformed_database_url_is_refused_without_its_password(url):
    with pytest.raises(ConfigError, match="DATABASE_URL") as caught:
        load_settings({"DATABASE_URL": url})
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in "".join(traceback.format_exception(caught.value))


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


def test_settings_never_show_a_password(tmp_path: Path):
    env = {"VAR_DIR": str(tmp_path), "DATABASE_URL": "postgresql://u:hunter2-secret@db/app",
           "DATABASE_ADMIN_URL": "postgresql://postgres:hunter2-admin@db/postgres",
           "PG_OWNER_PASSWORD": "hunter2-owner"}  # fmt: skip
    assert "hunter2" not in repr(load_settings(env))
