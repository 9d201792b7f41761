"""The two Airflow assets of the pipelines: raw-data (watched, so that a landing file starts an
ingestion run) and good-data (updated by `split_and_save_data`, so that new good rows start a
prediction run). Imported by the DAG files at parse time: no heavy import here.

Both DAGs keep their cron schedules (the product's contract: ingestion every minute,
prediction every two minutes) and run *also* on these events (`AssetOrTimeSchedule`).
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetWatcher

from pipelines.config import PipelineSettings
from pipelines.ingestion.trigger import RawDataTrigger

# Names and URIs do not carry DATA_DIR: Airflow identifies an asset by both and deactivates a
# second asset of the same name with another URI, so a moved DATA_DIR (or a test's) would make
# the split's outlet "inactive" and fail the task. The folder is in `extra`.
RAW_DATA = "raw-data"
GOOD_DATA = "good-data"


def raw_data(ps: PipelineSettings) -> Asset:
    """DATA_DIR/raw-data, watched by `RawDataTrigger` in the triggerer."""
    trigger = RawDataTrigger(
        raw_dir=str(ps.core.raw_data_dir),
        sightings_path=str(ps.sightings_path),
        settle_s=ps.ingest_settle_seconds,
        poll_s=ps.ingest_trigger_poll_seconds,
        repeat_s=ps.ingest_trigger_repeat_seconds,
    )
    return Asset(
        name=RAW_DATA,
        uri=RAW_DATA,
        extra={"path": str(ps.core.raw_data_dir)},
        watchers=[AssetWatcher(name="raw-data-files", trigger=trigger)],
    )


def good_data(ps: PipelineSettings) -> Asset:
    """DATA_DIR/good_data: one asset event per split that wrote good rows."""
    return Asset(name=GOOD_DATA, uri=GOOD_DATA, extra={"path": str(ps.core.good_data_dir)})
