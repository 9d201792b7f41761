"""Airflow's real api-server, configured as `make up` configures it: no token without a
password; the admin password `make up` writes (0600, VAR_DIR/secrets) gets one; "everyone is
admin" only with AIRFLOW_DEV_ALL_ADMINS=1."""

from __future__ import annotations

import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlsys.config import load_settings
from mlsys.credentials import secret_path
from ops import pg
from pipelines.airflow_env import ADMIN_SECRET, airflow_environment, ensure_admin_password
from tests.conftest import AIRFLOW_PYTHON

pytestmark = pytest.mark.timeout(600)


def _api_server(env: dict[str, str], log: Path) -> Iterator[str]:
    port = pg.free_port()
    env = env | {"AIRFLOW__API__PORT": str(port)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(AIRFLOW_PYTHON.parent / "airflow"), "api-server", "--port", str(port)],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{base}/api/v2/version", timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"api-server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("airflow-auth-var")


@pytest.fixture(scope="module")
def api_server(airflow_env, var_dir, tmp_path_factory) -> Iterator[str]:
    settings = load_settings({"VAR_DIR": str(var_dir)})
    ensure_admin_password(settings)
    env = airflow_env | airflow_environment(
        settings, home=Path(airflow_env["AIRFLOW_HOME"]),
        metadata_url=airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
    )  # fmt: skip
    env.pop("AIRFLOW_DEV_ALL_ADMINS", None)
    yield from _api_server(env, tmp_path_factory.mktemp("api-log") / "api-server.log")


def test_the_password_files_are_private(api_server, var_dir):
    settings = load_settings({"VAR_DIR": str(var_dir)})
    for path in (secret_path(var_dir, ADMIN_SECRET), ensure_admin_password(settings)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_no_token_without_credentials(api_server):
    answer = httpx.get(f"{api_server}/auth/token", timeout=10)
    assert answer.status_code >= 400 and "access_token" not in answer.text
    wrong = httpx.post(
        f"{api_server}/auth/token", json={"username": "admin", "password": "wrong"}, timeout=10
    )
    assert wrong.status_code == 401
    assert httpx.get(f"{api_server}/api/v2/dags", timeout=10).status_code == 401


def test_the_generated_admin_password_gets_a_token(api_server, var_dir):
    password = secret_path(var_dir, ADMIN_SECRET).read_text().strip()
    answer = httpx.post(
        f"{api_server}/auth/token", json={"username": "admin", "password": password}, timeout=10
    )
    assert answer.status_code == 201, answer.text
    token = answer.json()["access_token"]
    dags = httpx.get(
        f"{api_server}/api/v2/dags", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert dags.status_code == 200


def test_everyone_is_admin_only_when_asked_for(var_dir, monkeypatch):
    settings = load_settings({"VAR_DIR": str(var_dir)})
    home = var_dir / "airflow"
    plain = airflow_environment(settings, home=home, metadata_url="postgresql://x@h/db")
    assert plain["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "False"
    monkeypatch.setenv("AIRFLOW_DEV_ALL_ADMINS", "1")
    dev = airflow_environment(settings, home=home, metadata_url="postgresql://x@h/db")
    assert dev["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS"] == "True"
