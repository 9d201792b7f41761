"""A raw file's life around its ingestion, without Airflow: what raw-data accepts, claims that
wait for their writer, refusals, failed attempts and quarantine, release on evidence of a dead
holder (never on the clock), the archive, durable outputs and safe names.

Real parts: the test PostgreSQL, real processes as claim holders and writers, the warm TFDV
worker where a file must really be validated, a real HTTP receiver for Teams.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg2
import pytest

from mlsys.config import ROOT
from mlsys.db import migrate, psycopg2_dsn
from mlsys.rowchecks import read_raw_csv
from pipelines.config import PipelineSettings, load_pipeline_settings
from pipelines.ingestion import claim, lifecycle, report, split, store, tasks
from pipelines.ingestion.result import Criticality, ValidationResult, reasons_path_for
from pipelines.ingestion.tfdv_worker import validate_via_worker
from tests.conftest import AIRFLOW_PYTHON, fresh_database

pytestmark = pytest.mark.timeout(300)

HOLDER_SCRIPT = (
    "import json, sys, time\n"
    "from pipelines.ingestion.lifecycle import Holder\n"
    "print(json.dumps(Holder.this_process().to_dict()), flush=True)\n"
    "time.sleep(float(sys.argv[1]))\n"
)


@pytest.fixture(scope="module")
def clean(settings) -> pd.DataFrame:
    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False)
    return frame.drop(columns=[settings.target_column])


def pipeline_settings(data_dir: Path, database_url: str, **env: str) -> PipelineSettings:
    return load_pipeline_settings(
        {"DATA_DIR": str(data_dir), "DATABASE_URL": database_url, "INGEST_SETTLE_SECONDS": "0"}
        | env
    )


def holder_process(seconds: float) -> tuple[subprocess.Popen, lifecycle.Holder]:
    """A real process standing for a run: alive for `seconds`, then gone."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(seconds)], cwd=ROOT, stdout=subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(ROOT)}, text=True,
    )  # fmt: skip
    return proc, lifecycle.Holder.from_dict(json.loads(proc.stdout.readline()))


@pytest.fixture(scope="module")
def database_url(pg_server) -> str:
    """A database of this module's own: read_data judges every open claim of the claims table,
    and the Airflow runs of other modules leave claims of theirs in the session's database."""
    url = fresh_database(pg_server, "lifecycle_test")
    migrate(url)
    return url


@pytest.fixture
def dead_holder() -> lifecycle.Holder:
    proc, holder = holder_process(0)
    proc.wait(timeout=30)
    return holder


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def db_rows(database_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


# --- what raw-data accepts --------------------------------------------------------------


def test_any_case_of_csv_is_a_candidate_and_temporary_names_are_ignored(tmp_path: Path):
    for name in ("a.csv", "B.CSV", "c.Csv", ".hidden.csv", "d.csv.part", "e.csv.tmp",
                 "f.csv.crdownload", "~$g.csv", "h.partial"):  # fmt: skip
        (tmp_path / name).write_text("x\n1\n")
    found = claim.scan(tmp_path)
    assert sorted(p.name for p in found.candidates) == ["B.CSV", "a.csv", "c.Csv"]
    assert found.refused == []


def test_a_file_changing_during_the_settle_time_is_not_ready(tmp_path: Path):
    (tmp_path / "still.csv").write_text("a\n1\n")
    (tmp_path / "growing.csv").write_text("a\n1\n")

    def append_while_waiting(seconds: float) -> None:
        with open(tmp_path / "growing.csv", "a") as f:
            f.write("2\n")
        time.sleep(seconds)

    found = claim.settled_scan(tmp_path, 0.2, sleep=append_while_waiting)
    assert [p.name for p in found.candidates] == ["still.csv"]


def test_refused_entries_go_to_bad_data_unopened_with_reasons_rows_and_alerts(
    data_dir: Path, database_url: str, teams, tmp_path: Path
):
    raw = data_dir / "raw-data"
    secret = tmp_path / "secret.csv"
    secret.write_text("must never be read\n")
    (raw / "link.csv").symlink_to(secret)
    os.mkfifo(raw / "pipe.csv")  # opening it for reading would block for ever
    (raw / "folder.csv").mkdir()
    (raw / "notes.txt").write_text("not data\n")
    ps = pipeline_settings(data_dir, database_url, TEAMS_WEBHOOK_URL=teams.url)

    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(tasks.read_data(ps)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "read_data blocked on a fifo"
    assert outcome == [None]  # nothing to claim
    assert names(raw) == [] and names(data_dir / "processing") == []

    bad = data_dir / "bad_data"
    kinds = {}
    for reasons in bad.glob("*.reasons.json"):
        content = json.loads(reasons.read_text())
        moved = bad / content["file"]
        kinds[content["original_name"]] = (content["kind"], os.lstat(moved).st_mode)
    assert {k: v[0] for k, v in kinds.items()} == {
        "link.csv": "symlink", "pipe.csv": "fifo", "folder.csv": "directory",
        "notes.txt": "not_csv",
    }  # fmt: skip
    # Moved as they are: the link is still a link (to the same target), the fifo a fifo.
    assert stat.S_ISLNK(kinds["link.csv"][1]) and stat.S_ISFIFO(kinds["pipe.csv"][1])
    assert secret.read_text() == "must never be read\n"
    rows = db_rows(
        database_url,
        """SELECT original_name, rows_total, criticality, parse_error FROM ingestion_files
           WHERE original_name = ANY(%s)""",
        (list(kinds),),
    )
    assert {r[0] for r in rows} == set(kinds)
    assert all(r[1] == 0 and r[2] == "high" and r[3].startswith("refused: ") for r in rows)
    # Four kinds refused in one run: four problems, told together on one card, not one each.
    [card] = teams.received
    text = json.dumps(card)
    assert "4 problem(s)" in text
    for name in kinds:
        assert f"Ingestion: file refused - {name}" in text


# --- complete files only ------------------------------------------------------------------

WRITER = """
import sys, time
rows, path = sys.stdin.read(), sys.argv[1]
lines = rows.splitlines(keepends=True)
header, body = lines[0], lines[1:]
with open(path, "w") as f:  # written in place, as cp or scp do
    f.write(header)
    for start in range(0, len(body), 100):
        f.write("".join(body[start : start + 100]))
        f.flush()
        time.sleep(0.2)
"""


def test_a_file_written_in_pieces_is_claimed_whole(
    data_dir: Path, database_url: str, clean, tfdv_worker: str
):
    # Ten times the writer's pauses: margin for a loaded machine.
    ps = pipeline_settings(data_dir, database_url, INGEST_SETTLE_SECONDS="2")
    raw_path = data_dir / "raw-data" / "copied.csv"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(raw_path)], stdin=subprocess.PIPE, text=True
    )
    writer.stdin.write(clean.to_csv(index=False))
    writer.stdin.close()
    config = tasks.validation_config(ps)
    claims = 0
    deadline = time.monotonic() + 120
    while writer.poll() is None or raw_path.exists():
        assert time.monotonic() < deadline
        claimed = tasks.read_data(ps)
        if claimed is None:
            continue
        claims += 1
        result = ValidationResult.from_dict(
            validate_via_worker(tfdv_worker, claimed["path"], config, timeout_s=120)
        )
        split.split_file(Path(claimed["path"]), result, ps.core.good_data_dir, ps.core.bad_data_dir)
    assert writer.wait() == 0 and claims == 1
    good = [read_raw_csv(p) for p in (data_dir / "good_data").glob("*.csv")]
    bad = [read_raw_csv(p) for p in (data_dir / "bad_data").glob("*.csv")]
    assert sum(map(len, good)) + sum(map(len, bad)) == len(clean) == 1000


# --- no poison loops ----------------------------------------------------------------------


def test_a_file_failing_n_times_goes_to_bad_data_whole_with_its_errors(
    data_dir: Path, database_url: str, clean, teams, dead_holder
):
    ps = pipeline_settings(data_dir, database_url, TEAMS_WEBHOOK_URL=teams.url,
                           INGEST_MAX_ATTEMPTS="3")  # fmt: skip
    raw = data_dir / "raw-data" / "poison (2).csv"
    clean.iloc[:20].to_csv(raw, index=False)
    content = raw.read_bytes()
    dsn = psycopg2_dsn(database_url)
    for attempt in (1, 2, 3):
        # Each time: released from the previous dead run, claimed again, and its run dies.
        claimed = tasks.read_data(ps, holder=dead_holder)
        assert claimed["original_name"] == "poison (2).csv", attempt
        assert lifecycle.record_error(dsn, claimed["file"], "validate_data", 3, f"boom {attempt}")
        assert names(data_dir / "raw-data") == []
    assert teams.received == []  # failing is not yet quarantine

    assert tasks.read_data(ps, holder=dead_holder) is None  # third failure: quarantined
    assert names(data_dir / "raw-data") == [] and names(data_dir / "processing") == []
    [whole] = (data_dir / "bad_data").glob("*.csv")
    assert whole.read_bytes() == content and whole.name == claimed["file"]
    reasons = json.loads(whole.with_name(whole.stem + ".reasons.json").read_text())
    assert reasons["original_name"] == "poison (2).csv" and reasons["attempts"] == 3
    assert [e["error"] for e in reasons["errors"]] == ["boom 1", "boom 2", "boom 3"]
    [(total, invalid, crit, error)] = db_rows(
        database_url,
        """SELECT rows_total, rows_invalid, criticality, parse_error FROM ingestion_files
           WHERE original_name = %s""",
        ("poison (2).csv",),
    )
    assert (total, invalid, crit) == (
        20,
        20,
        "high",
    ) and "3 of INGEST_MAX_ATTEMPTS=3 attempts failed" in error
    [card] = teams.received
    text = json.dumps(card)
    assert "file quarantined - poison (2).csv" in text and "boom 3" in text

    # Dropped again later (fixed upstream, say): its attempts start from zero.
    raw.write_bytes(content)
    first = tasks.read_data(ps, holder=dead_holder)
    second = tasks.read_data(ps, holder=dead_holder)  # released after one failure, claimed again
    assert second["original_name"] == "poison (2).csv" and second["file"] != first["file"]
    assert names(data_dir / "processing") == [second["file"]]


def test_a_failed_attempt_leaves_no_statistics_of_rows_that_never_landed(
    data_dir: Path, database_url: str, clean, dead_holder
):
    """A file claimed while still being written: its first run saves statistics of the rows
    it saw, then its split fails (more rows now than validated) and the run dies. When the file
    goes back to raw-data, that row goes too; only the attempt that lands is counted."""
    ps = pipeline_settings(data_dir, database_url)
    raw = data_dir / "raw-data" / "growing.csv"
    clean.iloc[:20].to_csv(raw, index=False)
    first = tasks.read_data(ps, holder=dead_holder)
    claimed = Path(first["path"])
    result = ValidationResult(
        file=claimed.name, rows_total=5, rows_invalid=0, criticality=Criticality.NONE
    )
    store.save_statistics(psycopg2_dsn(database_url), result, report_path="growing.html")
    reasons_path_for(claimed).write_text("row\trule\tcolumn\tvalue\n")

    second = tasks.read_data(ps, holder=dead_holder)  # released, then claimed again
    assert second["original_name"] == "growing.csv" and second["file"] != first["file"]
    rows = db_rows(database_url, "SELECT file_name FROM ingestion_files", ())
    assert first["file"] not in {name for (name,) in rows}
    assert names(data_dir / "processing") == [second["file"]]  # no reasons file left behind


# --- claims released on evidence, not on the clock ---------------------------------------


def _set_claim_time(database_url: str, claimed_name: str, when: datetime) -> None:
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
        cur.execute("UPDATE ingestion_claims SET claimed_at = %s WHERE claimed_name = %s",
                    (when, claimed_name))  # fmt: skip


def test_a_slow_live_claim_survives_any_clock_and_a_dead_one_is_released(
    data_dir: Path, database_url: str, clean, dead_holder
):
    ps = pipeline_settings(data_dir, database_url, STALE_CLAIM_MINUTES="1")
    clean.iloc[:10].to_csv(data_dir / "raw-data" / "slow.csv", index=False)
    slow_run, holder = holder_process(600)
    try:
        claimed = tasks.read_data(ps, holder=holder)
        for when in (datetime(1971, 1, 1, tzinfo=UTC), datetime.now(UTC) + timedelta(days=3650)):
            _set_claim_time(database_url, claimed["file"], when)  # the clock jumped
            assert tasks.read_data(ps, holder=dead_holder) is None
            assert names(data_dir / "processing") == [claimed["file"]]
            assert names(data_dir / "raw-data") == []
    finally:
        slow_run.kill()
        slow_run.wait()
    # Its process is gone: released, then claimed again by this run, whatever the claim time.
    again = tasks.read_data(ps, holder=dead_holder)
    assert again["original_name"] == "slow.csv" and again["file"] != claimed["file"]
    assert names(data_dir / "processing") == [again["file"]]
    [(outcome, evidence)] = db_rows(
        database_url, "SELECT outcome, evidence FROM ingestion_claims WHERE claimed_name = %s",
        (claimed["file"],),
    )  # fmt: skip
    assert outcome == "failed" and "is gone" in evidence


def test_an_airflow_run_holds_its_claim_until_it_ends():
    holder = lifecycle.Holder.this_process(dag_id="ingest_data", run_id="r1", try_number=1)
    states = {"r1": "running"}
    assert lifecycle.judge(holder, lambda _d, r: states.get(r)).dead is False
    assert lifecycle.judge(holder, None).dead is None  # outside Airflow: no evidence
    states["r1"] = "failed"
    assert lifecycle.judge(holder, lambda _d, r: states.get(r)).dead is True
    del states["r1"]
    assert lifecycle.judge(holder, lambda _d, r: states.get(r)).dead is True


def test_claims_of_active_runs_are_judged_by_one_question_and_an_ended_run_is_still_released(
    data_dir: Path, database_url: str, clean
):
    """Three runs hold claims: while all are active, one count answers for all of them (no
    question per claim); once one has ended, its claim is released on its own run's state."""
    ps = pipeline_settings(data_dir, database_url)
    holders = [
        lifecycle.Holder.this_process(dag_id="ingest_data", run_id=f"r{i}", try_number=1)
        for i in range(3)
    ]
    claimed = []
    for i, holder in enumerate(holders):
        clean.iloc[i * 5 : i * 5 + 5].to_csv(data_dir / "raw-data" / f"f{i}.csv", index=False)
        claimed.append(tasks.read_data(ps, holder=holder))
    states = {f"r{i}": "running" for i in range(3)}
    asked: list[str] = []
    counted: list[list[str]] = []

    def run_state(dag_id: str, run_id: str) -> str | None:
        asked.append(run_id)
        return states.get(run_id)

    def active_runs(dag_id: str, run_ids: list[str]) -> int:
        counted.append(run_ids)
        return sum(states.get(r) in lifecycle.ACTIVE_RUN_STATES for r in run_ids)

    reader = lifecycle.Holder.this_process(dag_id="ingest_data", run_id="r9", try_number=1)
    assert tasks.read_data(ps, holder=reader, run_state=run_state, active_runs=active_runs) is None
    assert counted == [["r0", "r1", "r2"]] and asked == []
    assert len(names(data_dir / "processing")) == 3
    # r2's split removed its file and r2 ended: counted apart, asked about, its claim done.
    (data_dir / "processing" / claimed[2]["file"]).unlink()
    states["r2"] = "success"
    counted.clear()
    assert tasks.read_data(ps, holder=reader, run_state=run_state, active_runs=active_runs) is None
    assert sorted(counted) == [["r0", "r1"], ["r2"]] and asked == ["r2"]
    [(outcome,)] = db_rows(database_url, "SELECT outcome FROM ingestion_claims "
                           "WHERE claimed_name = %s", (claimed[2]["file"],))  # fmt: skip
    assert outcome == "done"
    states["r1"] = "failed"
    counted.clear()
    asked.clear()
    again = tasks.read_data(ps, holder=reader, run_state=run_state, active_runs=active_runs)
    assert counted == [["r0", "r1"]] and sorted(asked) == ["r0", "r1"]
    assert again["original_name"] == claimed[1]["original_name"]  # released, then claimed
    # A count that cannot be made is no evidence: each run is asked about, as without it.
    states["r9"] = "running"
    asked.clear()

    def broken(dag_id: str, run_ids: list[str]) -> int:
        raise RuntimeError("API server unreachable")

    assert tasks.read_data(ps, holder=reader, run_state=run_state, active_runs=broken) is None
    assert sorted(asked) == ["r0", "r9"]


# --- nothing lost on a crash -----------------------------------------------------------------


def test_the_raw_file_is_archived_and_outlives_the_split(data_dir: Path, database_url: str, clean):
    ps = pipeline_settings(data_dir, database_url, INGEST_ARCHIVE_DAYS="30")
    raw = data_dir / "raw-data" / "kept.csv"
    clean.iloc[:5].assign(loan_id=[f"L{i}" for i in range(5)]).to_csv(raw, index=False)
    content = raw.read_bytes()
    old = ps.archive_dir / claim.claimed_name("old.csv", now=datetime.now(UTC) - timedelta(days=31))
    ps.archive_dir.mkdir(parents=True)
    old.write_text("a\n1\n")

    claimed = tasks.read_data(ps)
    path = Path(claimed["path"])
    archived = ps.archive_dir / claimed["file"]
    assert names(ps.archive_dir) == [claimed["file"]]  # the 31-day-old one was pruned
    result = ValidationResult(
        file=path.name, rows_total=5, rows_invalid=0, criticality=Criticality.LOW,
        unexpected_columns=("loan_id",),
    )  # fmt: skip
    split.split_file(path, result, ps.core.good_data_dir, ps.core.bad_data_dir)
    assert not path.exists()
    assert "loan_id" not in read_raw_csv(ps.core.good_data_dir / path.name).columns
    assert archived.read_bytes() == content  # the dropped column can be recovered


def test_a_split_interrupted_after_its_outputs_is_not_ingested_twice(
    data_dir: Path, database_url: str, clean, teams, dead_holder
):
    ps = pipeline_settings(data_dir, database_url, TEAMS_WEBHOOK_URL=teams.url)
    clean.iloc[:8].to_csv(data_dir / "raw-data" / "half.csv", index=False)
    claimed = tasks.read_data(ps, holder=dead_holder)
    # The split wrote its good output, then the machine died before removing the claim.
    (data_dir / "good_data" / claimed["file"]).write_bytes(Path(claimed["path"]).read_bytes())
    assert tasks.read_data(ps, holder=dead_holder) is None
    assert names(data_dir / "raw-data") == [] and names(data_dir / "processing") == []
    reasons = json.loads(
        (data_dir / "bad_data" / (claimed["file"][:-4] + ".reasons.json")).read_text()
    )
    assert "interrupted after writing" in reasons["reason"]
    assert "quarantined" in json.dumps(teams.received)


# --- names -------------------------------------------------------------------------------

AWKWARD = [
    "loan applications (1).csv", "a#b.csv", "100%.csv", "what?.csv", "zürich é.csv",
    "日本語.csv", "x" * 230 + ".csv", "Data.csv", "data.csv", "--.csv", "a--b.csv",
    "semi;colon&amp.CSV",
]  # fmt: skip


def test_every_file_name_gets_a_safe_unique_report_name_and_claimed_name():
    from service.routes.reports import REPORT_NAME

    reports = [report.report_name(n) for n in AWKWARD]
    assert len({r.lower() for r in reports}) == len(AWKWARD)  # even on case-blind disks
    for name, rep in zip(AWKWARD, reports, strict=True):
        assert REPORT_NAME.match(rep), (name, rep)
        assert len(rep.encode()) <= 120
        claimed = claim.claimed_name(name)
        assert claim.claimed_at(Path(claimed)) is not None and "/" not in claimed
        assert len(claimed.encode()) <= 120 and claimed.count("--") == 1, claimed


def test_awkward_names_are_claimed_and_keep_their_original_name(data_dir: Path, database_url: str):
    ps = pipeline_settings(data_dir, database_url)
    for name in AWKWARD:
        (data_dir / "raw-data" / name).write_text("a\n1\n")
    claims = {}
    while (claimed := tasks.read_data(ps)) is not None:
        assert Path(claimed["path"]).exists()
        claims[claimed["file"]] = claimed["original_name"]
    assert sorted(claims.values()) == sorted(AWKWARD)
    rows = db_rows(
        database_url,
        "SELECT claimed_name, original_name FROM ingestion_claims WHERE claimed_name = ANY(%s)",
        (list(claims),),
    )
    assert dict(rows) == claims


def test_a_claim_made_before_claims_were_recorded_keeps_the_former_clock_rule(
    data_dir: Path, database_url: str
):
    ps = pipeline_settings(data_dir, database_url, STALE_CLAIM_MINUTES="30")
    processing = data_dir / "processing"
    processing.mkdir()
    old = processing / "legacy--20200101T000000-abcdef.csv"  # the former claimed-name format
    recent = processing / claim.claimed_name("recent.csv")
    for path in (old, recent):
        path.write_text("a\n1\n")
    assert tasks.read_data(ps) is not None  # released, then claimed again as a new claim
    assert recent.exists() and not old.exists()


CARD_SCRIPT = """
import sys
from pipelines.config import load_pipeline_settings
from pipelines.ingestion import alert_state, alerts, tasks
ps = load_pipeline_settings(
    {"DATABASE_URL": sys.argv[1], "TEAMS_WEBHOOK_URL": sys.argv[2], "TEAMS_FORMAT": sys.argv[3]}
)
failure = alerts.pipeline_occurrence(
    "predict_new_data.make_predictions", "failure of predict_new_data.make_predictions",
    "manual__1 try 3", "Failed after its retries: ConnectionError <b>",
    link="http://127.0.0.1:8080/log?x=1",
)
cards = tasks.alert(ps, alert_state.Observation((failure,)))
assert [c.kind for c in cards] == ["problem"], cards
assert tasks.alert(ps, alert_state.Observation((failure,))) == []  # the same run: told already
"""


@pytest.mark.parametrize("fmt", ["adaptive", "messagecard"])
def test_the_pipeline_failure_card_reaches_teams_in_either_format(teams, database_url, fmt):
    # In the airflow environment, where the DAGs send it (pymsteams lives there only), through
    # the alert state as the failure callback does.
    subprocess.run([str(AIRFLOW_PYTHON), "-c", CARD_SCRIPT, database_url, teams.url, fmt],
                   cwd=ROOT, check=True, timeout=120)  # fmt: skip
    [card] = teams.received
    text = json.dumps(card)
    assert "predict\\\\_new\\\\_data" in text and "&lt;b&gt;" in text and "<b>" not in text
    assert ("MessageCard" in text) == (fmt == "messagecard")
    assert "http://127.0.0.1:8080/log?x=1" in text  # its link: the task log
