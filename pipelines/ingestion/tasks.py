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
from pipelines.ingestion import alert_state, alerts, claim, lifecycle, report, split, store
from pipelines.ingestion.result import ValidationResult

log = logging.getLogger(__name__)


def read_data(
    ps: PipelineSettings,
    rng: random.Random | None = None,
    *,
    holder: lifecycle.Holder | None = None,
    run_state: lifecycle.RunState | None = None,
    active_runs: lifecycle.ActiveRuns | None = None,
) -> dict[str, Any] | None:
    """Claim one random complete raw file, after pruning the archive, releasing (or
    quarantining) the claims of dead runs and refusing what is not a CSV file.

    holder: who claims (default: this process, no Airflow run); run_state: reads another
    run's state, active_runs: counts the active ones among several (the DAG passes Airflow's).
    Returns {"path", "file", "original_name"} of the
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
    notices: list[lifecycle.Notice] = []  # told together, after the claim
    conn = psycopg2.connect(psycopg2_dsn(ps.core.database_url))
    conn.autocommit = True  # each step stands alone; the claims table is the journal
    try:
        outcome = lifecycle.prepare(
            conn, folders, policy, run_state=run_state, notify=notices.append,
            active_runs=active_runs,
        )  # fmt: skip
        if outcome.pruned:
            log.info("pruned %d archived raw files older than %d days", outcome.pruned,
                     ps.ingest_archive_days)  # fmt: skip
        # Evidence that a file is settled is shared (the trigger, earlier runs): a file seen
        # unchanged for INGEST_SETTLE_SECONDS before this run started is claimed at once.
        found = claim.settled_scan(
            folders.raw, ps.ingest_settle_seconds, sightings_path=ps.sightings_path
        )
        for name in lifecycle.refuse_all(conn, found.refused, folders, notices.append):
            log.warning("refused %r: moved to bad_data with its reasons", name)
        claimed = lifecycle.claim_next(
            conn, folders, list(found.candidates), holder or lifecycle.Holder.this_process(), rng
        )
    finally:
        conn.close()
        # Quarantined and refused files, plus what is due anyway (a digest whose window has
        # passed, a problem gone quiet): every run, file or not, even one that failed here.
        tell_notices(ps, notices)
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


def notice_occurrence(notice: lifecycle.Notice) -> alert_state.Occurrence:
    """A lifecycle event (a file quarantined or refused) as an occurrence of its problem."""
    facts = "; ".join(f"{k}: {v}" for k, v in notice.facts)
    kind = notice.problem.partition(":")[2]
    title = f"files refused ({kind})" if kind else f"files {notice.problem}"
    return alerts.pipeline_occurrence(
        notice.problem, title, notice.source, f"{notice.title}. {notice.text} ({facts})"
    )


def tell_notices(ps: PipelineSettings, notices: list[lifecycle.Notice]) -> None:
    """Record the lifecycle events of one read_data as one observation (one card for several
    refused files, not one each) and send what is due. Never raises: a failure is logged and
    never fails the claim; recorded occurrences are told by a later card."""
    observation = alert_state.Observation(tuple(notice_occurrence(n) for n in notices))
    try:
        alert(ps, observation)
    except Exception:  # noqa: BLE001 (alerts must not stop ingestion)
        log.exception("alert state not updated; notices: %s", [n.title for n in notices])


def alert_links(ps: PipelineSettings) -> alerts.Links:
    """The cards' links: signed and expiring (mlsys/report_links.py), so that a person without
    an API token can open them; unsigned (a token is then needed) without REPORT_LINK_KEY."""
    key = resolve_secret(report_links.KEY_NAME, ps.core.var_dir, required=False)
    return alerts.Links(ps.report_base_url, key.encode() if key is not None else None)


def alert(
    ps: PipelineSettings, observation: alert_state.Observation, *, raise_undelivered: bool = False
) -> list[alert_state.Card]:
    """Record an observation and send the cards it makes due (alert_state.process).

    A delivery failure is logged, or raised (AlertDeliveryError) with `raise_undelivered`; the
    occurrences stay recorded either way and wait for the next card.
    """
    import psycopg2

    conn = psycopg2.connect(psycopg2_dsn(ps.core.database_url))
    deliver = alerts.teams_delivery(ps.teams_webhook_url, ps.teams_format, alert_links(ps))
    try:
        return alert_state.process(conn, observation, ps.alert_policy, deliver)
    except alerts.AlertDeliveryError as exc:
        if raise_undelivered:
            raise
        log.warning("alert not delivered (%s); its occurrences wait for the next card", exc)
        return []
    finally:
        conn.close()


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
    """A file's report link, as the cards give it (see `alert_links`): stored for Grafana."""
    return alert_links(ps).report(report.report_name(file_name))


def index_url(ps: PipelineSettings) -> str | None:
    """The signed link to the index of reports (all files, a week), or None without
    REPORT_LINK_KEY (the index then needs a token)."""
    links = alert_links(ps)
    return links.index() if links.key is not None else None


def save_statistics(ps: PipelineSettings, result: dict[str, Any]) -> int:
    checked = ValidationResult.from_dict(result)
    return store.save_statistics(
        psycopg2_dsn(ps.core.database_url), checked, report_path=report.report_name(checked.file),
        # Stored for Grafana's table of files (it cannot sign a link): migration 0008.
        report_link=report_url(ps, checked.file), index_link=index_url(ps),
        schema_path=ps.core.schema_path,
    )  # fmt: skip


def send_alerts(ps: PipelineSettings, result: dict[str, Any]) -> dict[str, Any]:
    checked = ValidationResult.from_dict(result)
    original = lifecycle.original_name(psycopg2_dsn(ps.core.database_url), checked.file)
    path = report.write_report(
        checked, ps.core.reports_dir, original_name=original,
        proposals=proposal_lines(ps.core.database_url, checked),
    )  # fmt: skip
    observation = alerts.file_observation(
        checked, minimum=ps.alert_min_criticality, report_name=path.name
    )
    # A delivery failure fails the task (Airflow retries it); the occurrences stay recorded.
    cards = alert(ps, observation, raise_undelivered=True)
    return {
        "problems": sorted(o.key for o in observation.occurrences),
        "cards": [c.kind for c in cards],
        "report": str(path),
    }


def proposal_lines(database_url: str, result: ValidationResult) -> tuple[dict, ...]:
    """The schema proposals this file's evidence supports, for its report ("proposed change
    #N"). Never raises: a report without them beats no report (the failure is logged)."""
    if not result.evidence:
        return ()
    import psycopg2

    from pipelines.proposals.proposals import proposals_for_evidence

    try:
        conn = psycopg2.connect(psycopg2_dsn(database_url))
        try:
            found = proposals_for_evidence(conn, result.evidence)
        finally:
            conn.close()
    except psycopg2.Error:
        log.exception("schema proposals not looked up for the report of %s", result.file)
        return ()
    return tuple({"id": p.id, "title": p.title, "status": p.status, "decided_by": p.decided_by}
                 for p in found)  # fmt: skip


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
