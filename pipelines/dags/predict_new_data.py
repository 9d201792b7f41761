"""Every two minutes, and when an ingestion run wrote good data, predict the good_data files that are not yet in the ledger through the
model API (source `scheduled`), each row exactly once. Logic: pipelines/prediction/."""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, dag, task
from airflow.sdk.exceptions import AirflowSkipException

from pipelines import assets, runtime
from pipelines.config import get_pipeline_settings


@dag(
    dag_id="predict_new_data",
    # Every two minutes (the contract), and on each good-data event from `split_and_save_data`:
    # events arriving during a run collapse into one queued run, which predicts every file
    # not yet in the ledger.
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("*/2 * * * *", timezone="UTC"),
        assets=assets.good_data(get_pipeline_settings()),
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # Two overlapping runs would list and send the same new files: harmless (the API stores a
    # file's row once) but twice the work, and their ledger writes would race.
    max_active_runs=1,
    # A retry resends the file from its first row; the API answers stored rows as already
    # stored. A short delay: the usual cause is the API restarting, and the next scheduled
    # run picks up whatever is left anyway.
    # A task failing after its retries tells Teams (pipelines/runtime.py).
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=10),
        "on_failure_callback": runtime.task_failed,
    },
    tags=["prediction"],
    doc_md=__doc__,
)
def predict_new_data():
    @task
    def check_for_new_data() -> list[str]:
        from pipelines.prediction import tasks

        names = tasks.check_for_new_data(get_pipeline_settings())
        if not names:
            raise AirflowSkipException("good_data has no file that is not yet in the ledger")
        return names

    # Lasts at least PREDICT_MIN_RUN_SECONDS, so that a backlog's events collapse into fewer runs.
    @task
    def make_predictions(names: list[str]) -> dict:
        from pipelines.prediction import tasks

        ps = get_pipeline_settings()
        with tasks.paced(ps.predict_min_run_seconds):
            return tasks.make_predictions(ps, names)

    make_predictions(check_for_new_data())


predict_new_data()
