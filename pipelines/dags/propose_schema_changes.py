"""Every hour, propose schema changes from the evidence of the recent files (a category in
most of them, a range exceeded by a share of rows, a new column in every one), and start one
`review_schema_proposal` run per new proposal, where a curator approves or rejects it.
Logic: pipelines/proposals/ (docs/schema.md)."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import CronTriggerTimetable, dag, task

from pipelines import runtime
from pipelines.executor import load_executor_settings
from pipelines.proposals.tasks import REVIEW_DAG


@dag(
    dag_id="propose_schema_changes",
    # Hourly: a curator needs no minute's latency, and a run per ingested file would take task
    # slots from the ingestion during a backlog (issue 15). `make schema-propose` runs it now.
    schedule=CronTriggerTimetable("0 * * * *", timezone="UTC"),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Proposals are idempotent (one open proposal per change), but two runs would race.
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "on_failure_callback": runtime.task_failed,
    },
    tags=["schema", "data-quality"],
    doc_md=__doc__,
)
def propose_schema_changes():
    # Drafting asks TFDV (the warm worker or the tfdv interpreter): with the CeleryExecutor
    # only the workers that have the tfdv environment serve this queue.
    @task(queue=load_executor_settings().tfdv_queue)
    def propose() -> list[dict]:
        from pipelines.config import get_pipeline_settings
        from pipelines.proposals import tasks

        return tasks.propose(get_pipeline_settings())

    # One review run per proposal, named after it: a second trigger of the same one is skipped.
    TriggerDagRunOperator.partial(
        task_id="start_reviews", trigger_dag_id=REVIEW_DAG, skip_when_already_exists=True
    ).expand_kwargs(propose())


propose_schema_changes()
