import os
import subprocess
import traceback
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from mlsys.config import (
    DB_ROLES,
    ROOT,
    ConfigError,
    libpq_url,
    load_settings,
    postgres_url,
    sqlalchemy_url,
)
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
        ({"DEMO_RAW_DATA": "yes"}, "DEMO_RAW_DATA='yes' is not an integer"),
        ({"DEMO_RAW_DATA": "2"}, r"DEMO_RAW_DATA=2 is outside \[0, 1\]"),
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


# --- where the Python environments are: VENV_DIR, resolved by Settings only --------------


def test_the_environments_live_under_venv_dir(tmp_path: Path):
    assert load_settings({}).venv_python("app") == ROOT / ".venvs" / "app" / "bin" / "python"
    assert load_settings({"VENV_DIR": "envs"}).venv_dir == ROOT / "envs"  # from the root
    given = load_settings({"VENV_DIR": str(tmp_path)})
    assert given.venv_bin("airflow") == tmp_path / "airflow" / "bin"
    assert given.venv_python("tfdv") == tmp_path / "tfdv" / "bin" / "python"
    with pytest.raises(ConfigError, match="unknown Python environment 'conda'"):
        given.venv_python("conda")


def test_every_component_starts_its_interpreter_from_venv_dir(tmp_path: Path):
    """The service, the UI, Airflow and the TFDV task, given one VENV_DIR, all use it."""
    from frontend import launch as ui_launch
    from pipelines.airflow_env import airflow_environment
    from pipelines.config import load_pipeline_settings
    from service import launch as api_launch
    from service.config import load_service_settings

    env = {"VENV_DIR": str(tmp_path), "VAR_DIR": str(tmp_path / "var")}
    settings = load_settings(env)
    assert api_launch.command(settings, load_service_settings(env))[0] == str(
        tmp_path / "app" / "bin" / "python"
    )
    assert ui_launch.command(settings)[0] == str(tmp_path / "app" / "bin" / "python")
    assert load_pipeline_settings(env).tfdv_python == tmp_path / "tfdv" / "bin" / "python"
    metadata = "postgresql://a:b@h/airflow"  # the URL is beside the point here
    path = airflow_environment(settings, home=tmp_path / "h", metadata_url=metadata)["PATH"]
    assert path.split(":")[0] == str(tmp_path / "airflow" / "bin")


def test_the_makefile_finds_the_environments_where_the_settings_do():
    # The Makefile runs before any environment exists, so it cannot ask Python: same default.
    env = {k: v for k, v in os.environ.items() if k != "VENV_DIR"}
    printed = subprocess.run(
        ["make", "-pn", "-f", "Makefile"], cwd=ROOT, env=env, capture_output=True, text=True
    ).stdout
    app_py = next(line for line in printed.splitlines() if line.startswith("APP_PY :="))
    assert app_py.split(":=", 1)[1].strip() == str(load_settings({}).venv_python("app"))


# --- the forms of a database address -------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg2://u:p@h:5/db?sslmode=require",
        "postgresql://u:p@h:5/db?sslmode=require",
        "postgres://u:p@h:5/db?sslmode=require",
    ],
)
def test_each_form_of_a_postgres_url(url):
    assert libpq_url(url) == "postgresql://u:p@h:5/db?sslmode=require"
    assert sqlalchemy_url(url) == "postgresql+psycopg2://u:p@h:5/db?sslmode=require"


def test_another_scheme_is_refused_without_its_password():
    for convert in (libpq_url, sqlalchemy_url):
        with pytest.raises(ConfigError, match="not a PostgreSQL URL") as caught:
            convert("mysql://u:hunter2-secret@h/db")
        assert "hunter2" not in str(caught.value)


def test_a_built_url_keeps_any_password_in_every_form():
    from psycopg2.extensions import parse_dsn

    password = "p@ss:w/rd %20?#"
    url = postgres_url(user="o'brien", password=password, host="h", port=5, database="d b")
    parsed = make_url(url)
    assert (parsed.username, parsed.password, parsed.database) == ("o'brien", password, "d b")
    libpq = parse_dsn(libpq_url(url))  # what psycopg2, asyncpg and yoyo are given
    assert (libpq["user"], libpq["password"], libpq["dbname"]) == ("o'brien", password, "d b")


def test_settings_give_each_database_in_both_forms(tmp_path: Path):
    env = {"VAR_DIR": str(tmp_path), "MLSYS_DB_ROLE": "service"}
    for component in DB_ROLES:
        ensure_secret(tmp_path, DB_ROLES[component][1])
    s = load_settings(env)
    assert s.database_dsn == libpq_url(s.database_url)
    assert make_url(s.database_dsn).username == "mlsys_service"
    assert make_url(s.owner_database_dsn).username == "mlsys_owner"
    assert s.database_admin_dsn is None
    admin = load_settings({**env, "DATABASE_ADMIN_URL": "postgres://postgres:x@h/postgres"})
    assert admin.database_admin_dsn == "postgresql://postgres:x@h/postgres"
