"""The bodies of the `ingest_data` tasks that run in the `airflow` environment."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from mlsys import report_links
from mlsys.credentials import resolve_secret
from mlsys.db import psycopg2_dsn
from pipelines.config import PipelineSettings
from pipelines.ingestion import alerts, claim, report, split, store
from pipelines.ingestion.result import ValidationResult

log = logging.getLogger(__name__)


def read_data(ps: PipelineSettings, rng: random.Random | None = None) -> dict[str, Any] | None:
    """Claim one random raw file (after putting back abandoned claims); None when there is none."""
    for path in claim.release_stale_claims(
        ps.processing_dir, ps.core.raw_data_dir, older_than_s=ps.stale_claim_minutes * 60
    ):
        log.warning("released an abandoned claim back to raw-data: %s", path.name)
    path = claim.claim_random_file(ps.core.raw_data_dir, ps.processing_dir, rng)
    if path is None:
        return None
    return {"path": str(path), "file": path.name}


def validation_request(ps: PipelineSettings) -> dict[str, Any]:
    """What `validate_data` needs besides the claimed path: the validation's configuration and
    how to reach the warm worker (JSON-ready: it travels in the `read_data` XCom)."""
    return {
        "config": validation_config(ps),
        "worker_url": ps.tfdv_worker_url,
        "worker_timeout_s": ps.tfdv_worker_timeout_s,
    }


def validation_config(ps: PipelineSettings) -> dict[str, Any]:
    from pipelines.ingestion.validate import ValidationConfig

    return ValidationConfig(
        schema_path=ps.core.schema_path,
        training_stats_path=ps.core.training_stats_path,
        target=ps.core.target_column,
        good_data_dir=ps.core.good_data_dir,
        drift_window_rows=ps.drift_window_rows,
        drift_min_rows=ps.drift_min_rows,
        max_file_mb=ps.ingest_max_file_mb,
    ).to_dict()


def report_url(ps: PipelineSettings, file_name: str) -> str:
    """The alert's link to the report: signed and expiring (mlsys/report_links.py), so that a
    person without an API token can open it; unsigned (a token is then needed) when no
    REPORT_LINK_KEY is configured."""
    name = report.report_name(file_name)
    key = resolve_secret(report_links.KEY_NAME, ps.core.var_dir, required=False)
    if key is None:
        log.warning(
            "%s is not set: the alert links to the report without a signature",
            report_links.KEY_NAME,
        )
        return f"{ps.report_base_url}/{name}"
    return report_links.signed_url(ps.report_base_url, name, key.encode())


def save_statistics(ps: PipelineSettings, result: dict[str, Any]) -> int:
    checked = ValidationResult.from_dict(result)
    return store.save_statistics(
        psycopg2_dsn(ps.core.database_url), checked, report_path=report.report_name(checked.file)
    )


def send_alerts(ps: PipelineSettings, result: dict[str, Any]) -> dict[str, Any]:
    checked = ValidationResult.from_dict(result)
    path = report.write_report(checked, ps.core.reports_dir)
    outcome = alerts.send_alert(
        checked,
        report_url=report_url(ps, checked.file),
        webhook_url=ps.teams_webhook_url,
        fmt=ps.teams_format,
        minimum=ps.alert_min_criticality,
    )
    return outcome | {"report": str(path)}


def split_and_save_data(
    ps: PipelineSettings, claimed: dict[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    return split.split_file(
        Path(claimed["path"]),
        ValidationResult.from_dict(result),
        ps.core.good_data_dir,
        ps.core.bad_data_dir,
    ).to_dict()
