"""Schema proposals: made from the evidence, stored in PostgreSQL, approved or rejected once.

- `propose(conn, schema_path, settings, drafter)`: candidates from the recent files' evidence
  (pipelines/proposals/candidates.py), drafted with TFDV (`drafter`: the warm worker or a
  tfdv interpreter, `make_drafter`), stored as `schema_proposals` rows with their diff,
  evidence and fingerprint. Returns the new proposals.
- `decide(conn, proposal_id, approve=..., by=..., reason=..., via=..., schema_path=...)`:
  one action. Approval writes the new schema.pbtxt through `mlsys.schema_versions.write_schema`
  (header kept, version bumped, the change logged in the header and commented at its line,
  compare-and-swap on the file's hash) and records the version with who, when and why;
  rejection records who, when and why. A decided proposal is never decided again.

Runs in the `app` environment (it parses the schema with tensorflow-metadata; Airflow's tasks
call it through `python -m pipelines.proposals`, pipelines/proposals/tasks.py).
"""

from __future__ import annotations

import json
import logging
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlsys import schema_versions as sv
from pipelines.proposals import candidates as cands
from pipelines.proposals import schema_text as st

log = logging.getLogger(__name__)

Drafter = Callable[[str, list[dict[str, Any]]], list[dict[str, Any]]]
PROPOSED, APPROVED, REJECTED = "proposed", "approved", "rejected"


class ProposalError(RuntimeError):
    """A decision cannot be made: unknown proposal, already decided, or the schema changed
    where the proposal edits. Nothing was written; the message says what to do."""


@dataclass(frozen=True)
class Proposal:
    """One row of `schema_proposals` (migration 0010)."""

    id: int
    created_at: datetime
    change_key: str
    change: dict[str, Any]
    title: str
    status: str
    evidence: dict[str, Any]
    evidence_fingerprint: str
    diff: str
    base_sha256: str
    base_version: str | None
    decided_by: str | None = None
    decided_at: datetime | None = None
    decided_reason: str | None = None
    decided_via: str | None = None
    schema_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO 8601)."""
        out = dict(self.__dict__)
        for key in ("created_at", "decided_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


COLUMNS = (
    "id, created_at, change_key, change, title, status, evidence, evidence_fingerprint, diff, "
    "base_sha256, base_version, decided_by, decided_at, decided_reason, decided_via, "
    "schema_version"
)


def _proposal(row) -> Proposal:
    return Proposal(*row)


# --- drafting with TFDV --------------------------------------------------------------------


def make_drafter(worker_url: str | None, tfdv_python: Path, timeout_s: float = 180.0) -> Drafter:
    """Draft through the warm TFDV worker (POST /schema-drafts); when it cannot be reached or is
    busy, in a tfdv interpreter started for it (the import costs 15-22 s)."""
    from pipelines.ingestion.tfdv_worker import WorkerUnavailable

    def draft(schema_text: str, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body = {"schema_text": schema_text, "candidates": requests}
        if worker_url:
            try:
                return _via_worker(worker_url, body, timeout_s)
            except WorkerUnavailable as exc:
                log.warning("TFDV worker unavailable (%s); drafting in %s", exc, tfdv_python)
        return _via_interpreter(tfdv_python, body)

    return draft


def _via_worker(url: str, body: dict[str, Any], timeout_s: float) -> list[dict[str, Any]]:
    from pipelines.ingestion.tfdv_worker import WorkerUnavailable

    request = urllib.request.Request(
        f"{url}/schema-drafts", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return json.loads(answer.read())["drafts"]
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:2000]
        if exc.code in (404, 503):  # busy, or a worker from before this endpoint
            raise WorkerUnavailable(f"{exc.code}: {detail}") from exc
        raise RuntimeError(f"TFDV worker failed to draft ({exc.code}): {detail}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise WorkerUnavailable(str(exc)) from exc


def _via_interpreter(tfdv_python: Path, body: dict[str, Any]) -> list[dict[str, Any]]:
    from mlsys.config import ROOT

    proc = subprocess.run(
        [str(tfdv_python), "-m", "pipelines.proposals.draft"], input=json.dumps(body),
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"drafting in {tfdv_python} failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout)["drafts"]


# --- proposing -----------------------------------------------------------------------------

INSERT = f"""
INSERT INTO schema_proposals
    (id, change_key, change, title, evidence, evidence_fingerprint, diff, new_text,
     base_sha256, base_version)
VALUES (%(id)s, %(key)s, %(change)s, %(title)s, %(evidence)s, %(fingerprint)s, %(diff)s,
        %(new_text)s, %(base_sha256)s, %(base_version)s)
ON CONFLICT DO NOTHING
RETURNING {COLUMNS}
"""


def propose(
    conn, schema_path: Path, settings: cands.ProposalSettings, drafter: Drafter
) -> list[Proposal]:
    """Store a proposal for every change the recent evidence supports; returns the new ones.

    `conn`: psycopg2 connection (committed here). Idempotent: a change with an open proposal,
    or evidence already proposed (same fingerprint), adds nothing, also when two runs race
    (unique index on the open change key, unique fingerprint: ON CONFLICT DO NOTHING).
    A candidate TFDV cannot draft is logged and skipped.
    """
    snapshot = sv.read_snapshot(schema_path)
    with conn:
        window, seen, decided = cands.read_window(conn, settings)
        found = cands.find_candidates(window, seen, decided, snapshot, settings)
        if not found:
            return []
        with conn.cursor() as cur:
            cur.execute(
                "SELECT nextval('schema_proposals_id_seq') FROM generate_series(1, %s)",
                (len(found),),
            )
            ids = [int(r[0]) for r in cur.fetchall()]
    requests = [
        c.to_request(f"schema proposal #{i}: {c.summary()}")
        for i, c in zip(ids, found, strict=True)
    ]
    drafts = {d["key"]: d for d in drafter(snapshot.text, requests)}
    made = []
    with conn, conn.cursor() as cur:
        for proposal_id, candidate in zip(ids, found, strict=True):
            draft = drafts.get(candidate.key, {"error": "no draft returned"})
            if "error" in draft:
                log.warning("no proposal for %s: %s", candidate.key, draft["error"])
                continue
            diff = st.unified_diff(
                snapshot.text, draft["new_text"],
                old_name=f"schema.pbtxt ({snapshot.version.short})",
                new_name=f"schema.pbtxt (proposal #{proposal_id})",
            )  # fmt: skip
            change = draft["change"] | {"edits": draft["edits"]}
            cur.execute(
                INSERT,
                {"id": proposal_id, "key": candidate.key, "change": json.dumps(change),
                 "title": candidate.title(), "evidence": json.dumps(candidate.evidence(settings)),
                 "fingerprint": candidate.fingerprint(), "diff": diff,
                 "new_text": draft["new_text"], "base_sha256": snapshot.version.sha256,
                 "base_version": snapshot.version.version},
            )  # fmt: skip
            row = cur.fetchone()
            if row is not None:
                made.append(_proposal(row))
    return made


# --- reading -------------------------------------------------------------------------------


def get_proposal(conn, proposal_id: int) -> Proposal | None:
    with conn.cursor() as cur:
        cur.execute(f"SELECT {COLUMNS} FROM schema_proposals WHERE id = %s", (proposal_id,))
        row = cur.fetchone()
    return _proposal(row) if row else None


def list_proposals(conn, *, status: str | None = None, limit: int = 100) -> list[Proposal]:
    """Newest first; `status`: 'proposed', 'approved', 'rejected' or None for all."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {COLUMNS} FROM schema_proposals "
            "WHERE %(status)s::text IS NULL OR status = %(status)s "
            "ORDER BY id DESC LIMIT %(limit)s",
            {"status": status, "limit": limit},
        )
        return [_proposal(r) for r in cur.fetchall()]


def proposals_for_evidence(conn, evidence) -> list[Proposal]:
    """The proposals (any status) whose change one file's evidence supports: what its report
    names ("proposed change #N"). `evidence`: the file's `Evidence` items."""
    keys = sorted({cands.change_key(e.kind, e.column, e.value) for e in evidence})
    if not keys:
        return []
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT {COLUMNS} FROM schema_proposals WHERE change_key = ANY(%s) ORDER BY id",
            (keys,),
        )
        return [_proposal(r) for r in cur.fetchall()]


# --- deciding ------------------------------------------------------------------------------

DECIDE = f"""
UPDATE schema_proposals SET status = %(status)s, decided_by = %(by)s, decided_at = now(),
    decided_reason = %(reason)s, decided_via = %(via)s, schema_version = %(version)s
WHERE id = %(id)s AND status = 'proposed'
RETURNING {COLUMNS}
"""


def decide(
    conn,
    proposal_id: int,
    *,
    approve: bool,
    by: str,
    reason: str | None,
    via: str,
    schema_path: Path,
    target: str | None = None,
) -> Proposal:
    """Approve or reject one open proposal: one transaction, the proposal's row locked.

    Approval applies the proposal's edits to the schema as it is now; when another change was
    approved meanwhile, the edits are re-applied there and must add and remove exactly the lines
    the proposal's diff showed (else ProposalError: propose again). The file is written by
    `write_schema` (compare-and-swap on its hash, so a concurrent writer makes this fail, not
    overwrite), then the version is recorded with who and why, and the proposal closed, in one
    commit. Raises ProposalError, naming the reason, when nothing may be decided.
    """
    if not by.strip():
        raise ProposalError("a decision needs who made it")
    with conn:
        with conn.cursor() as cur:
            cur.execute(
                f"SELECT {COLUMNS} FROM schema_proposals WHERE id = %s FOR UPDATE", (proposal_id,)
            )
            row = cur.fetchone()
        if row is None:
            raise ProposalError(f"there is no schema proposal #{proposal_id}")
        proposal = _proposal(row)
        if proposal.status != PROPOSED:
            raise ProposalError(
                f"proposal #{proposal_id} was already {proposal.status} by "
                f"{proposal.decided_by} at {proposal.decided_at:%Y-%m-%d %H:%M} UTC"
                f" ({proposal.decided_via}): nothing changed"
            )
        version = None
        if approve:
            version = _write(conn, proposal, by=by, reason=reason, schema_path=schema_path,
                             target=target)  # fmt: skip
        with conn.cursor() as cur:
            cur.execute(
                DECIDE,
                {"status": APPROVED if approve else REJECTED, "by": by, "reason": reason,
                 "via": via, "version": version, "id": proposal_id},
            )  # fmt: skip
            return _proposal(cur.fetchone())


def _write(conn, proposal: Proposal, *, by: str, reason: str | None, schema_path: Path,
           target: str | None) -> str:  # fmt: skip
    current = sv.read_snapshot(schema_path)
    if f"# schema proposal #{proposal.id}:" in current.text:
        # Written by an earlier attempt whose commit failed: record it, never apply it twice.
        sv.record_schema_version(conn, current.version, text=current.text, approved_by=by,
                                 reason=reason, proposal_id=proposal.id)  # fmt: skip
        return current.version.version
    edits = [st.Edit.from_dict(e) for e in proposal.change.get("edits", [])]
    try:
        new_text = st.apply_edits(current.text, edits)
    except st.EditConflict as exc:
        raise ProposalError(
            f"proposal #{proposal.id} no longer fits the schema ({current.version.short}): {exc}; "
            "reject it and run `make schema-propose`"
        ) from exc
    if current.version.sha256 != proposal.base_sha256:
        # Only approvals may have changed the file since the draft: an edit by hand (in force
        # already, since every reader follows the file) would otherwise be written under this
        # proposal's name, outside the diff the curator reviewed.
        with conn.cursor() as cur:
            cur.execute(
                "SELECT 1 FROM schema_versions WHERE sha256 = %s AND approved_by IS NOT NULL",
                (current.version.sha256,),
            )
            written_by_an_approval = cur.fetchone() is not None
        if not written_by_an_approval:
            raise ProposalError(
                f"schema.pbtxt was changed outside an approval since proposal #{proposal.id} was "
                f"drafted (now {current.version.short}, which no approval wrote): approving would "
                "record that edit under this proposal. Undo the edit, or give it its own "
                "`# schema-version:` and reject this proposal; `make schema-propose` drafts "
                "against the edited file"
            )
        rebased = st.unified_diff(current.text, new_text, old_name="", new_name="")
        if not st.same_change(rebased, proposal.diff):
            raise ProposalError(
                f"the schema changed where proposal #{proposal.id} edits it (now "
                f"{current.version.short}): reject it and run `make schema-propose`"
            )
    comment = f"proposal #{proposal.id} {proposal.title}" + (f" ({reason})" if reason else "")
    written = sv.write_schema(
        schema_path, new_text, base=current.version, change_comment=comment, author=by,
        target=target,
    )  # fmt: skip
    sv.record_schema_version(
        conn, written, text=Path(schema_path).read_text(encoding="utf-8"),
        approved_by=by, reason=reason, proposal_id=proposal.id,
    )  # fmt: skip
    return written.version
