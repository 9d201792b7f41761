"""The whole system as `make up` starts it, with the real scheduler: a file placed in raw-data
is ingested, split, predicted, visible through /past-predictions and the UI, and alerted on
in Teams (a receiver on 127.0.0.1); `make down` then leaves no process behind.

Run once per executor (AIRFLOW_EXECUTOR): LocalExecutor, and CeleryExecutor with our Redis and
two Celery workers, the validation on its own queue. Slow (Airflow needs about 90 s to answer,
then the schedules run), so it is the one end-to-end test of the data flow; every other test
drives the parts directly (tests/e2e/test_worker_death.py kills Celery workers mid-task).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import psutil
import psycopg2
import pytest

from mlsys import report_links
from mlsys.api_auth import TOKEN_NAMES, Role, bearer_headers
from mlsys.config import ROOT, libpq_url, load_settings
from mlsys.features import Kind, get_feature_spec
from ops import pg
from tests.pipelines.conftest import (  # noqa: F401 (fixtures)
    TeamsReceiver,
    fresh_alerts,
    teams,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

# Worst case from a file landing in raw-data to its predictions being served: the next ingest
# run (up to 60 s) + its run (about 20 s with the warm worker) + the next prediction run (up to
# 120 s) + its run (about 10 s); doubled for a loaded 2-core machine.
WORST_CASE_S = 2 * (60 + 20 + 120 + 10)


def _get(url: str, headers: dict[str, str] | None = None) -> dict:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


# What `make status` reports running, per executor: the API, the UI, the TFDV worker,
# Airflow and PostgreSQL; with Celery also Redis and the two workers.
RUNNING = {"local": 5, "celery": 8}


def _our_processes(var_dir: Path, ports: list[int]) -> list[str]:
    """Processes that belong to this system: a command line naming its folders, an
    environment with its VAR_DIR (Celery renames its processes), or a listener on one of
    its ports."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        try:
            ours = proc.environ().get("VAR_DIR") == str(var_dir)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            ours = False
        if str(var_dir) in cmd or ours:
            found.append(f"{proc.info['pid']}: {cmd[:200]}")
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port in ports:
            found.append(f"listener on {conn.laddr.port} (pid {conn.pid})")
    return found


def live_env(tmp_path: Path, executor: str, ports: dict[str, int]) -> dict[str, str]:
    """The environment of a `make up` of our own: its ports, folders and executor, and not
    this session's test credentials but the ones `make up` generates under VAR_DIR."""
    return os.environ | {k: str(v) for k, v in ports.items()} | {
        "VAR_DIR": str(tmp_path / "var"), "DATA_DIR": str(tmp_path / "data"),
        "MODEL_DIR": str(tmp_path / "models"), "DATABASE_URL": "", "AIRFLOW_DATABASE_URL": "",
        "AIRFLOW_EXECUTOR": executor, "CELERY_BROKER_URL": "",
    } | {name: "" for name in [*TOKEN_NAMES.values(), report_links.KEY_NAME]}  # fmt: skip


def live_ports() -> dict[str, int]:
    ports = {
        name: pg.free_port()
        for name in (
            "PGPORT_EMBEDDED",
            "API_PORT",
            "UI_PORT",
            "AIRFLOW_PORT",
            "TFDV_WORKER_PORT",
            "REDIS_PORT",
        )  # fmt: skip
    }
    ports["AIRFLOW_LOG_SERVER_PORT"] = pg.free_port_run(2)  # the triggerer's is the next
    return ports


@pytest.mark.parametrize("executor", ["local", "celery"])
def test_make_up_ingests_predicts_alerts_and_make_down_cleans_up(tmp_path, teams, settings,  # noqa: F811
                                                                  executor):  # fmt: skip
    # As root the server runs as `embedded_postgres`, which must traverse the folder above
    # VAR_DIR; `make up` itself never chmods outside VAR_DIR (README, "Security").
    tmp_path.chmod(0o711)
    var = tmp_path / "var"
    ports = live_ports()
    env = live_env(tmp_path, executor, ports) | {"TEAMS_WEBHOOK_URL": teams.url}
    s = load_settings(env)

    # A file with a few bad rows, so that it is split and alerted on.
    spec = get_feature_spec()
    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False).drop(
        columns=[settings.target_column]
    )
    frame = frame.iloc[:40].reset_index(drop=True)
    category = next(f for f in spec.features if f.kind is Kind.CATEGORICAL)
    frame.loc[[4, 9], category.name] = "not-a-category"
    s.raw_data_dir.mkdir(parents=True)
    frame.to_csv(s.raw_data_dir / "e2e.csv", index=False)

    started = time.monotonic()
    try:
        up = subprocess.run(
            ["make", "up"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        up_s = time.monotonic() - started
        assert f"http://127.0.0.1:{ports['API_PORT']}" in up.stdout
        assert "raw-data: 1 files waiting" in up.stdout  # ours, nothing generated over it

        secrets = sorted((var / "secrets").iterdir())
        assert secrets and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in secrets)
        reader = bearer_headers(Role.READER, var, env)
        deadline = time.monotonic() + WORST_CASE_S
        api = f"http://127.0.0.1:{ports['API_PORT']}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"{api}/past-predictions")
        assert refused.value.code == 401
        items: list[dict] = []
        while time.monotonic() < deadline:
            items = _get(f"{api}/past-predictions?source=scheduled&limit=100", reader)["items"]
            if len(items) == 38:
                break
            time.sleep(5)
        visible_s = time.monotonic() - started
        assert len(items) == 38, f"{len(items)} scheduled predictions after {visible_s:.0f} s"
        assert {i["source_file"].split("--")[0] for i in items} == {"e2e"}
        assert sorted(i["source_row"] for i in items) == list(range(38))
        print(
            f"\nmake up: {up_s:.0f} s; predictions visible {visible_s:.0f} s after make up started"
        )

        good, bad = list(s.good_data_dir.glob("*.csv")), list(s.bad_data_dir.glob("*.csv"))
        assert len(good) == 1 and len(bad) == 1 and list(s.raw_data_dir.glob("*.csv")) == []
        [card] = [c for c in teams.received if "e2e" in json.dumps(c)]
        # The file's problem (an unknown category in one column, 2 of its 40 rows), its report.
        text = json.dumps(card)
        problem = f"unknown_category in {category.name}".replace("_", "\\\\_")
        assert problem in text and ": 2 rows" in text
        assert '{"title": "Rows", "value": "40"}' in text
        report = card["attachments"][0]["content"]["actions"][0]["url"]
        assert "&sig=" in report  # a browser opens it from Teams without any API token
        with urllib.request.urlopen(report, timeout=10) as answer:  # served by the API
            assert b"not-a-category" in answer.read()

        _check_ui(f"http://127.0.0.1:{ports['UI_PORT']}", tmp_path)
        _check_access(ports, var)
        status = subprocess.run(
            ["make", "status"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert status.stdout.count("running") == RUNNING[executor], status.stdout
        assert status.returncode == 0, status.stderr  # everything up: exit 0
        if executor == "celery":
            _check_celery(env, s)
    finally:
        down = subprocess.run(
            ["make", "down"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )
    assert down.returncode == 0, down.stdout + down.stderr
    time.sleep(2)
    assert _our_processes(var, list(ports.values())) == [], down.stdout  # what down said


def _check_celery(env: dict[str, str], s) -> None:
    """The tasks ran on the Celery workers: each was received from Redis and executed by one of
    the two (their logs), its result stored in the result backend (Airflow's database), and
    validate_data was sent to the tfdv queue, every other task to the default queue."""
    conn = psycopg2.connect(libpq_url(s.airflow_database_url))
    try:
        with conn.cursor() as cur:
            cur.execute(
                """SELECT task_id, queue FROM task_instance
                   WHERE state = 'success' AND dag_id IN ('ingest_data', 'predict_new_data')"""
            )
            queues = dict(cur.fetchall())
            cur.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
            celery_successes = cur.fetchone()[0]
    finally:
        conn.close()
    assert queues["validate_data"] == "tfdv", queues
    assert {q for t, q in queues.items() if t != "validate_data"} == {"default"}, queues
    assert celery_successes >= len(queues)
    logs = "".join(
        (s.var_dir / "log" / f"airflow-worker-{i}.log").read_text(errors="replace") for i in (1, 2)
    )
    for task in ("read_data", "validate_data", "split_and_save_data", "make_predictions"):
        assert f"task_id='{task}'" in logs, task


def _check_access(ports: dict[str, int], var: Path) -> None:
    """Airflow as `make up` runs it: no token without a password, no log server; every
    listener of ours on the loopback only."""
    airflow = f"http://127.0.0.1:{ports['AIRFLOW_PORT']}"
    try:
        with urllib.request.urlopen(f"{airflow}/auth/token", timeout=10) as answer:
            raise AssertionError(f"Airflow gave a token without credentials: {answer.status}")
    except urllib.error.HTTPError as refused:
        assert 400 <= refused.code < 500
    password = (var / "secrets" / "airflow_admin_password").read_text().strip()
    login = urllib.request.Request(
        f"{airflow}/auth/token", method="POST", headers={"Content-Type": "application/json"},
        data=json.dumps({"username": "admin", "password": password}).encode(),
    )  # fmt: skip
    with urllib.request.urlopen(login, timeout=10) as answer:
        assert "access_token" in json.loads(answer.read())
    listening = {
        c.laddr.port: c.laddr.ip
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    }
    log_port = ports["AIRFLOW_LOG_SERVER_PORT"]
    assert log_port not in listening and log_port + 1 not in listening
    for name, port in ports.items():
        if port in listening:
            assert listening[port] == "127.0.0.1", (name, listening[port])


def _check_ui(url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    from tests.frontend.test_browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        expect.set_options(timeout=30_000)
        page.goto(url)
        page.get_by_role("link", name="Past predictions").click()
        page.get_by_text("scheduled predictions", exact=True).click()
        expect(page.get_by_text("38 predictions (scheduled predictions)")).to_be_visible()
        page.screenshot(path=tmp_path / "e2e-past-predictions.png", full_page=True)
        browser.close()
