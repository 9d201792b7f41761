"""One schema proposal, one decision: the proposal's evidence and diff are shown in Airflow's
Required Actions (a human-in-the-loop step); Approve writes the new schema.pbtxt as the next
version, Reject keeps it; either is recorded with who, when and why. Started by
`propose_schema_changes` with conf {"proposal_id": N}. Logic: pipelines/proposals/."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.standard.operators.hitl import HITLOperator
from airflow.sdk import Param, dag, task

from pipelines import runtime
from pipelines.executor import load_executor_settings
from pipelines.proposals.tasks import APPROVE, REJECT, REVIEW_DAG


@dag(
    dag_id=REVIEW_DAG,
    schedule=None,  # one run per proposal, started by propose_schema_changes
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # A review waits for a person (days, maybe): many may be open at once.
    max_active_runs=64,
    params={"proposal_id": Param(0, type="integer", minimum=1)},
    default_args={
        "retries": 1,
        "retry_delay": timedelta(seconds=30),
        "on_failure_callback": runtime.task_failed,
    },
    tags=["schema", "data-quality"],
    doc_md=__doc__,
)
def review_schema_proposal():
    @task
    def describe(params=None) -> dict:
        from pipelines.config import get_pipeline_settings
        from pipelines.proposals import tasks

        return tasks.review_request(get_pipeline_settings().core, int(params["proposal_id"]))

    # Approve / Reject with an optional reason: the response is read back from Airflow's
    # metadata (what the Required Actions page or the REST API wrote) and returned as XCom.
    decide = HITLOperator(
        task_id="decide",
        subject="{{ ti.xcom_pull(task_ids='describe')['subject'] }}",
        body="{{ ti.xcom_pull(task_ids='describe')['body'] }}",
        options=[APPROVE, REJECT],
        params={"reason": Param("", type="string", title="Why (recorded with the decision)")},
        # Not a reason to alert and retry: the question stays open until someone answers.
        retries=0,
    )

    # Approval writes SCHEMA_PATH, the file the validations read: on the tfdv queue's
    # workers, where validation runs (docs/scaling.md: SCHEMA_PATH shared among them).
    @task(queue=load_executor_settings().tfdv_queue)
    def record_decision(response: dict, params=None) -> dict:
        from pipelines.config import get_pipeline_settings
        from pipelines.proposals import tasks

        return tasks.record_decision(
            get_pipeline_settings().core, int(params["proposal_id"]), response
        )

    described = describe()
    described >> decide
    record_decision(decide.output)


review_schema_proposal()
