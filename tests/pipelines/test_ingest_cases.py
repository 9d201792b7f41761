"""Files from the outside world through the real `ingest_data` DAG (dag.test(), real TFDV
worker, real database, real HTTP receivers for Teams), and a run that fails: its alert, its
claim held while it runs, its file quarantined once it has ended.

The case files in data/cases/ are copies of the inputs that failed (issue 13)."""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pandas as pd
import psycopg2
import pytest

from mlsys.db import psycopg2_dsn
from mlsys.rowchecks import read_raw_csv
from ops import pg
from tests.pipelines.conftest import finish_dag, run_dag, start_dag
from tests.service.conftest import service_env, start_api

pytestmark = pytest.mark.timeout(900)
CASES = Path(__file__).parent / "data" / "cases"
SUBFOLDERS = ("raw-data", "good_data", "bad_data", "reports")


def visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def ingestion_file(database_url: str, original_name: str) -> dict:
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT id, file_name, rows_total, rows_valid, rows_invalid, report_path, parse_error
               FROM ingestion_files WHERE original_name = %s""",
            (original_name,),
        )
        [row] = cur.fetchall()
        cur.execute(
            "SELECT error_type, column_name, row_count FROM data_quality_issues WHERE file_id = %s",
            (row[0],),
        )
        issues = {(e, c): n for e, c, n in cur.fetchall()}
    keys = ("id", "file", "total", "valid", "invalid", "report", "parse_error")
    return dict(zip(keys, row, strict=True)) | {"issues": issues}


def test_an_upper_case_extension_is_ingested_like_a_lower_case_one(
    dag_env, data_dir, database_url, tmp_path
):
    shutil.copyfile(CASES / "LOANS_EXPORT.CSV", data_dir / "raw-data" / "LOANS_EXPORT.CSV")
    run = run_dag("ingest_data", dag_env, tmp_path / "dag.log")
    assert run.state == "success", run.log[-5000:]
    assert set(run.tasks.values()) == {"success"}, run.tasks
    [good] = (data_dir / "good_data").glob("*.csv")
    assert good.name.startswith("LOANS_EXPORT--") and len(read_raw_csv(good)) == 20
    assert visible(data_dir / "raw-data") == [] and visible(data_dir / "bad_data") == []
    row = ingestion_file(database_url, "LOANS_EXPORT.CSV")
    assert (row["total"], row["valid"], row["invalid"]) == (20, 20, 0)
    # The raw file as received stays in the archive.
    archived = data_dir / "archive" / row["file"]
    assert archived.read_bytes() == (CASES / "LOANS_EXPORT.CSV").read_bytes()


@pytest.fixture(scope="module")
def served(data_root, database_url, trained_model_dir, tmp_path_factory) -> Iterator[tuple]:
    """A real uvicorn of the service, serving the reports of one pipelines data folder."""
    data_dir = data_root / "served"
    for sub in SUBFOLDERS:
        (data_dir / sub).mkdir(parents=True)
    tmp = tmp_path_factory.mktemp("served-api")
    proc, url = start_api(tmp, service_env(database_url, trained_model_dir, data_dir,
                                           pg.free_port()))  # fmt: skip
    yield data_dir, url
    from service import launch

    launch.stop(proc)


def test_a_name_with_spaces_and_parentheses_gets_a_report_link_that_answers(
    dag_env, served, database_url, teams, tmp_path
):
    data_dir, api_url = served
    name = "loan applications (1).csv"
    shutil.copyfile(CASES / name, data_dir / "raw-data" / name)
    env = dag_env | {"DATA_DIR": str(data_dir), "REPORT_BASE_URL": f"{api_url}/reports"}
    run = run_dag("ingest_data", env, tmp_path / "dag.log")
    assert run.state == "success", run.log[-5000:]
    row = ingestion_file(database_url, name)
    assert (row["total"], row["valid"], row["invalid"]) == (20, 19, 1)
    assert row["issues"] == {("unknown_category", "housing"): 1}
    [card] = teams.received
    link = card["attachments"][0]["content"]["actions"][0]["url"]
    # Signed for a person without a token (docs/api.md), percent-encoded, to the safe name.
    assert link.startswith(f"{api_url}/reports/{row['report']}?expires="), link
    answer = httpx.get(link, timeout=30)
    assert answer.status_code == 200, answer.text[:300]
    assert "castle" in answer.text and answer.headers["content-type"].startswith("text/html")
    assert '<code id="original-name">loan applications (1).csv</code>' in answer.text


class BrokenWorker:
    """A TFDV worker stand-in on 127.0.0.1 that thinks for `delay_s`, then answers 500."""

    def __init__(self, delay_s: float) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay_s)
                body = b"validation exploded: MemoryError"
                self.send_response(500)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _card_text(card: dict) -> str:
    return json.dumps(card["attachments"][0]["content"])


def test_a_failing_run_alerts_holds_its_claim_while_it_runs_then_its_file_is_quarantined(
    dag_env, data_dir, database_url, teams, tmp_path, settings
):
    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False)
    raw = data_dir / "raw-data" / "doomed file.csv"
    frame.drop(columns=[settings.target_column]).iloc[:20].to_csv(raw, index=False)
    content = raw.read_bytes()
    broken = BrokenWorker(delay_s=6)
    env = dag_env | {"TFDV_WORKER_URL": broken.url, "INGEST_MAX_ATTEMPTS": "1"}
    try:
        first = start_dag("ingest_data", env, tmp_path / "first.log")
        deadline = time.monotonic() + 180
        while not list((data_dir / "processing").glob("*.csv")):
            assert first.poll() is None and time.monotonic() < deadline, "never claimed"
            time.sleep(0.5)
        [claimed] = (data_dir / "processing").glob("*.csv")
        # The clock jumps: the claim now looks 55 years old. Its run is alive all the same.
        with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE ingestion_claims SET claimed_at = '1971-01-01Z' WHERE claimed_name = %s",
                (claimed.name,),
            )
        second = run_dag("ingest_data", env, tmp_path / "second.log")
        assert first.poll() is None, "the first run ended too soon for this test to mean much"
        assert second.state == "success" and set(second.tasks.values()) == {"skipped"}
        assert [p.name for p in (data_dir / "processing").glob("*.csv")] == [claimed.name]

        run = finish_dag(first, tmp_path / "first.log")
        assert run.state == "failed" and run.tasks["validate_data"] == "failed", run.tasks
        [card] = teams.received
        text = _card_text(card)
        assert "Pipeline: new - failure of ingest\\\\_data.validate\\\\_data" in text, text
        assert "validation exploded" in text and "doomed file.csv" in text

        # Its run has ended: the next run quarantines the file (INGEST_MAX_ATTEMPTS=1).
        third = run_dag("ingest_data", env, tmp_path / "third.log")
        assert third.state == "success" and set(third.tasks.values()) == {"skipped"}
    finally:
        broken.close()
    # processing/ keeps only its hidden journal of settled files (.raw-data-sightings.json)
    assert visible(data_dir / "raw-data") == [] and visible(data_dir / "processing") == []
    whole = data_dir / "bad_data" / claimed.name
    assert whole.read_bytes() == content
    reasons = json.loads(whole.with_name(whole.stem + ".reasons.json").read_text())
    assert reasons["original_name"] == "doomed file.csv"
    assert [e["task"] for e in reasons["errors"]] == ["validate_data"]
    assert "validation exploded" in reasons["errors"][0]["error"]
    row = ingestion_file(database_url, "doomed file.csv")
    assert (row["total"], row["valid"], row["invalid"]) == (20, 0, 20)
    assert "1 of INGEST_MAX_ATTEMPTS=1 attempts failed" in row["parse_error"]
    assert "file quarantined - doomed file.csv" in _card_text(teams.received[1])
