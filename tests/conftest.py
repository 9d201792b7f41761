"""Shared fixtures: a throw-away embedded PostgreSQL per test session, a trained model.

Nothing here touches the developer's own database or model: the server lives in a temporary
folder on a free port, so that several test runs (and `make up`) can go on side by side.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import sql

from mlsys import report_links
from mlsys.api_auth import TOKEN_NAMES, Role
from mlsys.config import get_settings, load_settings
from mlsys.db import migrate, psycopg2_dsn
from ops import pg

# Where the environments are (VENV_DIR), as every component resolves it; load_settings, not
# the cached get_settings, so that nothing is cached before pytest_configure sets the tokens.
_ENVIRONMENTS = load_settings()
VENV_DIR = _ENVIRONMENTS.venv_dir
APP_PYTHON = _ENVIRONMENTS.venv_python("app")
TFDV_PYTHON = _ENVIRONMENTS.venv_python("tfdv")
AIRFLOW_PYTHON = _ENVIRONMENTS.venv_python("airflow")

# The API credentials of this test session (random, never the developer's): set in the
# environment before any test runs, so that every service, UI and DAG the tests start, and
# every client in this process, finds them where `make up` would hand them over.
API_TOKENS = {role: f"test-{role}-{secrets.token_urlsafe(24)}" for role in Role}
REPORT_LINK_KEY = secrets.token_urlsafe(32)


def pytest_configure(config: pytest.Config) -> None:
    for role, name in TOKEN_NAMES.items():
        os.environ[name] = API_TOKENS[role]
        os.environ.pop(f"{name}_FILE", None)
    os.environ[report_links.KEY_NAME] = REPORT_LINK_KEY
    os.environ.pop(f"{report_links.KEY_NAME}_FILE", None)
    # `dag.test()` runs the tasks in its own process, with no executor: the same test for
    # both executors. Whatever the developer's .env chooses, the Airflow environments the
    # tests build are the LocalExecutor's; the live tests (tests/e2e/) set their executor.
    os.environ["AIRFLOW_EXECUTOR"] = "local"


def auth_headers(role: Role) -> dict[str, str]:
    """The Authorization header of a role's test token."""
    return {"Authorization": f"Bearer {API_TOKENS[role]}"}


@pytest.fixture(scope="session", autouse=True)
def _pytest_tmp_traversable(tmp_path_factory: pytest.TempPathFactory) -> None:
    """As root, the embedded servers run as `embedded_postgres`, which must traverse pytest's
    temporary root (created 0700) to reach a data folder under `tmp_path`: o+x (not listable)
    on pytest's own folders. `ops.pg` itself never chmods above a server's state folder."""
    if os.geteuid() != 0:
        return
    base = tmp_path_factory.getbasetemp()
    for folder in (base.parent, base):
        folder.chmod(folder.stat().st_mode | 0o011)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[pg.EmbeddedServer]:
    """The session's server, set up as `make up` sets up its own: SCRAM passwords only, our
    pg_hba.conf, a generated superuser password (0600) in its state folder."""
    base = Path(tempfile.mkdtemp(prefix="mlsys-test-pg-"))
    server = pg.EmbeddedServer(data_dir=base / "data", port=pg.free_port(), state_dir=base)
    try:
        pg.start(server)
        pg.wait_until_ready(server.dsn())
        yield server
    finally:
        pg.stop(server)
        shutil.rmtree(base, ignore_errors=True)


def fresh_database(server: pg.EmbeddedServer, name: str) -> str:
    """Create an empty database on the test server and return its SQLAlchemy URL."""
    conn = psycopg2.connect(server.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    conn.close()
    pg.ensure_database(server.dsn(), name)
    return server.url(name)


@pytest.fixture(scope="session")
def database_url(pg_server: pg.EmbeddedServer) -> str:
    """The migrated application database of this test session."""
    url = fresh_database(pg_server, "mlsys_test")
    migrate(url)
    return url


@pytest.fixture
def db_conn(database_url: str) -> Iterator[psycopg2.extensions.connection]:
    conn = psycopg2.connect(psycopg2_dsn(database_url))
    yield conn
    conn.rollback()
    conn.close()


@pytest.fixture(scope="session")
def settings():
    return get_settings()


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory, settings) -> Path:
    """Train the model once per session into a temporary folder."""
    import pandas as pd

    from mlsys import model
    from mlsys.schema_versions import read_snapshot

    snapshot = read_snapshot(settings.schema_path)  # as `make train` reads it
    spec = snapshot.feature_spec(settings.target_column)
    frame = pd.read_csv(settings.dataset_path)
    result = model.train(
        frame, spec, target=settings.target_column, positive_class=settings.positive_class,
        dataset=str(settings.dataset_path), schema_version=snapshot.version,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("model")
    model.save(result, out)
    return out
