"""How `make up` starts the pipelines: the warm TFDV worker, then Airflow's components; with
AIRFLOW_EXECUTOR=celery also our Redis (the broker) before them and AIRFLOW_CELERY_WORKERS
Celery workers after them (pipelines/executor.py, docs/scaling.md)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from mlsys.config import Settings, get_settings
from mlsys.credentials import secret_path
from ops import redis
from ops.supervisor import Service, run_dir
from pipelines.airflow_env import (
    ADMIN_SECRET,
    ADMIN_USER,
    DEV_ALL_ADMINS,
    airflow_bin_dir,
    airflow_environment,
    all_admins,
    ensure_admin_password,
)
from pipelines.config import get_pipeline_settings
from pipelines.executor import load_executor_settings


def _airflow_home(settings: Settings):
    return settings.var_dir / "airflow"


# Airflow yields the cores to the API and the UI: under a backlog of files every task slot is
# busy, and a person's single prediction must still answer at once. A nice value only matters
# when the CPU is contended; an idle machine runs the pipelines at full speed. Set inside the
# script (renice of the shell, inherited by every component and task) so that the recorded
# command line stays the one that runs (`make down` checks it).
NICE = 10


def _airflow_command(settings: Settings) -> list[str]:
    """Airflow's components, as `airflow standalone` runs them, but without log servers.

    The scheduler's and the triggerer's log servers bind every interface (the host is
    hard-coded in Airflow 3.3.2, airflow/utils/serve_logs/core.py) and `standalone` cannot skip
    them. On one machine they are not needed: the api-server reads task logs from the shared
    log folder. When any component exits, the others are stopped (`wait -n; kill 0`), so that
    `make status` never shows a half-running Airflow as running.
    """
    airflow = f'"{airflow_bin_dir() / "airflow"}"'
    script = "\n".join([
        "set -e",
        f"renice -n {NICE} -p $$ >/dev/null",
        f"{airflow} db migrate >/dev/null",  # a no-op when up to date (about 6 s the first time)
        "set +e",
        f"{airflow} scheduler --skip-serve-logs &",
        f"{airflow} triggerer --skip-serve-logs &",
        f"{airflow} dag-processor &",
        f"{airflow} api-server &",
        "wait -n",
        "kill 0",
    ])  # fmt: skip
    return ["bash", "-c", script]


def _worker_command(index: int) -> Callable[[Settings], list[str]]:
    """One `airflow celery worker`, reniced as Airflow is, with a name of its own (two on one
    machine must differ) and without its log server: it binds every interface (as the
    scheduler's does) and the api-server reads task logs from the shared log folder here."""

    def command(settings: Settings) -> list[str]:
        executor = load_executor_settings(settings.env or None)
        airflow = f'"{airflow_bin_dir() / "airflow"}"'
        return ["bash", "-c", (
            f"renice -n {NICE} -p $$ >/dev/null && exec {airflow} celery worker "
            f"--celery-hostname airflow-worker-{index}@%h "
            f"--queues {','.join(executor.worker_queues)} "
            f"--concurrency {executor.worker_concurrency} --skip-serve-logs"
        )]  # fmt: skip

    return command


def _celery(settings: Settings) -> bool:
    return load_executor_settings(settings.env or None).celery


def _worker_count() -> int:
    """The workers to declare: AIRFLOW_CELERY_WORKERS, or more when more were started (their
    pid files), so that `make down` stops them after the setting was lowered."""
    started = len(list(run_dir(get_settings()).glob("airflow-worker-*.pid")))
    return max(load_executor_settings().workers, started)


def _airflow_env(settings: Settings) -> dict[str, str]:
    ps = get_pipeline_settings()
    ensure_admin_password(settings)
    return airflow_environment(settings, home=_airflow_home(settings)) | {
        "TFDV_WORKER_URL": ps.tfdv_worker_url,
    }


def _airflow_login(settings: Settings) -> str:
    if all_admins():
        return f"none needed ({DEV_ALL_ADMINS}=1: everyone is admin; development only)"
    if os.environ.get(ADMIN_SECRET, "").strip():
        return f"user {ADMIN_USER}, password from the environment ({ADMIN_SECRET})"
    path = secret_path(settings.var_dir, ADMIN_SECRET)
    return f"user {ADMIN_USER}, password: `cat {path}` (mode 0600)"


def _redis_url(settings: Settings) -> str:
    return f"redis://127.0.0.1:{load_executor_settings(settings.env or None).redis_port}"


SERVICES = [
    Service(
        name="redis",
        command=lambda s: redis.command(
            s.var_dir, load_executor_settings(s.env or None).redis_port, s.env or None
        ),
        url=_redis_url,
        port=lambda s: load_executor_settings(s.env or None).redis_port,
        # Only the broker of our own: CELERY_BROKER_URL names one that is not ours to start.
        enabled=lambda s: load_executor_settings(s.env or None).embedded_redis,
    ),
    Service(
        name="tfdv-worker",
        command=lambda s: [
            str(get_pipeline_settings().tfdv_python),
            "-m",
            "pipelines.ingestion.tfdv_worker",
            "--port",
            str(get_pipeline_settings().tfdv_worker_port),
        ],  # fmt: skip
        url=lambda s: f"{get_pipeline_settings().tfdv_worker_url}/health",
        port=lambda s: get_pipeline_settings().tfdv_worker_port,
        ready_timeout_s=120,
    ),
    Service(
        name="airflow",
        command=_airflow_command,
        url=lambda s: f"http://127.0.0.1:{s.airflow_port}",
        port=lambda s: s.airflow_port,
        env=_airflow_env,
        ready_timeout_s=240,
        db_role="pipelines",
        login=_airflow_login,
    ),
    *[
        Service(
            name=f"airflow-worker-{i}",
            command=_worker_command(i),
            url=lambda s: (
                "Celery worker, queues "
                + ",".join(load_executor_settings(s.env or None).worker_queues)
            ),
            port=None,
            env=_airflow_env,
            ready_timeout_s=180,
            db_role="pipelines",
            enabled=lambda s, i=i: (
                _celery(s) and i <= load_executor_settings(s.env or None).workers
            ),
            # Celery's own line once it consumes its queues (%h is the host name).
            ready_text=f"airflow-worker-{i}@{socket.gethostname()} ready.",
        )
        for i in range(1, _worker_count() + 1)
    ],
]
