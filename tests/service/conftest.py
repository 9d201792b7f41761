"""A real uvicorn process of the service, on a free port, against the test PostgreSQL.

The service gets its own database on the session's embedded server (so that counting rows
is not disturbed by other tests), the model trained for this session, and small limits
(MAX_BATCH_RECORDS, MAX_BODY_BYTES) so that the limit tests stay cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg2
import pytest

from mlsys.api_auth import Role
from mlsys.db import migrate, psycopg2_dsn
from mlsys.features import FeatureSpec, load_feature_spec
from ops import pg
from service import launch
from service.openapi_docs import example_record
from tests.conftest import VENV_DIR, auth_headers, fresh_database

MAX_BATCH = 50
MAX_BODY = 100_000


@dataclass
class Api:
    url: str
    database_url: str
    data_dir: Path
    client: httpx.Client  # with the webapp role's token (the UI's)
    scheduler: httpx.Client  # the prediction DAG's token
    reader: httpx.Client  # the read-only token
    anon: httpx.Client  # no credential

    def count(self, where: str = "TRUE", params: tuple = ()) -> int:
        """Rows in `predictions` (the condition is test code, never user input)."""
        with psycopg2.connect(psycopg2_dsn(self.database_url)) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM predictions WHERE {where}", params)
            return cur.fetchone()[0]


def service_env(
    database_url: str, model_dir: Path, data_dir: Path, port: int, **extra: str
) -> dict[str, str]:
    return {
        "DATABASE_URL": database_url,
        "MODEL_DIR": str(model_dir),
        "DATA_DIR": str(data_dir),
        "API_PORT": str(port),
        "API_HOST": "127.0.0.1",
        "API_WORKERS": "1",
        "API_DB_POOL_SIZE": "2",
        "VENV_DIR": str(VENV_DIR),
        **extra,
    }


def start_api(tmp: Path, env: dict[str, str]) -> tuple[object, str]:
    proc = launch.spawn(env, tmp / "api.log")
    url = f"http://127.0.0.1:{env['API_PORT']}"
    try:
        launch.wait_until_serving(proc, url, log_path=tmp / "api.log")
    except RuntimeError:
        launch.stop(proc)
        raise
    return proc, url


@pytest.fixture(scope="session")
def spec(settings) -> FeatureSpec:
    return load_feature_spec(settings.schema_path, target=settings.target_column)


@pytest.fixture(scope="session")
def api(pg_server: pg.EmbeddedServer, trained_model_dir: Path, tmp_path_factory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("api")
    url = fresh_database(pg_server, "service_test")
    migrate(url)
    data_dir = tmp / "data"
    (data_dir / "reports").mkdir(parents=True)
    env = service_env(
        url, trained_model_dir, data_dir, pg.free_port(),
        MAX_BATCH_RECORDS=str(MAX_BATCH), MAX_BODY_BYTES=str(MAX_BODY),
    )  # fmt: skip
    proc, base = start_api(tmp, env)

    def client(role: Role | None) -> httpx.Client:
        headers = auth_headers(role) if role is not None else {}
        return httpx.Client(base_url=base, timeout=30, headers=headers)

    with (
        client(Role.WEBAPP) as webapp,
        client(Role.SCHEDULER) as scheduler,
        client(Role.READER) as reader,
        client(None) as anon,
    ):
        yield Api(base, url, data_dir, webapp, scheduler, reader, anon)
    launch.stop(proc)
    if os.environ.get("SHOW_API_LOG"):
        print((tmp / "api.log").read_text())


@pytest.fixture
def record(spec: FeatureSpec) -> dict:
    return example_record(spec)
