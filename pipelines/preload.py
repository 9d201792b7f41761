"""Modules imported once in Airflow's scheduler so that every task process starts with them.

Airflow 3's LocalExecutor forks its worker processes from the scheduler, and each worker forks
one process per task (`os.fork`, no new interpreter on Linux). A module the scheduler imported
is therefore already in every task process, copy-on-write, instead of being imported again by
each of the five tasks of every run. Measured on the live system (docs/ingestion.md, "Backlog"):
importing pandas alone took `split_and_save_data` 2.5 s on a quiet machine and up to 12 s under
load, per run.

Called from `airflow_local_settings` (pipelines/airflow_settings/), which Airflow imports in
every one of its processes: only the scheduler preloads.
"""

from __future__ import annotations

import importlib
import logging
import sys
import time

log = logging.getLogger(__name__)

# What the task bodies of both DAGs import (pandas through mlsys.csvfile and the split, the
# database driver, the report's jinja2, the Teams client), not TFDV: `validate_data` runs in
# the tfdv interpreter and asks the warm worker.
TASK_MODULES = (
    "pandas",
    "psycopg2",
    "pipelines.ingestion.tasks",
    "pipelines.prediction.tasks",
    "pipelines.runtime",
    "pipelines.assets",
)


def is_scheduler(argv: list[str] | None = None) -> bool:
    """True in the process started as `airflow scheduler ...`."""
    args = sys.argv if argv is None else argv
    return len(args) > 1 and args[0].endswith("airflow") and args[1] == "scheduler"


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
