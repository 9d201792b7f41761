"""How `make up` starts the pipelines: the warm TFDV worker, then Airflow standalone."""

from __future__ import annotations

from mlsys.config import Settings
from mlsys.ops import Service
from pipelines.airflow_env import airflow_bin_dir, airflow_environment
from pipelines.config import get_pipeline_settings


def _airflow_home(settings: Settings):
    return settings.var_dir / "airflow"


def _airflow_command(settings: Settings) -> list[str]:
    airflow = airflow_bin_dir() / "airflow"
    # Migrating is a no-op when up to date (about 6 s the first time).
    return ["bash", "-c", f'"{airflow}" db migrate >/dev/null && exec "{airflow}" standalone']


def _airflow_env(settings: Settings) -> dict[str, str]:
    ps = get_pipeline_settings()
    return airflow_environment(settings, home=_airflow_home(settings)) | {
        "TFDV_WORKER_URL": ps.tfdv_worker_url,
    }


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
    ),
]
