"""Several API processes behind haproxy (service/fleet.py): a rolling restart under load loses
no request and stores nothing twice; a stopping process drains before it stops accepting;
access control holds behind the balancer. Real processes on 127.0.0.1 (docs/scaling.md)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bench.restart_load import PredictLoad, tally
from mlsys.api_auth import Role
from mlsys.config import load_settings
from mlsys.db import migrate, psycopg2_dsn
from ops import pg
from service import fleet, launch
from tests.conftest import auth_headers, fresh_database
from tests.service.conftest import service_env


@dataclass
class Fleet:
    url: str
    dsn: str
    env: dict[str, str]
    proc: object

    def state(self) -> fleet.FleetState:
        state = fleet.read_state(load_settings(os.environ | self.env))
        assert state is not None
        return state


@pytest.fixture(scope="module")
def two_processes(pg_server, trained_model_dir: Path, tmp_path_factory) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("fleet")
    url = fresh_database(pg_server, "fleet_test")
    migrate(url)
    env = service_env(
        url, trained_model_dir, tmp / "data", pg.free_port(),
        API_WORKERS="2", API_BACKEND_PORT=str(pg.free_port_run(2)), VAR_DIR=str(tmp / "var"),
    )  # fmt: skip
    proc = launch.spawn(env, tmp / "api.log")
    base = f"http://127.0.0.1:{env['API_PORT']}"
    try:
        launch.wait_until_serving(proc, base, timeout_s=120, log_path=tmp / "api.log")
        yield Fleet(base, psycopg2_dsn(url), env, proc)
    finally:
        launch.stop(proc)
        if os.environ.get("SHOW_API_LOG"):
            print((tmp / "api.log").read_text())


def _wait_ready(f: Fleet) -> fleet.FleetState:
    return fleet.wait_ready(load_settings(os.environ | f.env), timeout_s=60)


def test_rolling_restart_under_load_loses_nothing(two_processes: Fleet, record: dict) -> None:
    before = _wait_ready(two_processes)
    # No resends: every first attempt must be answered 200.
    load = PredictLoad(
        two_processes.url, auth_headers(Role.WEBAPP), [record], clients=4, batch_size=5
    ).start()
    time.sleep(1.0)
    settings = load_settings(os.environ | two_processes.env)
    after = fleet.request_restart(settings, two_processes.proc.pid, timeout_s=180)
    time.sleep(1.0)
    outcomes = load.stop()

    assert after.last_error == ""
    assert set(after.backends) == set(before.backends) == {"api-0", "api-1"}
    assert not set(after.backends.values()) & set(before.backends.values()), "not replaced"
    counts = tally(outcomes, two_processes.dsn)
    assert counts.requests > 50, counts  # load went on during the whole restart
    assert counts.by_status == {"200": counts.requests}, counts
    assert counts.connection_errors == 0, counts
    assert counts.lost == 0 and counts.duplicates == 0, counts
    assert counts.rows_stored == sum(o.records for o in outcomes) == counts.rows_answered


def test_a_stopping_process_drains_before_it_stops_accepting(two_processes: Fleet) -> None:
    state = _wait_ready(two_processes)
    port = int(two_processes.env["API_BACKEND_PORT"])
    pid = state.backends["api-0"]
    direct = f"http://127.0.0.1:{port}"
    assert httpx.get(f"{direct}/readyz").status_code == 200
    os.kill(pid, signal.SIGTERM)
    # Draining: not ready, yet still accepting and answering (API_DRAIN_S, 3 s by default).
    time.sleep(0.3)
    assert httpx.get(f"{direct}/readyz").json() == {"status": "draining"}
    assert httpx.get(f"{direct}/livez").status_code == 200
    # Through the balancer every request is answered meanwhile, and the fleet replaces it.
    for _ in range(20):
        assert httpx.get(f"{two_processes.url}/livez").status_code == 200
    deadline = time.monotonic() + 60
    while two_processes.state().backends["api-0"] == pid or not _serves(direct):
        assert time.monotonic() < deadline, "the stopped process was not replaced"
        time.sleep(0.2)


def _serves(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz").status_code == 200
    except httpx.TransportError:
        return False


def test_access_control_holds_behind_the_balancer(two_processes: Fleet, record: dict) -> None:
    body = {"source": "webapp", "records": [record]}
    url = f"{two_processes.url}/predict"
    assert httpx.post(url, json=body).status_code == 401
    assert httpx.post(url, json=body, headers=auth_headers(Role.READER)).status_code == 403
    # The client's Host reaches the processes unchanged: DNS rebinding is still refused.
    evil = {**auth_headers(Role.WEBAPP), "Host": "evil.example"}
    assert httpx.post(url, json=body, headers=evil).status_code == 400
    # A forged X-Forwarded-For cannot make a request look local: the balancer drops it.
    forged = {**auth_headers(Role.WEBAPP), "X-Forwarded-For": "127.0.0.1"}
    assert httpx.post(url, json=body, headers=forged).status_code == 200
