"""The page of schema proposals: their evidence as a table, their status in a sentence."""

from __future__ import annotations

import pandas as pd

from frontend.api_client import SchemaProposal

# Status filter: label shown -> the API's `status` (None: all).
STATUS_CHOICES: dict[str, str | None] = {
    "open": "proposed",
    "approved": "approved",
    "rejected": "rejected",
    "all": None,
}


def evidence_frame(p: SchemaProposal) -> pd.DataFrame:
    """One row per file the proposal rests on: file, rows, of rows, share (and the furthest
    value, for a range)."""
    rows = [
        {"file": f["file"], "rows": f["rows"], "of rows": f["rows_total"],
         "share": f"{f['share']:.1%}", **({"furthest value": f["extreme"]} if "extreme" in f else {})}
        for f in p.evidence.get("files", [])
    ]  # fmt: skip
    return pd.DataFrame(rows)


def evidence_sentence(p: SchemaProposal) -> str:
    e = p.evidence
    text = (
        f"Seen in {e['files_seen']} of the {e['window_files']} most recent files "
        f"({e['file_share']:.0%}), {e['rows']} of {e['window_rows']} rows ({e['row_share']:.1%})."
    )
    if e.get("left_out"):
        names = ", ".join(f["file"] for f in e["left_out"])
        text += f" Left out as far beyond the others: {names}."
    return text


def decision_sentence(p: SchemaProposal) -> str:
    """How it stands, and what to do when it is open."""
    if p.status == "proposed":
        return (
            f'Open. Approve with `make schema-approve {p.id} REASON="..."`, reject with '
            f"`make schema-reject {p.id}`, or answer it in Airflow (Required Actions, "
            f"run proposal-{p.id} of review_schema_proposal)."
        )
    when = f" on {p.decided_at:%Y-%m-%d %H:%M} UTC" if p.decided_at else ""
    why = f": {p.decided_reason}" if p.decided_reason else ""
    version = f" Schema version {p.schema_version} written." if p.schema_version else ""
    return f"{p.status.capitalize()} by {p.decided_by} via {p.decided_via}{when}{why}.{version}"
