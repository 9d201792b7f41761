"""`make up` with AIRFLOW_EXECUTOR=celery: which processes it starts, our Redis (real
redis-server: password, loopback, nothing secret on a command line), a process without a port
that is ready when its log says so, and the executor's Airflow settings."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import psutil
import pytest

from mlsys.config import ConfigError, load_settings
from ops import pg, redis, supervisor
from pipelines import executor as ex
from pipelines.airflow_env import airflow_environment

LOCAL_SERVICES = {"api", "ui", "tfdv-worker", "airflow"}


def _enabled(env: dict[str, str]) -> set[str]:
    settings = load_settings(env)
    return {s.name for s in supervisor.services() if s.enabled(settings)}


def test_the_default_starts_what_it_always_did(tmp_path):
    assert _enabled({"VAR_DIR": str(tmp_path)}) == LOCAL_SERVICES
    env = airflow_environment(
        load_settings({"VAR_DIR": str(tmp_path)}), home=tmp_path, metadata_url="postgresql://m"
    )
    assert env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert not any(k.startswith("AIRFLOW__CELERY") for k in env)
    # Airflow's own heartbeat timeout (300 s) stays for the LocalExecutor.
    assert "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT" not in env


def test_celery_adds_redis_and_two_workers_or_no_redis_with_a_broker_of_yours(tmp_path):
    celery = {"VAR_DIR": str(tmp_path), "AIRFLOW_EXECUTOR": "celery"}
    workers = {"airflow-worker-1", "airflow-worker-2"}
    assert _enabled(celery) == LOCAL_SERVICES | {"redis"} | workers
    mine = celery | {"CELERY_BROKER_URL": "redis://:pw@broker.example:6379/0"}
    assert _enabled(mine) == LOCAL_SERVICES | workers


def test_celery_airflow_settings(tmp_path):
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    (tmp_path / "secrets").mkdir(mode=0o700)
    (tmp_path / "secrets" / "redis_password").write_text("p@ss/w:rd\n")
    (tmp_path / "secrets" / "redis_password").chmod(0o600)
    executor = ex.load_executor_settings({"AIRFLOW_EXECUTOR": "celery", "REDIS_PORT": "6390"})
    env = airflow_environment(
        settings, home=tmp_path, metadata_url="postgresql://m", executor=executor
    )
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # The password is quoted into the URL; nothing else carries it.
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:p%40ss%2Fw%3Ard@127.0.0.1:6390/0"
    assert env["AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"] == "90"
    assert env["AIRFLOW__OPERATORS__DEFAULT_QUEUE"] == ex.DEFAULT_QUEUE
    assert executor.worker_queues == ("default", "tfdv") and executor.tfdv_queue == "tfdv"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AIRFLOW_EXECUTOR": "kubernetes"}, "AIRFLOW_EXECUTOR='kubernetes' must be one of"),
        ({"AIRFLOW_CELERY_QUEUES": " , "}, "AIRFLOW_CELERY_QUEUES names no queue"),
        ({"TFDV_QUEUE": "tfdv,default"}, "TFDV_QUEUE"),
        ({"AIRFLOW_CELERY_QUEUES": "default;rm -rf"}, "is not a queue name"),
        ({"AIRFLOW_TASK_HEARTBEAT_TIMEOUT_S": "5"}, "outside [30,"),
    ],
)
def test_bad_executor_settings_are_refused_by_name(env, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        ex.load_executor_settings(env)


def test_our_redis_wants_its_password_and_listens_on_the_loopback_only(tmp_path):
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    port = pg.free_port()
    service = supervisor.Service(
        name="redis-test",
        command=lambda s: redis.command(s.var_dir, port, {}),
        url=lambda s: f"redis://127.0.0.1:{port}",
        port=lambda s: port,
        ready_timeout_s=30,
    )
    try:
        supervisor.start_service(settings, service)
        password = (tmp_path / "secrets" / "redis_password").read_text().strip()
        conf = tmp_path / "redis" / "redis.conf"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600
        proc = supervisor.our_process(settings, "redis-test")
        assert proc is not None and password not in " ".join(proc.cmdline())
        listening = {
            c.laddr.ip for c in psutil.net_connections("tcp") if c.laddr.port == port
            and c.status == psutil.CONN_LISTEN
        }  # fmt: skip
        assert listening == {"127.0.0.1"}

        def cli(*args: str) -> str:
            return subprocess.run(
                ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10
            ).stdout.strip()

        assert "NOAUTH" in cli("ping")
        env_password = {"REDISCLI_AUTH": password}
        answer = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, timeout=10,
            env=os.environ | env_password,
        )  # fmt: skip
        assert answer.stdout.strip() == "PONG"
    finally:
        assert supervisor.stop_service(settings, "redis-test") == "redis-test: stopped"
    assert (tmp_path / "redis" / "appendonlydir").is_dir()  # the queues survive a restart


def test_a_process_without_a_port_is_ready_when_its_log_says_so(tmp_path):
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    script = (
        "import time; time.sleep(1.5); print('worker-x@host ready.', flush=True); time.sleep(300)"
    )
    service = supervisor.Service(
        name="no-port",
        command=lambda s: [sys.executable, "-c", script],
        url=lambda s: "a worker",
        port=None,
        ready_timeout_s=30,
        ready_text="worker-x@host ready.",
    )
    log = tmp_path / "log" / "no-port.log"
    log.parent.mkdir(parents=True)
    log.write_text("worker-x@host ready.\n")  # an earlier run's line does not count
    try:
        line = supervisor.start_service(settings, service)
        assert line.startswith("no-port: a worker")
        assert log.read_text().count("ready.") == 2
        assert supervisor.service_pid(settings, "no-port") is not None
    finally:
        assert supervisor.stop_service(settings, "no-port", grace_s=5) == "no-port: stopped"


def test_a_process_without_a_port_that_never_gets_ready_is_reported(tmp_path):
    settings = load_settings({"VAR_DIR": str(tmp_path)})
    service = supervisor.Service(
        name="silent",
        command=lambda s: [sys.executable, "-c", "import time; time.sleep(300)"],
        url=lambda s: "a worker",
        port=None,
        ready_timeout_s=2,
        ready_text="ready.",
    )
    try:
        with pytest.raises(SystemExit, match="silent not ready .'ready.'."):
            supervisor.start_service(settings, service)
    finally:
        supervisor.stop_service(settings, "silent", grace_s=5)
