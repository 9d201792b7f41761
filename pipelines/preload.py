"""Modules imported once in Airflow's scheduler so that every task process starts with them.

Airflow 3's LocalExecutor forks its worker processes from the scheduler, and each worker forks
one process per task (`os.fork`, no new interpreter on Linux). A module the scheduler imported
is therefore already in every task process, copy-on-write, instead of being imported again by
each of the five tasks of every run. Measured on the live system (docs/ingestion.md, "Backlog"):
importing pandas alone took `split_and_save_data` 2.5 s on a quiet machine and up to 12 s under
load, per run.

Called from `airflow_local_settings` (pipelines/airflow_settings/), which Airflow imports in
every one of its processes: only the scheduler and Celery workers preload (`forks_tasks`).
"""

from __future__ import annotations

import importlib
import logging
import sys
import time

log = logging.getLogger(__name__)

# Third-party libraries only, never our own modules: a module preloaded here is frozen at the
# scheduler's start, so our code (pipelines/, mlsys/) is still imported fresh by each task and
# a change to it takes effect at the next task, as without a preload (a new scheduler is
# needed only for new library versions).
TASK_MODULES = (
    # What a task process needs to parse its DAG file (about 0.3 s per task when not loaded).
    "airflow.sdk.execution_time.task_runner",
    "airflow.dag_processing.dagbag",
    "airflow.sdk.definitions.decorators",
    "airflow.providers.standard.decorators.python",
    # What the task bodies import: the CSV reader and split (pandas, numpy), the database
    # driver, the API client, the report's templates.
    "numpy",
    "pandas",
    "psycopg2",
    "psycopg2.extras",
    "requests",
    "jinja2",
)


def forks_tasks(argv: list[str] | None = None) -> bool:
    """True in a process whose forks run the tasks: `airflow scheduler ...` (LocalExecutor) or
    `airflow celery worker ...` (CeleryExecutor: its pool processes are forked from it, and each
    forks the task process, pipelines/executor.py)."""
    args = sys.argv if argv is None else argv
    if len(args) < 2 or not args[0].endswith("airflow"):
        return False
    return args[1] == "scheduler" or args[1:3] == ["celery", "worker"]


def preload(modules: tuple[str, ...] = TASK_MODULES) -> dict[str, float]:
    """Import `modules`; seconds per module. A module that fails to import is logged and
    skipped: the task that needs it imports it (and fails) by itself, as without a preload."""
    took: dict[str, float] = {}
    for name in modules:
        started = time.perf_counter()
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 (a preload must never stop the scheduler)
            log.exception("preloading %s failed; tasks will import it themselves", name)
            continue
        took[name] = round(time.perf_counter() - started, 3)
    return took
