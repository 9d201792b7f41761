"""An approval writes only what its curator reviewed: a schema edited by hand since the draft
(a new user's finding: the edit was written under the proposal's name) is refused, and an
untouched one is approved. Real PostgreSQL, the real schema text; no TFDV (the draft's edits
are given)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlsys.config import ROOT
from mlsys.schema_versions import read_snapshot
from pipelines.proposals import schema_text as st
from pipelines.proposals.proposals import ProposalError, decide

EDIT = st.Edit(op=st.INSERT_AT_END, block="string_domain", name="purpose",
               lines=("  value: \"crypto\"",))  # fmt: skip


def proposal_on(db_conn, schema: Path, key: str) -> int:
    """A proposal row as `propose` stores it: the edit, its diff against `schema` as it is."""
    text = schema.read_text(encoding="utf-8")
    new_text = st.apply_edits(text, [EDIT])
    with db_conn, db_conn.cursor() as cur:
        cur.execute(
            """INSERT INTO schema_proposals (change_key, change, title, evidence,
                   evidence_fingerprint, diff, new_text, base_sha256)
               VALUES (%s, %s, 'purpose: accept "crypto"', '{}', %s, %s, %s, %s) RETURNING id""",
            (key, json.dumps({"edits": [EDIT.to_dict()]}), key[-1] * 64,
             st.unified_diff(text, new_text, old_name="", new_name=""), new_text,
             read_snapshot(schema).version.sha256),
        )  # fmt: skip
        return cur.fetchone()[0]


@pytest.fixture
def schema(tmp_path: Path) -> Path:
    path = tmp_path / "schema.pbtxt"
    shutil.copyfile(ROOT / "schema" / "schema.pbtxt", path)
    return path


def test_an_untouched_schema_is_approved(db_conn, schema: Path):
    pid = proposal_on(db_conn, schema, "category:purpose:crypto-a")
    decide(db_conn, pid, approve=True, by="ann", reason=None, via="make", schema_path=schema)
    assert 'value: "crypto"' in schema.read_text(encoding="utf-8")


def test_a_schema_edited_by_hand_since_the_draft_is_not_approved(db_conn, schema: Path):
    pid = proposal_on(db_conn, schema, "category:purpose:crypto-b")
    edited = schema.read_text(encoding="utf-8").replace('value: "rich"\n', "", 1)
    assert edited != schema.read_text(encoding="utf-8")
    schema.write_text(edited, encoding="utf-8")
    with pytest.raises(ProposalError, match="changed outside an approval"):
        decide(db_conn, pid, approve=True, by="ann", reason=None, via="make", schema_path=schema)
    assert schema.read_text(encoding="utf-8") == edited  # nothing written
    with db_conn.cursor() as cur:
        cur.execute("SELECT status FROM schema_proposals WHERE id = %s", (pid,))
        assert cur.fetchone() == ("proposed",)
