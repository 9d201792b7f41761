"""The environment variables every Airflow process of ours gets (make up, CLI, tests).

Standard library only. Airflow is configured entirely through AIRFLOW__SECTION__KEY variables,
so no airflow.cfg has to be edited and tests can point Airflow at a throw-away database.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from mlsys.config import ROOT, Settings, get_settings
from mlsys.credentials import ensure_secret, resolve_secret, secrets_dir
from pipelines.executor import (
    DEFAULT_QUEUE,
    REDIS_SECRET,
    ExecutorSettings,
    load_executor_settings,
    redis_url,
)

DAGS_FOLDER = ROOT / "pipelines" / "dags"
# Holds `airflow_local_settings.py`: the scheduler preloads the task modules (pipelines/preload.py).
LOCAL_SETTINGS_DIR = ROOT / "pipelines" / "airflow_settings"
# Airflow's simple auth manager: one user, `admin`, with the role admin; its password is the
# secret AIRFLOW_ADMIN_PASSWORD (env, _FILE, or VAR_DIR/secrets/airflow_admin_password).
ADMIN_USER = "admin"
ADMIN_SECRET = "AIRFLOW_ADMIN_PASSWORD"
PASSWORDS_FILE_NAME = "airflow_passwords.json"
# "Everyone is admin, no login": development only, and only when asked for explicitly.
DEV_ALL_ADMINS = "AIRFLOW_DEV_ALL_ADMINS"


def passwords_file(settings: Settings) -> Path:
    """Where the simple auth manager reads its users' passwords (0600, under VAR_DIR)."""
    return secrets_dir(settings.var_dir) / PASSWORDS_FILE_NAME


def all_admins(env: dict[str, str] | None = None) -> bool:
    return (os.environ if env is None else env).get(DEV_ALL_ADMINS, "").strip() == "1"


def ensure_admin_password(settings: Settings) -> Path:
    """Write the simple auth manager's passwords file with the admin's password; its path.

    Airflow would otherwise generate the password itself, print it into its log and create
    the file with the default umask (world-readable). We write it first, mode 0600, so Airflow
    only reads it. The password is the secret AIRFLOW_ADMIN_PASSWORD, generated once.
    """
    if resolve_secret(ADMIN_SECRET, settings.var_dir, required=False) is None:
        ensure_secret(settings.var_dir, ADMIN_SECRET)
    password = resolve_secret(ADMIN_SECRET, settings.var_dir)
    path = passwords_file(settings)
    users: dict[str, str] = {}
    if path.is_file():
        try:
            users = json.loads(path.read_text(encoding="utf-8") or "{}")
        except ValueError:
            users = {}
    users[ADMIN_USER] = str(password)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(json.dumps(users) + "\n")
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    return path


def airflow_bin_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).venv_bin("airflow")


def broker_url(settings: Settings, executor: ExecutorSettings) -> str:
    """The Celery broker: CELERY_BROKER_URL, else our Redis (ops/redis.py) with its password."""
    if executor.broker_url_override:
        return executor.broker_url_override
    password = resolve_secret(REDIS_SECRET, settings.var_dir, settings.env or None)
    return redis_url(str(password), executor.redis_port)


def executor_environment(settings: Settings, executor: ExecutorSettings) -> dict[str, str]:
    """Airflow's executor settings. LocalExecutor: only its name. CeleryExecutor: the broker,
    the queues, the worker slots and the timeouts that decide how fast the work of a dead
    worker is taken over (docs/scaling.md, "When a worker dies"); read in Airflow 3.3.2 and
    the celery provider 3.26:

    - The task supervisor heartbeats every [workers] min_heartbeat_interval (5 s); the
      scheduler fails a running task without one for [scheduler]
      task_instance_heartbeat_timeout (default 300 s) and, with retries left, retries it
      (SchedulerJobRunner._purge_task_instances_without_heartbeats). We shorten it to
      AIRFLOW_TASK_HEARTBEAT_TIMEOUT_S (90 s, still 18 missed heartbeats) so that a killed
      worker's task is running elsewhere within the issue's 5 minutes.
    - Celery acknowledges a message after the task (task_acks_late, the provider's default), so
      a message a dead worker had taken is delivered again after the broker's
      visibility_timeout; the provider's run of it then meets the task already retried or
      running and ignores it (execute_workload: TaskAlreadyRunningError -> Ignore). We set the
      provider's own default (86400 s) explicitly: the heartbeat timeout, not redelivery, is
      what recovers a task, and a shorter value would redeliver long tasks that still run.
    """
    env = {"AIRFLOW__CORE__EXECUTOR": executor.airflow_executor}
    if not executor.celery:
        return env
    return env | {
        "AIRFLOW__CELERY__BROKER_URL": broker_url(settings, executor),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(executor.worker_concurrency),
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": DEFAULT_QUEUE,
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(
            executor.task_heartbeat_timeout_s
        ),
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "86400",
    }


def airflow_environment(
    settings: Settings,
    *,
    home: Path,
    metadata_url: str | None = None,
    port: int | None = None,
    executor: ExecutorSettings | None = None,
) -> dict[str, str]:
    """The environment of every Airflow process of ours; `executor` defaults to the
    AIRFLOW_EXECUTOR settings of `settings`' environment (LocalExecutor unless set)."""
    executor = executor or load_executor_settings(settings.env or None)
    bin_dir = airflow_bin_dir(settings)
    api_port = port or settings.airflow_port
    log_port = settings.airflow_log_server_port
    return {
        "AIRFLOW_HOME": str(home),
        # Airflow spawns `airflow ...` sub-commands (task runners) through PATH.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(LOCAL_SETTINGS_DIR), os.environ.get("PYTHONPATH", "")) if p
        ),
        # Task processes are forked from the scheduler, which preloads numpy/pandas: no BLAS
        # or OpenMP thread pools to carry across a fork, and none needed by the tasks.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        # Task slots. A task of ours uses the CPU for well under a second; a slot is held
        # about twice as long again by Airflow's own start and finish (fork, DAG parse,
        # execution-API calls). On two cores, ten slots drained 500 files in 688 s with the
        # cores 82% busy, where six left them 38% idle and took 940 s (docs/ingestion.md,
        # "Backlog"); Airflow runs at nice 10, so the API keeps its latency meanwhile.
        "AIRFLOW__CORE__PARALLELISM": "10",
        # Two api-server processes: the tasks' execution-API calls (about 36 per ingested
        # file) no longer queue behind one process during a backlog (Airflow's default is 1).
        "AIRFLOW__API__WORKERS": "2",
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
        # Real users: `admin`, whose password `make up` writes (ensure_admin_password) and
        # `make status` shows. "Everyone is admin" only with AIRFLOW_DEV_ALL_ADMINS=1.
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file(settings)),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True" if all_admins() else "False",
        # Our DAG tasks reach the application database as the pipelines' role.
        "MLSYS_DB_ROLE": "pipelines",
        # Pick up new and changed DAG files quickly.
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        # Re-parse an unchanged DAG file every 5 minutes instead of every 30 s: a parse forks a
        # process that imports the file and writes its DAG when it changed, about 0.4 CPU-s
        # each, and ours only change when their files do. A DAG file whose mtime is newer than
        # its last parse is parsed again at once (file_parsing_sort_mode=modified_time,
        # airflow/dag_processing/manager.py prepare_file_queue); an edit to a module a DAG
        # file imports (pipelines/assets.py, config.py) reaches the DAG within 5 minutes, and
        # task code is imported afresh by every task anyway.
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "NO_PROXY": "*",  # macOS-style proxy lookups can hang forked workers
        # Every task process imports our modules and its DAG file afresh (pipelines/preload.py
        # keeps them out of the preload so that edits apply at the next task). Without cached
        # bytecode each of the five tasks of a run compiles the same 33 modules from source:
        # about 85 ms of CPU per task, 40-45 ms with the cache (docs/ingestion.md,
        # "Backlog"). The cache is checked against each source's mtime and size, so an edit
        # still applies at the next task; it lives under AIRFLOW_HOME, never in the source tree,
        # and is written even where the environment turned bytecode writing off.
        "PYTHONDONTWRITEBYTECODE": "",
        "PYTHONPYCACHEPREFIX": str(home / "pycache"),
    } | executor_environment(settings, executor)
