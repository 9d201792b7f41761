"""Airflow-side glue shared by both DAGs: who is running (the claim's holder), the state of
another run, and the failure callback that tells Teams the pipeline is broken.

Imported by the DAG files at parse time: standard library only at module level.

Airflow 3 runs a task's `on_failure_callback` in the task's own process, after its last try
failed (task_runner.finalize), with the exception in `context["exception"]`; a DAG-level
`on_failure_callback` runs in the dag-processor instead, away from the failed task. The
callback is therefore set per task, through each DAG's `default_args`: one alert per task that
failed after its retries (tasks skipped as `upstream_failed` do not run callbacks).
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.ingestion.lifecycle import Holder

log = logging.getLogger(__name__)


def current_holder() -> Holder:
    """The claim holder of the running task: this process and its DAG run."""
    from airflow.sdk import get_current_context

    from pipelines.ingestion.lifecycle import Holder

    context = get_current_context()
    ti = context["ti"]
    return Holder.this_process(dag_id=ti.dag_id, run_id=ti.run_id, try_number=ti.try_number)


def run_state(dag_id: str, run_id: str) -> str | None:
    """A DAG run's state, read through the task SDK (the API server); None if it does not
    exist. Only inside a running task.

    One call when the run exists (the usual case); the API answers 404 for a missing run,
    which the task SDK raises as an error like any other, so only then a count tells "no such
    run" (None) from a failure to ask (raised).
    """
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    try:
        state = RuntimeTaskInstance.get_dagrun_state(dag_id, run_id)
    except Exception:
        if RuntimeTaskInstance.get_dr_count(dag_id=dag_id, run_ids=[run_id]) == 0:
            return None
        raise
    return str(getattr(state, "value", state))  # a DagRunState enum member


def active_runs(dag_id: str, run_ids: list[str]) -> int:
    """How many of a DAG's runs `run_ids` exist and are queued or running: one call to the API
    server for all of them. Only inside a running task."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    from pipelines.ingestion.lifecycle import ACTIVE_RUN_STATES

    return RuntimeTaskInstance.get_dr_count(
        dag_id=dag_id, run_ids=run_ids, states=list(ACTIVE_RUN_STATES)
    )


def _error_text(error: BaseException | str | None) -> str:
    if error is None:
        return "no exception recorded"
    if isinstance(error, BaseException):
        return "".join(traceback.format_exception_only(type(error), error)).strip()
    return str(error)


def task_failed(context: dict[str, Any]) -> None:
    """on_failure_callback of every task: an occurrence of the problem "failure of <dag>.<task>"
    in the alert state, which posts a card when it appears (or a warning without a webhook).

    For `ingest_data`, the error is also recorded on the file's claim, so that the file's
    reasons in bad_data name it if it ends quarantined. Never raises: a callback's exception
    would only be logged by Airflow, and the task is failed already.
    """
    from pipelines.config import get_pipeline_settings
    from pipelines.ingestion import alerts

    ti = context["ti"]
    error = _error_text(context.get("exception"))
    ps = get_pipeline_settings()
    file_fact: list[tuple[str, str]] = []
    if ti.dag_id == "ingest_data" and ti.task_id != "read_data":
        try:
            claimed = ti.xcom_pull(task_ids="read_data")
            if claimed:
                from mlsys.db import psycopg2_dsn
                from pipelines.ingestion.lifecycle import record_error

                record_error(psycopg2_dsn(ps.core.database_url), claimed["file"], ti.task_id,
                             ti.try_number, error)  # fmt: skip
                file_fact = [("File", claimed.get("original_name") or claimed["file"])]
        except Exception:  # noqa: BLE001 (the alert below matters more)
            log.exception("could not record the error on the file's claim")
    title = f"failure of {ti.dag_id}.{ti.task_id}"
    facts = [("Run", ti.run_id), ("Tries", str(ti.try_number)), *file_fact]
    try:
        link = ti.log_url
    except Exception:  # noqa: BLE001 (the URL is a convenience)
        link = None
    try:
        from pipelines.ingestion import alert_state, tasks

        # One problem per task: a failure storm is one card, then a digest (alert_state).
        occurrence = alerts.pipeline_occurrence(
            f"{ti.dag_id}.{ti.task_id}", title, f"{ti.run_id} try {ti.try_number}",
            f"Failed after its retries: {error[:500]} ("
            + "; ".join(f"{k}: {v}" for k, v in facts) + ")",
            link=link,
        )  # fmt: skip
        tasks.alert(ps, alert_state.Observation((occurrence,)))
    except Exception:  # noqa: BLE001
        log.exception("the pipeline-failure alert could not be recorded or delivered")
