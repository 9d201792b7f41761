"""The page of schema proposals under Streamlit's AppTest, against the real service and
database: what it shows is what the table holds, read through GET /schema-proposals."""

from __future__ import annotations

import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from frontend import chunked_sending
from frontend.api_client import ApiClient
from tests.frontend.test_pages import use_api  # noqa: F401 (the fixture)

APP = str(Path(chunked_sending.__file__).with_name("app.py"))
EVIDENCE = {
    "files": [
        {"file": f"file-{i}.csv", "rows": 5, "rows_total": 50, "share": 0.1,
         "ingested_at": "2026-12-01T05:00:00+00:00"}
        for i in range(5)
    ],
    "left_out": [], "files_seen": 5, "window_files": 5, "file_share": 1.0, "rows": 25,
    "window_rows": 250, "row_share": 0.1, "thresholds": {},
}  # fmt: skip
DIFF = '--- a\n+++ b\n@@ -1,2 +1,3 @@\n   value: "car"\n+  value: "crypto"\n }\n'


def insert(conn, title: str, key: str, status: str = "proposed", **decided) -> int:
    with conn.cursor() as cur:
        cur.execute(
            """INSERT INTO schema_proposals
               (change_key, change, title, status, evidence, evidence_fingerprint, diff,
                new_text, base_sha256, base_version, decided_by, decided_at, decided_reason,
                decided_via)
               VALUES (%s, '{}', %s, %s, %s, md5(%s) || md5(%s), %s, '', repeat('a', 64), '1',
                       %s, %s, %s, %s) RETURNING id""",
            (key, title, status, json.dumps(EVIDENCE), key, title, DIFF, decided.get("by"),
             decided.get("at"), decided.get("reason"), decided.get("via")),
        )  # fmt: skip
        return cur.fetchone()[0]


def test_the_page_shows_open_proposals_with_their_evidence_and_how_to_decide(
    api_url,
    use_api,  # noqa: F811 (the fixture imported above)
    ui_db,
):
    with ui_db.cursor() as cur:
        cur.execute("TRUNCATE schema_proposals CASCADE")
    open_id = insert(ui_db, 'purpose: accept the value "crypto"', "category:purpose:crypto")
    done_id = insert(ui_db, "age: move the minimum to 16", "below_min:age", "rejected",
                     by="dave", at="2026-12-01T06:00:00Z", reason="a typo", via="make")  # fmt: skip
    use_api(api_url)
    [listed] = ApiClient(api_url).schema_proposals(status="proposed")
    assert listed.id == open_id and listed.evidence["rows"] == 25

    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page("app_pages/schema_proposals.py").run()
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == "Schema proposals"
    [shown] = at.expander
    assert shown.label == f'#{open_id} [proposed] purpose: accept the value "crypto"'
    assert "5 of the 5 most recent files" in " ".join(m.value for m in at.markdown)
    assert f"make schema-approve {open_id}" in " ".join(m.value for m in at.markdown)
    assert '+  value: "crypto"' in at.code[0].value
    assert list(at.dataframe[0].value["rows"]) == [5] * 5

    at.radio(key="proposals_status").set_value("rejected").run()
    [shown] = at.expander
    assert shown.label.startswith(f"#{done_id} [rejected]")
    assert "Rejected by dave via make" in " ".join(m.value for m in at.markdown)
