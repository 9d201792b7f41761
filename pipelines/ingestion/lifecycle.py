"""What happens to a raw file around its ingestion: claimed (recorded, archived), released
when its run is dead, quarantined after INGEST_MAX_ATTEMPTS failures, refused when it is not
a CSV file. Typed functions without Airflow; `read_data` calls `prepare` then `claim_next`.

Evidence, not the wall clock: a claim names its holder (the Airflow run, and the process that
claimed it) and is released only when that run has ended (its state, read from Airflow) or that
process is gone (same machine and boot, no process with that pid and start time). A slow run,
or a clock that jumps, therefore never makes a file be ingested twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlsys import csvfile
from pipelines.ingestion import claim
from pipelines.ingestion.durable import fsync_dir, sync_paths

log = logging.getLogger(__name__)

TERMINAL_RUN_STATES = ("success", "failed")
ERRORS_KEPT = 10  # the last errors of a file, in its claim row and its reasons file
ERROR_CHARS = 2000


# --- who holds a claim -------------------------------------------------------------------


boot_id = claim.boot_id  # one reader of the boot id (the claim's sightings use it too)


def process_start(pid: int) -> str | None:
    """The start time of a live process (clock ticks since boot), None if there is no such
    process. With the pid it names one process: a reused pid has another start time."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    return text.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class Holder:
    """Who claimed a file: the process, and the Airflow run it worked for (if any)."""

    host: str
    boot_id: str
    pid: int
    pid_start: str | None
    dag_id: str | None = None
    run_id: str | None = None
    try_number: int | None = None

    @classmethod
    def this_process(
        cls, *, dag_id: str | None = None, run_id: str | None = None, try_number: int | None = None
    ) -> Holder:
        pid = os.getpid()
        return cls(socket.gethostname(), boot_id(), pid, process_start(pid), dag_id, run_id,
                   try_number)  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Holder:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


# run_state(dag_id, run_id): the run's state ('queued', 'running', 'success', 'failed'), None
# when no such run exists; raises when it cannot be told.
RunState = Callable[[str, str], str | None]
# active_runs(dag_id, run_ids): how many of these runs exist and are queued or running; raises
# when it cannot be told. One question for all the claims one read_data judges, instead of two
# per claim (runtime.active_runs).
ActiveRuns = Callable[[str, list[str]], int]
ACTIVE_RUN_STATES = ("queued", "running")


@dataclass(frozen=True)
class Verdict:
    dead: bool | None  # None: no evidence either way, the claim is kept
    evidence: str


def judge(holder: Holder, run_state: RunState | None) -> Verdict:
    """Is the holder of a claim dead? Only evidence counts, never the claim's age."""
    if holder.run_id and holder.dag_id:
        run = f"run {holder.dag_id}/{holder.run_id}"
        if run_state is None:
            return Verdict(None, f"held by {run}, whose state cannot be read here")
        try:
            state = run_state(holder.dag_id, holder.run_id)
        except Exception as exc:  # noqa: BLE001 (any failure to ask is "no evidence")
            return Verdict(None, f"the state of {run} could not be read: {exc}")
        if state is None:
            return Verdict(True, f"{run} no longer exists")
        if state in TERMINAL_RUN_STATES:
            return Verdict(True, f"{run} ended {state}")
        return Verdict(False, f"{run} is {state}")
    who = f"process {holder.pid} on {holder.host}"
    if holder.host != socket.gethostname():
        return Verdict(None, f"held by {who}, another machine")
    if holder.boot_id and boot_id() and holder.boot_id != boot_id():
        return Verdict(True, f"{who}: the machine restarted since")
    if holder.pid_start is None:  # no /proc: the pid alone (a reused pid looks alive)
        alive = _pid_exists(holder.pid)
    else:
        alive = process_start(holder.pid) == holder.pid_start
    return Verdict(False, f"{who} is alive") if alive else Verdict(True, f"{who} is gone")


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- the claims table --------------------------------------------------------------------


@dataclass(frozen=True)
class ClaimRow:
    claimed_name: str
    original_name: str
    sha256: str | None
    holder: Holder
    errors: list[dict[str, Any]]
    outcome: str | None


def record_claim(conn, claimed_name: str, original_name: str, holder: Holder) -> None:
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO ingestion_claims (claimed_name, original_name, holder)
               VALUES (%s, %s, %s)""",
            (claimed_name, original_name, json.dumps(holder.to_dict())),
        )


def forget_claim(conn, claimed_name: str) -> None:
    with conn.cursor() as cur:
        cur.execute("DELETE FROM ingestion_claims WHERE claimed_name = %s", (claimed_name,))


def get_claim(conn, claimed_name: str) -> ClaimRow | None:
    with conn.cursor() as cur:
        cur.execute(
            """SELECT claimed_name, original_name, sha256, holder, errors, outcome
               FROM ingestion_claims WHERE claimed_name = %s""",
            (claimed_name,),
        )
        row = cur.fetchone()
    if row is None:
        return None
    return ClaimRow(row[0], row[1], row[2], Holder.from_dict(row[3]), list(row[4]), row[5])


def original_name(dsn: str, claimed_name: str) -> str | None:
    """The name a claimed file arrived under; None for a file claimed without a record."""
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT original_name FROM ingestion_claims WHERE claimed_name = %s",
                (claimed_name,),
            )
            row = cur.fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def record_error(
    dsn: str, claimed_name: str, task: str, try_number: int | None, error: str
) -> bool:
    """Add a task's error to its claim (kept: the last ERRORS_KEPT); False if no such claim."""
    import psycopg2

    entry = [{"task": task, "try": try_number, "error": error[:ERROR_CHARS]}]
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                """UPDATE ingestion_claims SET errors = (
                       SELECT coalesce(jsonb_agg(e ORDER BY n), '[]'::jsonb) FROM (
                           SELECT e, n FROM jsonb_array_elements(errors || %s::jsonb)
                               WITH ORDINALITY AS t(e, n)
                           ORDER BY n DESC LIMIT %s) AS last)
                   WHERE claimed_name = %s""",
                (json.dumps(entry), ERRORS_KEPT, claimed_name),
            )
            return cur.rowcount == 1
    finally:
        conn.close()


def _end_claim(conn, claimed_name: str, outcome: str, evidence: str) -> bool:
    """Mark a held claim ended; False when another run ended it first (the gate of a release)."""
    with conn.cursor() as cur:
        cur.execute(
            """UPDATE ingestion_claims SET outcome = %s, evidence = %s, ended_at = now()
               WHERE claimed_name = %s AND outcome IS NULL""",
            (outcome, evidence, claimed_name),
        )
        return cur.rowcount == 1


# The current series of attempts of a content: its claims since it last left processing/ for
# good (split, or quarantined). The same file dropped again later starts from zero.
_SINCE_LAST_END = """sha256 = %(sha)s AND id > coalesce((SELECT max(id) FROM ingestion_claims
    WHERE sha256 = %(sha)s AND outcome IN ('done', 'quarantined')), 0)"""


def failures(conn, sha256: str) -> int:
    """Failed attempts of this content (claims whose run died leaving it claimed)."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT count(*) FROM ingestion_claims WHERE outcome = 'failed' AND {_SINCE_LAST_END}",
            {"sha": sha256},
        )
        return int(cur.fetchone()[0])


def attempt_errors(conn, sha256: str) -> list[dict[str, Any]]:
    """The errors met by this content's current attempts, oldest first, the last ERRORS_KEPT."""
    with conn.cursor() as cur:
        cur.execute(
            f"""SELECT t.e FROM ingestion_claims,
                    jsonb_array_elements(errors) WITH ORDINALITY AS t(e, n)
                WHERE {_SINCE_LAST_END} ORDER BY id, t.n""",
            {"sha": sha256},
        )
        return [row[0] for row in cur.fetchall()][-ERRORS_KEPT:]


def mark_finished(conn, folders: Folders, run_state: RunState | None) -> int:
    """Claims whose file left processing/ (the split removed it) and whose holder is dead:
    outcome 'done', which starts the content's attempts from zero. Returns how many."""
    with conn.cursor() as cur:
        cur.execute("SELECT claimed_name, holder FROM ingestion_claims WHERE outcome IS NULL")
        open_claims = cur.fetchall()
    done = 0
    for name, holder in open_claims:
        if (folders.processing / name).exists():
            continue
        verdict = judge(Holder.from_dict(holder), run_state)
        if verdict.dead is True and _end_claim(conn, name, "done", verdict.evidence):
            done += 1
    return done


def _save_unprocessed(conn, file_name: str, original_name: str, rows: int, reason: str) -> None:
    """The `ingestion_files` row of a file that went to bad_data whole without a validation:
    every row counted invalid. A row already saved by `save_statistics` keeps its row count."""
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO ingestion_files (file_name, original_name, rows_total, rows_valid,
                   rows_invalid, criticality, parse_error)
               VALUES (%(file)s, %(original)s, %(rows)s, 0, %(rows)s, 'high', %(reason)s)
               ON CONFLICT (file_name) DO UPDATE SET rows_valid = 0,
                   rows_invalid = ingestion_files.rows_total, criticality = 'high',
                   parse_error = EXCLUDED.parse_error""",
            {"file": file_name, "original": original_name, "rows": rows, "reason": reason},
        )


# --- files -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Folders:
    raw: Path
    processing: Path
    good: Path
    bad: Path
    archive: Path

    def make(self) -> None:
        for folder in (self.raw, self.processing, self.good, self.bad, self.archive):
            folder.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Notice:
    """An event people must hear about (a Teams card, or a warning when none is set up)."""

    title: str
    facts: list[tuple[str, str]]
    text: str
    # The problem it belongs to ('quarantined', 'refused:<kind>': one card per problem, not
    # per file; pipelines/ingestion/alerts.py) and where it occurred (the file).
    problem: str = "lifecycle"
    source: str = ""


Notify = Callable[[Notice], None]


@dataclass
class Outcome:
    """What `prepare` did this run, for the task log."""

    released: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # claims with no evidence of a dead holder
    pruned: int = 0


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def archive(path: Path, archive_dir: Path) -> Path:
    """Keep the raw file as received under archive/<claimed name>: a hard link (no copy, and
    it outlives the split's removal of the claimed file), a copy across file systems."""
    target = archive_dir / path.name
    try:
        os.link(path, target)
    except FileExistsError:
        pass
    except OSError:  # another file system, or links not supported
        shutil.copy2(path, target)
        sync_paths([target])
    fsync_dir(archive_dir)
    return target


def prune_archive(archive_dir: Path, days: int, now: datetime | None = None) -> int:
    """Remove archived files claimed more than `days` ago (by the time in their name)."""
    if not archive_dir.exists():
        return 0
    limit = (now or datetime.now(UTC)) - timedelta(days=days)
    removed = 0
    for path in archive_dir.glob("*.csv"):
        when = claim.claimed_at(path)
        if when is not None and when < limit:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _free_name(folder: Path, name: str) -> Path:
    """folder/name, or a variant of it when that name is taken (nothing is overwritten)."""
    target = folder / name
    while target.exists() or target.is_symlink():
        stem, dot, ext = name.rpartition(".") if "." in name else (name, "", "")
        target = folder / f"{stem} (again {secrets.token_hex(3)}){dot}{ext}"
    return target


def _write_reasons(path: Path, content: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


# --- the steps of read_data ----------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    max_attempts: int
    archive_days: int
    legacy_stale_s: float  # claims made before claims were recorded: the old wall-clock rule


def quarantine(
    conn,
    path: Path,
    folders: Folders,
    *,
    original_name: str,
    reason: str,
    errors: list[dict[str, Any]],
    attempts: int,
    notify: Notify,
) -> Path:
    """Move a claimed file whole to bad_data, with a reasons file, a row and a notice."""
    target = _free_name(folders.bad, path.name)
    reasons = target.with_name(target.name[: -len(".csv")] + ".reasons.json")
    rows = csvfile.count_data_lines(path)
    _write_reasons(reasons, {
        "file": path.name, "original_name": original_name, "quarantined": True,
        "reason": reason, "attempts": attempts, "rows": rows, "errors": errors,
    })  # fmt: skip
    os.rename(path, target)
    sync_paths([target, reasons])
    _save_unprocessed(conn, path.name, original_name, rows, reason)
    last = errors[-1]["error"].strip().splitlines()[-1] if errors else "none recorded"
    notify(Notice(
        title=f"Ingestion: file quarantined - {original_name}",
        facts=[("File", original_name), ("Moved to", f"bad_data/{target.name}"),
               ("Failed attempts", str(attempts)), ("Rows", str(rows))],
        text=f"{reason}. Last error: {last[:300]}",
        problem="quarantined", source=path.name,
    ))  # fmt: skip
    return target


def release_dead_claims(
    conn,
    folders: Folders,
    policy: Policy,
    run_state: RunState | None,
    notify: Notify,
    outcome: Outcome,
) -> None:
    """Claims whose holder is dead: back to raw-data, or to bad_data at the last attempt."""
    for path in sorted(folders.processing.glob("*.csv")):
        row = get_claim(conn, path.name)
        if row is None:
            _release_legacy(path, folders, policy, outcome)
            continue
        if row.outcome is not None:
            continue  # ended by another run a moment ago
        verdict = judge(row.holder, run_state)
        if verdict.dead is not True:
            outcome.kept.append(path.name)
            if verdict.dead is None:
                log.warning("claim %s kept: %s", path.name, verdict.evidence)
            continue
        outputs = [
            p.name for p in (folders.good / path.name, folders.bad / path.name) if p.exists()
        ]
        if outputs:
            # Its split wrote some outputs and died before removing it: ingesting it again
            # could store rows twice, dropping it could lose rows. A person decides.
            if _end_claim(conn, path.name, "quarantined", verdict.evidence):
                quarantine(conn, path, folders, original_name=row.original_name,
                           reason=f"interrupted after writing {', '.join(outputs)} "
                                  f"({verdict.evidence}); not ingested again to avoid duplicates",
                           errors=row.errors, attempts=1, notify=notify)  # fmt: skip
                outcome.quarantined.append(path.name)
            continue
        if row.sha256 is None:
            with conn.cursor() as cur:
                cur.execute("UPDATE ingestion_claims SET sha256 = %s WHERE claimed_name = %s",
                            (file_sha256(path), path.name))  # fmt: skip
            row = get_claim(conn, path.name)
        if not _end_claim(conn, path.name, "failed", verdict.evidence):
            continue
        attempts = failures(conn, row.sha256)
        if attempts >= policy.max_attempts:
            quarantine(conn, path, folders, original_name=row.original_name,
                       reason=f"{attempts} of INGEST_MAX_ATTEMPTS={policy.max_attempts} "
                              "attempts failed",
                       errors=attempt_errors(conn, row.sha256), attempts=attempts,
                       notify=notify)  # fmt: skip
            with conn.cursor() as cur:  # after: it ends this content's series of attempts
                cur.execute("UPDATE ingestion_claims SET outcome = 'quarantined' "
                            "WHERE claimed_name = %s", (path.name,))  # fmt: skip
            outcome.quarantined.append(path.name)
            continue
        target = _free_name(folders.raw, row.original_name)
        os.rename(path, target)
        fsync_dir(folders.raw)
        (folders.archive / path.name).unlink(missing_ok=True)  # archived again at its next claim
        forget_failed_attempt(conn, folders, path)
        log.warning("released %s to raw-data as %r (attempt %d of %d failed: %s)",
                    path.name, target.name, attempts, policy.max_attempts, verdict.evidence)  # fmt: skip
        outcome.released.append(target.name)


def forget_failed_attempt(conn, folders: Folders, claimed: Path) -> None:
    """What a failed attempt left of a claim that goes back to raw-data: its statistics row
    (with its issues and drift, by cascade), which described rows that never landed (e.g. a
    file still being written when claimed: the split found more rows than were validated),
    and its reasons file. The next attempt, under a new claimed name, records the truth."""
    with conn.cursor() as cur:
        cur.execute("DELETE FROM ingestion_files WHERE file_name = %s", (claimed.name,))
    (folders.processing / f"{claimed.stem}.reasons.tsv").unlink(missing_ok=True)


def _release_legacy(path: Path, folders: Folders, policy: Policy, outcome: Outcome) -> None:
    """A claim with no row (made before claims were recorded): the former wall-clock rule."""
    when = claim.claimed_at(path)
    if when is None or (datetime.now(UTC) - when).total_seconds() < policy.legacy_stale_s:
        outcome.kept.append(path.name)
        return
    target = _free_name(folders.raw, path.name.split("--", 1)[0] + ".csv")
    os.rename(path, target)
    outcome.released.append(target.name)


def refuse(conn, refusal: claim.Refusal, folders: Folders, notify: Notify) -> Path:
    """Move a refused entry of raw-data into bad_data as it is (renamed, never opened or
    followed), with a reasons file, an `ingestion_files` row (0 rows read) and a notice."""
    original = refusal.path.name
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    name = f"{claim.slug(original)}--{stamp}-{secrets.token_hex(3)}"
    target = folders.bad / name
    reasons = folders.bad / f"{name}.reasons.json"
    _write_reasons(reasons, {"file": name, "original_name": original, "refused": True,
                             "kind": refusal.kind, "reason": refusal.reason})  # fmt: skip
    if not claim.take(refusal.path, target):
        reasons.unlink()
        raise FileNotFoundError(refusal.path)
    sync_paths([reasons])
    fsync_dir(folders.bad)
    _save_unprocessed(conn, name, original, 0, f"refused: {refusal.reason}")
    notify(Notice(
        title=f"Ingestion: file refused - {original}",
        facts=[("File", original), ("Kind", refusal.kind), ("Moved to", f"bad_data/{name}")],
        text=f"Not ingested: {refusal.reason}.",
        problem=f"refused:{refusal.kind}", source=name,
    ))  # fmt: skip
    return target


def known_active(conn, folders: Folders, run_state: RunState, active_runs: ActiveRuns) -> RunState:
    """`run_state` that answers at once for the runs holding open claims when one
    `active_runs` question shows all of them queued or running; any other run is asked about
    by `run_state` as before. The claims whose file is still in processing/ are counted apart
    from those whose file the split already removed: the former are almost always held by
    runs still at work, while the latter's runs end one by one, and one ended run among them
    would make the count say nothing about the others.

    Measured on the live scheduler (docs/ingestion.md, "Backlog"): with six runs in flight,
    judging each claim by its run's state took about ten execution-API calls per read_data.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT claimed_name, holder FROM ingestion_claims WHERE outcome IS NULL")
        rows = [(name, Holder.from_dict(holder)) for name, holder in cur.fetchall()]
    groups: dict[tuple[str, bool], set[str]] = {}
    for name, h in rows:
        if h.dag_id and h.run_id:
            in_processing = (folders.processing / name).exists()
            groups.setdefault((h.dag_id, in_processing), set()).add(h.run_id)
    known: dict[tuple[str, str], str] = {}
    for (dag_id, _), run_ids in groups.items():
        try:
            active = active_runs(dag_id, sorted(run_ids))
        except Exception:  # noqa: BLE001 (no evidence: each run is asked about by itself)
            log.warning("could not count the active runs of %s", dag_id, exc_info=True)
            continue
        if active == len(run_ids):
            known.update({(dag_id, r): " or ".join(ACTIVE_RUN_STATES) for r in run_ids})

    def state(dag_id: str, run_id: str) -> str | None:
        return known.get((dag_id, run_id)) or run_state(dag_id, run_id)

    return state


def prepare(
    conn,
    folders: Folders,
    policy: Policy,
    *,
    run_state: RunState | None,
    notify: Notify,
    active_runs: ActiveRuns | None = None,
) -> Outcome:
    """Before looking for a file: prune the archive, release or quarantine dead claims.
    `conn` is an autocommit psycopg2 connection to the application database; `active_runs`,
    when given with `run_state`, saves asking about each claim's run (`known_active`)."""
    folders.make()
    outcome = Outcome(pruned=prune_archive(folders.archive, policy.archive_days))
    if run_state is not None and active_runs is not None:
        run_state = known_active(conn, folders, run_state, active_runs)
    release_dead_claims(conn, folders, policy, run_state, notify, outcome)
    mark_finished(conn, folders, run_state)
    return outcome


def refuse_all(conn, refusals: list[claim.Refusal], folders: Folders, notify: Notify) -> list[str]:
    """`refuse` each entry; the names refused (an entry gone meanwhile is skipped)."""
    refused = []
    for refusal in refusals:
        try:
            refuse(conn, refusal, folders, notify)
        except FileNotFoundError:
            continue  # refused by an overlapping run meanwhile
        refused.append(refusal.path.name)
    return refused


@dataclass(frozen=True)
class Claimed:
    path: Path
    original_name: str
    sha256: str


def claim_next(
    conn, folders: Folders, candidates: list[Path], holder: Holder, rng=None
) -> Claimed | None:
    """Claim one random candidate: recorded before the rename (a claim is never unrecorded),
    archived and hashed after it. None when another run took every candidate first."""
    originals: dict[str, str] = {}

    def before(source: Path, target: Path) -> None:
        record_claim(conn, target.name, source.name, holder)
        originals[target.name] = source.name

    path = claim.claim_random_file(
        folders.raw, folders.processing, rng, candidates=candidates, before_take=before,
        after_lost=lambda _source, target: forget_claim(conn, target.name),
    )  # fmt: skip
    if path is None:
        return None
    fsync_dir(folders.processing)
    archive(path, folders.archive)
    digest = file_sha256(path)
    with conn.cursor() as cur:
        cur.execute("UPDATE ingestion_claims SET sha256 = %s WHERE claimed_name = %s",
                    (digest, path.name))  # fmt: skip
    return Claimed(path, originals[path.name], digest)
