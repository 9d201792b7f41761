"""Fixtures for the pipelines: a migrated Airflow metadata database, a warm TFDV worker,
a Teams stand-in on 127.0.0.1, and a way to run a DAG with `dag.test()` in the airflow env."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mlsys.config import ROOT, get_settings
from ops import pg
from pipelines.airflow_env import airflow_environment
from tests.conftest import AIRFLOW_PYTHON, TFDV_PYTHON, fresh_database


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every pipeline test gets a DATA_DIR below this folder (the TFDV worker's root)."""
    return tmp_path_factory.mktemp("data-root")


@pytest.fixture
def data_dir(data_root: Path, request: pytest.FixtureRequest) -> Path:
    path = data_root / request.node.name.replace("[", "-").replace("]", "")
    for sub in ("raw-data", "good_data", "bad_data", "reports"):
        (path / sub).mkdir(parents=True)
    return path


@pytest.fixture(scope="session")
def tfdv_worker(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One warm TFDV process for the whole session (the import costs 15-22 s)."""
    port = pg.free_port()
    log = tmp_path_factory.mktemp("tfdv-worker") / "worker.log"
    env = os.environ | {"DATA_DIR": str(data_root)}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(TFDV_PYTHON), "-m", "pipelines.ingestion.tfdv_worker", "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"TFDV worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@dataclass
class TeamsReceiver:
    """A real HTTP server standing in for a Teams Workflows webhook (answers 202)."""

    url: str
    received: list[dict] = field(default_factory=list)
    status: int = 202


@pytest.fixture
def fresh_alerts(database_url: str) -> str:
    """An alert state that has told nothing yet (a new Teams channel): the session's database
    keeps what earlier tests told, and cooldowns would silence this test's cards."""
    import psycopg2

    from mlsys.db import psycopg2_dsn

    dsn = psycopg2_dsn(database_url)
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("TRUNCATE alert_occurrences, alert_cards, alert_problems")
    conn.close()
    return dsn


@pytest.fixture
def teams(fresh_alerts: str) -> Iterator[TeamsReceiver]:
    """A Teams channel that has heard nothing: the receiver and a fresh alert state."""
    receiver = TeamsReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.received.append(json.loads(body))
            self.send_response(receiver.status)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/workflows/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()


@pytest.fixture(scope="session")
def airflow_env(pg_server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of an Airflow whose metadata database is migrated (dag.test() needs it)."""
    home = tmp_path_factory.mktemp("airflow-home")
    url = fresh_database(pg_server, "airflow_test")
    env = os.environ | airflow_environment(get_settings(), home=home, metadata_url=url)
    result = subprocess.run(
        [str(AIRFLOW_PYTHON.parent / "airflow"), "db", "migrate"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return env


@dataclass
class DagRun:
    state: str
    tasks: dict[str, str]
    log: str


def start_dag(dag_id: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 (closed with the process by the caller)
    return subprocess.Popen(
        [str(AIRFLOW_PYTHON), "-m", "pipelines.run_dag", dag_id],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip


def finish_dag(proc: subprocess.Popen, log: Path, timeout_s: float = 600) -> DagRun:
    proc.wait(timeout=timeout_s)
    text = log.read_text(errors="replace")
    last = [line for line in text.splitlines() if line.startswith("{")]
    assert last, f"no outcome printed:\n{text[-5000:]}"
    outcome = json.loads(last[-1])
    return DagRun(state=outcome["state"], tasks=outcome.get("tasks", {}), log=text)


def run_dag(dag_id: str, env: dict[str, str], log: Path) -> DagRun:
    return finish_dag(start_dag(dag_id, env, log), log)


@pytest.fixture
def dag_env(airflow_env, database_url, data_dir, tfdv_worker, teams) -> dict[str, str]:
    """The environment of an ingestion run on this test's data folder, the session's database
    and TFDV worker, and the loopback Teams receiver; files settle after 0.5 s."""
    return airflow_env | {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "TFDV_WORKER_URL": tfdv_worker,
        "TEAMS_WEBHOOK_URL": teams.url,
        "REPORT_BASE_URL": "http://reports.example/reports",
        "INGEST_SETTLE_SECONDS": "0.5",
    }
