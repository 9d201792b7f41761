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
from pipelines.ingestion import alerts, claim, lifecycle, report, split, store
from pipelines.ingestion.result import ValidationResult

log = logging.getLogger(__name__)


def read_data(
    ps: PipelineSettings,
    rng: random.Random | None = None,
    *,
    holder: lifecycle.Holder | None = None,
    run_state: lifecycle.RunState | None = None,
) -> dict[str, Any] | None:
    """Claim one random complete raw file, after pruning the archive, releasing (or
    quarantining) the claims of dead runs and refusing what is not a CSV file.

    holder: who claims (default: this process, no Airflow run); run_state: reads another
    run's state (the DAG passes Airflow's). Returns {"path", "file", "original_name"} of the
    claimed file, None when no file is ready.
    """
    import psycopg2

    folders = lifecycle.Folders(
        raw=ps.core.raw_data_dir, processing=ps.processing_dir, good=ps.core.good_data_dir,
        bad=ps.core.bad_data_dir, archive=ps.archive_dir,
    )  # fmt: skip
    policy = lifecycle.Policy(
        max_attempts=ps.ingest_max_attempts,
        archive_days=ps.ingest_archive_days,
        legacy_stale_s=ps.stale_claim_minutes * 60,
    )
    conn = psycopg2.connect(psycopg2_dsn(ps.core.database_url))
    conn.autocommit = True  # each step stands alone; the claims table is the journal
    try:
        outcome = lifecycle.prepare(
            conn, folders, policy, run_state=run_state, notify=lambda n: notify(ps, n)
        )
        if outcome.pruned:
            log.info("pruned %d archived raw files older than %d days", outcome.pruned,
                     ps.ingest_archive_days)  # fmt: skip
        # Evidence that a file is settled is shared (the trigger, earlier runs): a file seen
        # unchanged for INGEST_SETTLE_SECONDS before this run started is claimed at once.
        found = claim.settled_scan(
            folders.raw, ps.ingest_settle_seconds, sightings_path=ps.sightings_path
        )
        for name in lifecycle.refuse_all(conn, found.refused, folders, lambda n: notify(ps, n)):
            log.warning("refused %r: moved to bad_data with its reasons", name)
        claimed = lifecycle.claim_next(
            conn, folders, list(found.candidates), holder or lifecycle.Holder.this_process(), rng
        )
    finally:
        conn.close()
    if claimed is None:
        return None
    return {"path": str(claimed.path), "file": claimed.path.name,
            "original_name": claimed.original_name}  # fmt: skip


def validate_data(claimed: dict[str, Any], tfdv_python: Path) -> dict[str, Any]:
    """The body of `validate_data`: `ValidationResult.to_dict()` of the claimed file.

    The warm TFDV worker validates it (one HTTP round trip from this process). When the worker
    cannot be reached, answers 503 "busy", or says nothing for TFDV_WORKER_TIMEOUT_S, the tfdv
    interpreter validates it here, importing TFDV (15-22 s): the worker is an optimisation,
    never a dependency. A validation error (the worker's 500, the interpreter's exit status)
    raises, and Airflow retries the task.

    Measured on the live scheduler (docs/ingestion.md, "Events"): the former
    `@task.external_python` started the tfdv interpreter twice per run (a pendulum probe, then
    the call), about 1.5 s under load, to send the same HTTP request.
    """
    from pipelines.ingestion.tfdv_worker import WorkerUnavailable, validate_via_worker

    path, config = claimed["path"], claimed["config"]
    if claimed.get("worker_url"):
        try:
            return validate_via_worker(
                claimed["worker_url"], path, config, claimed["worker_timeout_s"]
            )
        except WorkerUnavailable as exc:
            log.warning("TFDV worker at %s unavailable (%s); validating in %s",
                        claimed["worker_url"], exc, tfdv_python)  # fmt: skip
    return validate_in_tfdv_env(tfdv_python, path, config)


# Run by the tfdv interpreter: validate without a worker, the result as JSON into argv[3].
_VALIDATE_SCRIPT = """import json, sys
from pipelines.ingestion.tfdv_worker import validate_claimed
result = validate_claimed(sys.argv[1], json.loads(sys.argv[2]), None, 0)
with open(sys.argv[3], "w", encoding="utf-8") as out:
    json.dump(result, out)
"""


def validate_in_tfdv_env(tfdv_python: Path, path: str, config: dict[str, Any]) -> dict[str, Any]:
    """Validate in a new tfdv interpreter (TFDV's pins conflict with Airflow's); raises
    RuntimeError with the end of its stderr when it fails."""
    import json
    import subprocess
    import tempfile

    from mlsys.config import ROOT

    with tempfile.TemporaryDirectory(prefix="validate-") as tmp:
        out = Path(tmp) / "result.json"
        proc = subprocess.run(
            [str(tfdv_python), "-c", _VALIDATE_SCRIPT, path, json.dumps(config), str(out)],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.stderr:
            log.info("tfdv interpreter said:\n%s", proc.stderr[-5000:])
        if proc.returncode != 0:
            raise RuntimeError(
                f"validation in {tfdv_python} failed (exit {proc.returncode}): "
                f"{proc.stderr[-3000:]}"
            )
        return json.loads(out.read_text(encoding="utf-8"))


def notify(ps: PipelineSettings, notice: lifecycle.Notice) -> None:
    """A lifecycle event to Teams; a delivery failure is logged, never fails the claim."""
    try:
        alerts.send_pipeline_failure(
            notice.title, notice.facts, notice.text,
            webhook_url=ps.teams_webhook_url, fmt=ps.teams_format,
        )  # fmt: skip
    except alerts.AlertDeliveryError as exc:
        log.warning("alert not delivered (%s): %s: %s", exc, notice.title, notice.text)


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
    original = lifecycle.original_name(psycopg2_dsn(ps.core.database_url), checked.file)
    path = report.write_report(checked, ps.core.reports_dir, original_name=original)
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


def good_data_event(outcome: dict[str, Any]) -> dict[str, Any]:
    """The extra of the good-data asset event a split emits (what a prediction run was
    triggered by): the file written and its rows. JSON-ready, a few fields."""
    good = outcome.get("good")
    return {"file": Path(good).name if good else None, "good_rows": outcome.get("good_rows", 0)}
