"""How `make up` starts the pipelines: the warm TFDV worker, then Airflow standalone."""

from __future__ import annotations

import os

from mlsys.config import Settings
from mlsys.credentials import secret_path
from ops.supervisor import Service
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


SERVICES = [
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
]
