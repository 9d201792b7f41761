"""Ingest one raw file per run: claim it, validate it with TFDV, then in parallel save its
statistics, alert on it and split it into good and bad data. Runs every minute and also
seconds after a file lands in raw-data (the raw-data asset's watcher). Logic:
pipelines/ingestion/."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pipelines import assets, runtime
from pipelines.config import get_pipeline_settings
from pipelines.executor import load_executor_settings

SETTINGS = get_pipeline_settings()
GOOD_DATA = assets.good_data(SETTINGS)


@dag(
    dag_id="ingest_data",
    # Every minute (the contract), and whenever the raw-data trigger sees a settled file that
    # no run has claimed: events arriving while runs are active become one queued run.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("* * * * *", timezone="UTC"),
        assets=assets.raw_data(SETTINGS),
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Claims are atomic, so runs may overlap safely. Most of a run's wall time is Airflow
    # scheduling its next task (no CPU used), so a backlog drains faster with a few runs in
    # flight; the CPU stays bounded by the task slots (AIRFLOW__CORE__PARALLELISM=10, shared with
    # predict_new_data) and Airflow runs reniced (pipelines/launch.py), behind the API.
    max_active_runs=8,
    # A task failing after its retries tells Teams (pipelines/runtime.py); its file stays
    # claimed until the run has ended, then goes back to raw-data or, at the last of
    # INGEST_MAX_ATTEMPTS, to bad_data (pipelines/ingestion/lifecycle.py).
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=15),
        "on_failure_callback": runtime.task_failed,
    },
    tags=["ingestion", "data-quality"],
    doc_md=__doc__,
)
def ingest_data():
    # Dict results travel as one XCom (not one per key). The validation result is small (counts,
    # a sample, a pointer to the reasons file), but not worth copying into the log every minute.
    @task(multiple_outputs=False)
    def read_data() -> dict:
        from pipelines.ingestion import tasks

        claimed = tasks.read_data(
            get_pipeline_settings(), holder=runtime.current_holder(), run_state=runtime.run_state,
            active_runs=runtime.active_runs,
        )  # fmt: skip
        if claimed is None:
            raise AirflowSkipException("raw-data has no file to ingest")
        return claimed | tasks.validation_request(get_pipeline_settings())

    # The warm TFDV worker validates (an HTTP call); without it, the tfdv interpreter. With
    # the CeleryExecutor only workers with the tfdv environment serve this queue (the
    # LocalExecutor ignores queues). A worker dying here: the task is retried elsewhere.
    @task(
        multiple_outputs=False,
        show_return_value_in_logs=False,
        queue=load_executor_settings().tfdv_queue,
    )
    def validate_data(claimed: dict) -> dict:
        from pipelines.ingestion import tasks

        return tasks.validate_data(claimed, get_pipeline_settings().tfdv_python)

    @task
    def save_statistics(result: dict) -> int:
        from pipelines.ingestion import tasks

        return tasks.save_statistics(get_pipeline_settings(), result)

    @task(multiple_outputs=False)
    def send_alerts(result: dict) -> dict:
        from pipelines.ingestion import tasks

        return tasks.send_alerts(get_pipeline_settings(), result)

    # Its success is a good-data asset event, which starts a prediction run.
    @task(multiple_outputs=False, outlets=[GOOD_DATA])
    def split_and_save_data(claimed: dict, result: dict, *, outlet_events=None) -> dict:
        from pipelines.ingestion import tasks

        outcome = tasks.split_and_save_data(get_pipeline_settings(), claimed, result)
        outlet_events[GOOD_DATA].extra = tasks.good_data_event(outcome)
        return outcome

    claimed = read_data()
    result = validate_data(claimed)
    save_statistics(result)
    send_alerts(result)
    split_and_save_data(claimed, result)


ingest_data()
