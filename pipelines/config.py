"""Settings of the pipelines (Airflow DAGs and the TFDV worker), from environment variables.

Standard library only: imported by the DAG files at parse time, in the `airflow` environment,
and by the validation code in the `tfdv` environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mlsys.config import (
    ConfigError,
    Settings,
    env_float,
    env_int,
    get_settings,
    load_settings,
)
from pipelines.ingestion.alert_state import Policy as AlertPolicy
from pipelines.ingestion.result import Criticality


@dataclass(frozen=True)
class PipelineSettings:
    core: Settings
    tfdv_python: Path
    tfdv_worker_port: int
    tfdv_worker_url: str
    # Seconds validate_data waits for the worker's answer before validating by itself.
    tfdv_worker_timeout_s: float
    # Files larger than this go to bad_data whole, unread.
    ingest_max_file_mb: int
    teams_webhook_url: str | None
    teams_format: str  # 'adaptive' (Workflows webhooks) | 'messagecard' (legacy connectors)
    alert_min_criticality: Criticality
    # One card per problem, a digest in a storm (pipelines/ingestion/alert_state.py).
    alert_policy: AlertPolicy
    report_base_url: str
    drift_window_rows: int
    drift_min_rows: int
    predict_batch_size: int
    stale_claim_minutes: int
    # A raw file is claimed once its size and mtime stayed the same this long (monotonic clock).
    ingest_settle_seconds: float = 5.0
    # Failed attempts (runs that ended leaving the file claimed) before it goes to bad_data.
    ingest_max_attempts: int = 3
    # Days an ingested raw file stays in DATA_DIR/archive/.
    ingest_archive_days: int = 30
    # The raw-data trigger (pipelines/ingestion/trigger.py): seconds between two scans, and
    # after which still-unclaimed files fire again when nothing changed.
    ingest_trigger_poll_seconds: float = 1.0
    ingest_trigger_repeat_seconds: float = 30.0
    # A prediction run that predicted something lasts at least this long (make_predictions
    # waits out the rest), so that the good-data events of a backlog collapse into fewer runs.
    predict_min_run_seconds: float = 10.0

    @property
    def processing_dir(self) -> Path:
        """Claimed raw files wait here while a run validates and splits them."""
        return self.core.data_dir / "processing"

    @property
    def sightings_path(self) -> Path:
        """When each raw-data file was first seen unchanged (claim.Sightings), shared by the
        runs and the raw-data trigger."""
        from pipelines.ingestion.claim import SIGHTINGS_NAME

        return self.processing_dir / SIGHTINGS_NAME

    @property
    def archive_dir(self) -> Path:
        """Every claimed raw file, as received (a hard link), for INGEST_ARCHIVE_DAYS."""
        return self.core.data_dir / "archive"


def load_pipeline_settings(env: dict[str, str] | None = None) -> PipelineSettings:
    core = get_settings() if env is None else load_settings(env)
    env = dict(os.environ if env is None else env)
    worker_port = env_int(env, "TFDV_WORKER_PORT", 8790, low=1, high=65535)
    teams_format = env.get("TEAMS_FORMAT", "adaptive").strip().lower() or "adaptive"
    if teams_format not in ("adaptive", "messagecard"):
        raise ConfigError(f"TEAMS_FORMAT={teams_format!r} must be 'adaptive' or 'messagecard'")
    try:
        level = Criticality.parse(
            env.get("ALERT_MIN_CRITICALITY", "").strip() or "low", setting="ALERT_MIN_CRITICALITY"
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return PipelineSettings(
        core=core,
        tfdv_python=Path(env.get("TFDV_PYTHON", "").strip() or core.venv_python("tfdv")),
        tfdv_worker_port=worker_port,
        tfdv_worker_url=(
            env.get("TFDV_WORKER_URL", "").strip().rstrip("/") or f"http://127.0.0.1:{worker_port}"
        ),
        tfdv_worker_timeout_s=env_float(
            env, "TFDV_WORKER_TIMEOUT_S", 180.0, low=1.0, high=24 * 3600.0
        ),
        ingest_max_file_mb=env_int(env, "INGEST_MAX_FILE_MB", 200, low=1, high=1_000_000),
        teams_webhook_url=env.get("TEAMS_WEBHOOK_URL", "").strip() or None,
        teams_format=teams_format,
        alert_min_criticality=level,
        alert_policy=AlertPolicy(
            cooldown_s=env_float(env, "ALERT_COOLDOWN_S", 3600.0, low=0.0, high=30 * 86400.0),
            window_s=env_float(env, "ALERT_WINDOW_S", 300.0, low=1.0, high=86400.0),
            storm_cards=env_int(env, "ALERT_STORM_CARDS", 2, low=1, high=1000),
            digest_min_files=env_int(env, "ALERT_DIGEST_MIN_FILES", 5, low=1, high=100_000),
            resolve_after_s=env_float(
                env, "ALERT_RESOLVE_AFTER_S", 1800.0, low=1.0, high=30 * 86400.0
            ),
            keep_days=env_int(env, "ALERT_KEEP_DAYS", 30, low=1, high=36_500),
        ),
        report_base_url=(
            env.get("REPORT_BASE_URL", "").strip() or f"{core.api_url}/reports"
        ).rstrip("/"),
        drift_window_rows=env_int(env, "DRIFT_WINDOW_ROWS", 300, low=1, high=1_000_000),
        drift_min_rows=env_int(env, "DRIFT_MIN_ROWS", 200, low=1, high=1_000_000),
        stale_claim_minutes=env_int(env, "STALE_CLAIM_MINUTES", 30, low=1, high=10_000),
        predict_batch_size=env_int(env, "PREDICT_BATCH_SIZE", 500, low=1, high=1_000_000),
        ingest_settle_seconds=env_float(env, "INGEST_SETTLE_SECONDS", 5.0, low=0.0, high=3600.0),
        ingest_max_attempts=env_int(env, "INGEST_MAX_ATTEMPTS", 3, low=1, high=100),
        ingest_archive_days=env_int(env, "INGEST_ARCHIVE_DAYS", 30, low=1, high=36_500),
        ingest_trigger_poll_seconds=env_float(
            env, "INGEST_TRIGGER_POLL_SECONDS", 1.0, low=0.1, high=3600.0
        ),
        ingest_trigger_repeat_seconds=env_float(
            env, "INGEST_TRIGGER_REPEAT_SECONDS", 30.0, low=1.0, high=24 * 3600.0
        ),
        predict_min_run_seconds=env_float(
            env, "PREDICT_MIN_RUN_SECONDS", 10.0, low=0.0, high=600.0
        ),
    )


@lru_cache(maxsize=1)
def get_pipeline_settings() -> PipelineSettings:
    return load_pipeline_settings()
