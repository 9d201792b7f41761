"""The bodies of the `predict_new_data` tasks: plain functions of the settings and file names
(the DAG file only wires them; the tests call them directly, without Airflow)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsys.db import psycopg2_dsn
from mlsys.rowchecks import read_raw_csv
from pipelines.config import PipelineSettings
from pipelines.prediction import ledger
from pipelines.prediction.api import ApiRejected, PredictionApi, rejection_reason
from pipelines.prediction.records import feature_kinds, to_records

log = logging.getLogger(__name__)


def good_files(good_dir: Path) -> list[Path]:
    """The complete files of good_data, oldest first (then by name).

    The ingestion writes each file under a temporary name that starts with "." and does not end
    in .csv, then renames it (os.replace, atomic): listing only `*.csv` not starting with "."
    never sees a file that is still being written.
    """
    if not good_dir.is_dir():
        return []
    files = [p for p in good_dir.glob("*.csv") if p.is_file() and not p.name.startswith(".")]
    return sorted(files, key=lambda p: (p.stat().st_mtime, p.name))


def new_files(good_dir: Path, dsn: str) -> list[str]:
    """Names of the good_data files the ledger does not hold yet, oldest first."""
    names = [p.name for p in good_files(good_dir)]
    known = ledger.recorded(dsn, names)
    return [n for n in names if n not in known]


@dataclass(frozen=True)
class FileOutcome:
    file_name: str
    status: str  # ledger.DONE | ledger.FAILED
    rows: int  # rows of the file with a stored prediction
    total: int  # rows in the file
    stored: int = 0  # newly stored by this attempt
    already_stored: int = 0  # stored by an earlier attempt
    reason: str | None = None


def predict_file(
    api: PredictionApi, path: Path, kinds: dict[str, str], *, batch_size: int
) -> FileOutcome:
    """Send every row of one good_data file to the API in batches, in row order.

    Row numbers are the 0-based data rows of the file: with the file name they make each
    prediction's key, so a retry re-sends stored rows harmlessly (the API answers them as
    already stored) and no row is skipped. Raises `ApiUnavailable`/`ApiRefused` (the task
    fails and is retried, nothing recorded); a rejection is returned as a failed outcome.
    """
    try:
        frame = read_raw_csv(path)
    except ValueError as exc:  # not UTF-8, not CSV, no header (pandas' errors are ValueErrors)
        return FileOutcome(
            path.name, ledger.FAILED, 0, 0, reason=f"the file cannot be read as CSV: {exc}"[:2000]
        )
    records = to_records(frame, kinds)
    total = len(records)
    stored = already = 0
    for start in range(0, total, batch_size):
        rows = list(range(start, min(start + batch_size, total)))
        try:
            result = api.predict_scheduled(path.name, rows, records[start : rows[-1] + 1])
        except ApiRejected as exc:
            reason = rejection_reason(exc, rows=rows, total=total)
            return FileOutcome(path.name, ledger.FAILED, start, total, stored, already, reason)
        stored += result.stored
        already += result.already_stored
    return FileOutcome(path.name, ledger.DONE, total, total, stored, already)


def check_for_new_data(ps: PipelineSettings) -> list[str]:
    """Task 1: the new file names (an empty list means: skip the run)."""
    return new_files(ps.core.good_data_dir, psycopg2_dsn(ps.core.database_url))


def make_predictions(
    ps: PipelineSettings, names: list[str], *, api: PredictionApi | None = None
) -> dict[str, Any]:
    """Task 2: predict each file through the API and record it in the ledger once settled.

    Returns a small summary for XCom (file names and counts, never data).
    """
    dsn = psycopg2_dsn(ps.core.database_url)
    # A retried attempt gets the same names: the files an earlier attempt settled are skipped.
    settled = ledger.recorded(dsn, names)
    pending = [n for n in names if n not in settled]
    summary: dict[str, Any] = {
        "done": [], "failed": [], "vanished": [], "settled_before": sorted(settled),
        "rows_stored": 0, "rows_already_stored": 0,
    }  # fmt: skip
    if not pending:
        return summary
    client = api or PredictionApi(ps.core.api_url, var_dir=ps.core.var_dir)
    try:
        kinds = feature_kinds(client.model_info())
        for name in pending:
            path = ps.core.good_data_dir / name
            if Path(name).name != name or not path.is_file():
                # Not recorded: should the file come back, a later run predicts it.
                log.warning("%s is no longer in %s; left for a later run", name, path.parent)
                summary["vanished"].append(name)
                continue
            outcome = predict_file(client, path, kinds, batch_size=ps.predict_batch_size)
            ledger.record(
                dsn,
                file_name=name,
                status=outcome.status,
                rows=outcome.rows,
                reason=outcome.reason,
            )
            summary[outcome.status].append(name)
            summary["rows_stored"] += outcome.stored
            summary["rows_already_stored"] += outcome.already_stored
            if outcome.status == ledger.FAILED:
                log.warning("%s recorded as failed: %s", name, outcome.reason)
            else:
                log.info(
                    "%s done: %d rows (%d stored now, %d already stored)",
                    name, outcome.total, outcome.stored, outcome.already_stored,
                )  # fmt: skip
    finally:
        if api is None:
            client.close()
    return summary


@contextmanager
def paced(min_seconds: float, *, clock=time.monotonic, sleep=time.sleep) -> Iterator[None]:
    """Let the body last at least `min_seconds` (PREDICT_MIN_RUN_SECONDS): when it ends early and
    without an error, wait out the rest.

    Why: `predict_new_data` runs on every good-data event with `max_active_runs=1`, and Airflow
    collapses the events that arrive during a run into one next run. In a backlog a split ends
    every second or two, so without a floor every run predicts one or two files (an earlier
    backlog: 200 prediction runs for 397 files, 400 task processes beside the ingestion's
    1,985, each with its Airflow calls); with a 10 s floor a run predicts what the last 10 s
    brought.
    A file landing on an idle system is not delayed (its run starts at once); one landing
    during the wait waits at most `min_seconds`. The wait uses no CPU, only a task slot.
    """
    started = clock()
    yield
    rest = min_seconds - (clock() - started)
    if rest > 0:
        sleep(rest)
