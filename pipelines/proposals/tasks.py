"""The bodies of the schema-proposal DAGs (airflow environment).

The proposals' core parses the schema (tensorflow-metadata) and writes it through
`mlsys.schema_versions.write_schema`, which the `airflow` environment cannot import (protobuf
7): each task runs the curator's own command, `python -m pipelines.proposals --json ...`, in
the `app` interpreter, with the task's environment (its database role), and reads its JSON.
The same code path as `make schema-propose` / `make schema-approve`.
"""

from __future__ import annotations

import json
import logging
import subprocess
from typing import Any

from mlsys.config import ROOT, Settings
from pipelines.config import PipelineSettings

log = logging.getLogger(__name__)
APPROVE, REJECT = "Approve", "Reject"  # the options of the review's HITL step
REVIEW_DAG = "review_schema_proposal"


class DecisionRefused(RuntimeError):
    """The command refused the decision (already decided, or the schema changed meanwhile)."""


def run_command(settings: Settings, *args: str) -> Any:
    """`python -m pipelines.proposals --json ARGS` in the app interpreter -> its JSON.

    Raises DecisionRefused (exit status 1 with {"error"}), RuntimeError otherwise."""
    proc = subprocess.run(
        [str(settings.venv_python("app")), "-m", "pipelines.proposals", "--json", *args],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.stderr:
        log.info("pipelines.proposals said:\n%s", proc.stderr[-5000:])
    lines = proc.stdout.strip().splitlines()
    answer = json.loads(lines[-1]) if lines else None
    if proc.returncode == 1 and isinstance(answer, dict) and "error" in answer:
        raise DecisionRefused(answer["error"])
    if proc.returncode != 0 or answer is None:
        raise RuntimeError(
            f"pipelines.proposals {' '.join(args)} failed (exit {proc.returncode}): "
            f"{proc.stderr[-3000:]}"
        )
    return answer


def propose(ps: PipelineSettings) -> list[dict[str, Any]]:
    """Propose from the recent evidence and tell Teams; per new proposal, the review run to
    start (`TriggerDagRunOperator.expand_kwargs`: trigger_run_id, conf). Small: ids only."""
    made = run_command(ps.core, "propose")
    for p in made:
        log.info("schema proposal #%s: %s", p["id"], p["title"])
    if made:
        tell_teams(ps, made)
    return [
        {"trigger_run_id": f"proposal-{p['id']}", "conf": {"proposal_id": p["id"]}} for p in made
    ]


def review_request(settings: Settings, proposal_id: int) -> dict[str, str]:
    """The HITL step's subject and body (Markdown: evidence and diff) for one proposal."""
    [p] = run_command(settings, "show", str(proposal_id))
    e = p["evidence"]
    files = "\n".join(
        f"| {f['file']} | {f['rows']} of {f['rows_total']} | {f['share']:.1%} |" for f in e["files"]
    )
    body = (
        f"**{p['title']}** (proposal #{p['id']}, status {p['status']})\n\n"
        f"Seen in {e['files_seen']} of the {e['window_files']} most recent files "
        f"({e['file_share']:.0%}), {e['rows']} of {e['window_rows']} rows ({e['row_share']:.1%}).\n\n"
        f"| file | rows | share |\n|---|---|---|\n{files}\n\n"
        f"```diff\n{p['diff']}\n```\n\n"
        "Approve writes this change into schema.pbtxt as the next version; Reject keeps the "
        "schema (the same evidence is not proposed again). A reason is recorded with either."
    )
    return {"subject": f"Schema proposal #{p['id']}: {p['title']}", "body": body}


def record_decision(settings: Settings, proposal_id: int, response: dict[str, Any]) -> dict:
    """Apply the HITL response (`HITLOperator`'s return: chosen_options, params_input,
    responded_by_user) through the curator's command. A proposal decided meanwhile by
    `make schema-approve/reject` is left as it is (logged); any other refusal fails the task."""
    [choice] = response["chosen_options"]
    user = response.get("responded_by_user") or {}
    by = user.get("name") or user.get("id") or "airflow"
    reason = (response.get("params_input") or {}).get("reason") or None
    args = ["approve" if choice == APPROVE else "reject", str(proposal_id), "--by", str(by),
            "--via", "airflow"] + (["--reason", str(reason)] if reason else [])  # fmt: skip
    try:
        [p] = run_command(settings, *args)
    except DecisionRefused as exc:
        if "already" not in str(exc):
            raise
        log.warning("proposal #%s: %s", proposal_id, exc)
        return {"proposal_id": proposal_id, "decided": False, "why": str(exc)}
    return {"proposal_id": proposal_id, "decided": True, "status": p["status"],
            "schema_version": p["schema_version"]}  # fmt: skip


def proposals_card(core: Settings, made: list[dict[str, Any]]):
    """One card for the proposals of one run (`alerts.Rendered`): each with its evidence, and
    buttons to the UI's page and to each one's Required Action in Airflow."""
    from pipelines.ingestion.alerts import Rendered
    from pipelines.ingestion.result import Criticality

    lines = [
        f"#{p['id']} {p['title']}: seen in {p['evidence']['files_seen']} of "
        f"{p['evidence']['window_files']} recent files, {p['evidence']['rows']} of "
        f"{p['evidence']['window_rows']} rows"
        for p in made
    ]
    airflow = f"http://127.0.0.1:{core.airflow_port}"
    links = [("Schema proposals (UI)", f"http://127.0.0.1:{core.ui_port}/schema_proposals")] + [
        (f"Decide #{p['id']} in Airflow",
         f"{airflow}/dags/{REVIEW_DAG}/runs/proposal-{p['id']}/tasks/decide/required_actions")
        for p in made[:5]
    ]  # fmt: skip
    title = f"{len(made)} schema change{'s' if len(made) > 1 else ''} proposed"
    facts = [("Decide", "make schema-approve ID / make schema-reject ID, or in Airflow")]
    return Rendered(title, Criticality.LOW, facts, lines, links)


def tell_teams(ps: PipelineSettings, made: list[dict[str, Any]]) -> None:
    """Post the proposals' card (or log it without TEAMS_WEBHOOK_URL). Never raises: the
    proposals are stored and shown in the UI whether Teams heard of them or not."""
    from pipelines.ingestion.alerts import AlertDeliveryError, payload_of, post

    card = proposals_card(ps.core, made)
    if not ps.teams_webhook_url:
        log.warning("no TEAMS_WEBHOOK_URL configured; not sent: %s: %s", card.title, card.lines)
        return
    try:
        post(ps.teams_webhook_url, payload_of(card, ps.teams_format))
    except AlertDeliveryError as exc:
        log.warning("the proposals' card was not delivered: %s", exc)
