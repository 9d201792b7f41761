"""The environment variables every Airflow process of ours gets (standalone, CLI, tests).

Standard library only. Airflow is configured entirely through AIRFLOW__SECTION__KEY variables,
so no airflow.cfg has to be edited and tests can point Airflow at a throw-away database.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlsys.config import ROOT, Settings

DAGS_FOLDER = ROOT / "pipelines" / "dags"


def airflow_bin_dir(venv_dir: Path | None = None) -> Path:
    return (venv_dir or Path(os.environ.get("VENV_DIR", "") or ROOT / ".venvs")) / "airflow" / "bin"


def airflow_environment(
    settings: Settings, *, home: Path, metadata_url: str | None = None, port: int | None = None
) -> dict[str, str]:
    bin_dir = airflow_bin_dir()
    api_port = port or settings.airflow_port
    log_port = settings.airflow_log_server_port
    return {
        "AIRFLOW_HOME": str(home),
        # `airflow standalone` spawns `airflow ...` sub-commands through PATH.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # Two cores: a few task processes at a time is what this machine can run.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url or settings.airflow_database_url,
        "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS": "False",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__HOST": "127.0.0.1",
        # Task processes report to the api-server: follow its port.
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        # Log servers of workers and triggerers (two ports), configurable so that two
        # Airflows (yours and the end-to-end test's) can run side by side.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(log_port + 1),
        # Local use: everybody is admin, no generated password to look up.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
        # Pick up new and changed DAG files quickly.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "NO_PROXY": "*",  # macOS-style proxy lookups can hang forked workers
    }
