"""The `ingest_data` DAG end to end with dag.test(): real Airflow, real TFDV (one warm worker
for the session), the real database, a real HTTP receiver standing in for Teams."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import psycopg2
import pytest

from mlsys import report_links
from mlsys.config import get_settings
from mlsys.db import psycopg2_dsn
from mlsys.features import Kind, get_feature_spec
from mlsys.rowchecks import read_raw_csv
from mlsys.schema_versions import read_schema_version
from tests.conftest import REPORT_LINK_KEY
from tests.pipelines.conftest import finish_dag, run_dag, start_dag

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def clean_rows(settings) -> pd.DataFrame:
    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False)
    return frame.drop(columns=[settings.target_column])


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def ingestion_row(database_url: str, stem: str) -> dict:
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT id, file_name, rows_total, rows_valid, rows_invalid, criticality, parse_error,
                      report_path FROM ingestion_files WHERE file_name LIKE %s""",
            (f"{stem}--%",),
        )
        rows = cur.fetchall()
        assert len(rows) == 1, rows
        keys = [
            "id",
            "file_name",
            "total",
            "valid",
            "invalid",
            "criticality",
            "parse_error",
            "report",
        ]
        row = dict(zip(keys, rows[0], strict=True))
        cur.execute(
            "SELECT error_type, column_name, level, row_count FROM data_quality_issues WHERE file_id = %s",
            (row["id"],),
        )
        row["issues"] = {(e, c): (lvl, n) for e, c, lvl, n in cur.fetchall()}
        cur.execute(
            "SELECT feature, status, value FROM feature_drift WHERE file_id = %s", (row["id"],)
        )
        row["drift"] = {f: (s, v) for f, s, v in cur.fetchall()}
    return row


def test_a_clean_file_goes_to_good_data_without_alert(
    dag_env, data_dir, clean_rows, database_url, teams, tmp_path
):
    clean_rows.iloc[:50].to_csv(data_dir / "raw-data" / "clean.csv", index=False)
    run = run_dag("ingest_data", dag_env, tmp_path / "dag.log")
    assert run.state == "success", run.log[-5000:]
    assert set(run.tasks.values()) == {"success"}, run.tasks

    [good] = files(data_dir / "good_data")
    assert good.name.startswith("clean--")
    pd.testing.assert_frame_equal(read_raw_csv(good), clean_rows.iloc[:50].reset_index(drop=True))
    assert files(data_dir / "bad_data") == [] and files(data_dir / "raw-data") == []
    assert files(data_dir / "processing") == []

    row = ingestion_row(database_url, "clean")
    assert (row["total"], row["valid"], row["invalid"], row["criticality"]) == (50, 50, 0, "none")
    assert row["issues"] == {}
    # Always stored, even below the threshold; 50 rows are too few to judge.
    assert set(row["drift"]) == set(get_feature_spec().names)
    assert {s for s, _ in row["drift"].values()} == {"insufficient_data"}
    assert all(v is not None for _, v in row["drift"].values())
    assert teams.received == []  # nothing worth an alert
    report = (data_dir / "reports" / row["report"]).read_text()
    assert 'id="criticality">none<' in report
    # Judged by the schema as it is, named in the row (kept with its text) and in the report.
    sv = read_schema_version(get_settings().schema_path)
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT f.schema_version, f.schema_sha256, v.schema_text FROM ingestion_files f
               JOIN schema_versions v ON v.sha256 = f.schema_sha256 WHERE f.id = %s""",
            (row["id"],),
        )
        assert cur.fetchone() == (sv.version, sv.sha256, get_settings().schema_path.read_text())
    conn.close()
    assert f'id="schema-version" title="sha256 {sv.sha256}">{sv.short}<' in report


def _mixed_file(clean_rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, tuple[str, str]]]:
    """50 rows with one error of each row-level kind, derived from the schema."""
    spec = get_feature_spec()
    frame = clean_rows.iloc[100:150].reset_index(drop=True).copy()
    cat = next(f for f in spec.features if f.kind is Kind.CATEGORICAL)
    num = next(f for f in spec.features if f.kind is Kind.INTEGER and f.minimum and f.minimum > 0)
    other = next(f for f in spec.features if f.kind is Kind.INTEGER and f.name != num.name)
    expected = {
        3: ("unknown_category", cat.name),
        7: ("out_of_range", num.name),
        11: ("not_a_number", other.name),
        19: ("missing_value", cat.name),
        23: ("not_an_integer", num.name),
    }
    frame.loc[3, cat.name] = "<script>alert('x')</script> [click](http://evil.example)"
    frame.loc[7, num.name] = str(int(num.minimum) - 1)
    frame.loc[11, other.name] = "twelve"
    frame.loc[19, cat.name] = ""
    frame.loc[23, num.name] = "33.5"
    frame = pd.concat([frame, frame.iloc[[30]]], ignore_index=True)  # row 50 copies row 30
    expected[50] = ("duplicate_row", "")
    return frame, expected


def test_a_mixed_file_is_split_row_by_row_with_reasons(
    dag_env, data_dir, clean_rows, database_url, teams, tmp_path
):
    frame, expected = _mixed_file(clean_rows)
    frame.to_csv(data_dir / "raw-data" / "mixed.csv", index=False)
    run = run_dag("ingest_data", dag_env, tmp_path / "dag.log")
    assert run.state == "success", run.log[-5000:]

    [good], [bad] = files(data_dir / "good_data"), files(data_dir / "bad_data")
    good_frame, bad_frame = read_raw_csv(good), read_raw_csv(bad)
    assert len(good_frame) + len(bad_frame) == len(frame) == 51
    assert sorted(int(r) for r in bad_frame["_source_row"]) == sorted(expected)
    for _, bad_row in bad_frame.iterrows():
        reasons = json.loads(bad_row["_errors"])
        rule, column = expected[int(bad_row["_source_row"])]
        assert {"rule": rule, "column": column} == {k: reasons[0][k] for k in ("rule", "column")}
    # Good rows are the untouched rows, exactly as received.
    keep = [i for i in range(len(frame)) if i not in expected]
    pd.testing.assert_frame_equal(good_frame, frame.iloc[keep].reset_index(drop=True))
    assert files(data_dir / "processing") == []  # the claimed file and its reasons file

    row = ingestion_row(database_url, "mixed")
    assert (row["total"], row["valid"], row["invalid"]) == (51, 45, 6)
    assert row["criticality"] == "medium"  # 6/51 = 12% bad rows
    assert {(e, c) for e, c in row["issues"]} == {v for v in expected.values()}

    # One card for the file's six new problems (rule and column), each named once.
    [card] = teams.received
    content = card["attachments"][0]["content"]
    assert card["type"] == "message" and content["type"] == "AdaptiveCard"
    text = json.dumps(content)
    facts = {f["title"]: f["value"] for f in content["body"][1]["facts"]}
    assert facts["Criticality"] == "medium" and facts["Rows"] == "51"
    for rule, column in expected.values():
        assert (rule + (f" in {column}" if column else "")).replace("_", "\\\\_") in text
    # The offending value is shown, inert: no raw tag, no live markdown link.
    assert "&lt;script&gt;" in text and "<script>" not in text
    assert "\\\\[click\\\\]" in text and "[click]" not in text
    # A signed, expiring link: the service opens it to a browser without an API token.
    link = urlsplit(content["actions"][0]["url"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == (
        f"http://reports.example/reports/{row['report']}"
    )
    query = dict(parse_qsl(link.query))
    assert report_links.verify(
        row["report"], query["expires"], query["sig"], REPORT_LINK_KEY.encode()
    )
    report = (data_dir / "reports" / row["report"]).read_text()
    assert "<script>alert" not in report and "&lt;script&gt;" in report
    for r in expected:
        assert f"<tr><td>{r}</td>" in report


def test_an_all_bad_file_goes_to_bad_data_and_alerts_as_messagecard(
    dag_env, data_dir, clean_rows, database_url, teams, tmp_path
):
    missing = get_feature_spec().names[-1]
    clean_rows.iloc[:20].drop(columns=[missing]).to_csv(
        data_dir / "raw-data" / "nocol.csv", index=False
    )
    run = run_dag("ingest_data", dag_env | {"TEAMS_FORMAT": "messagecard"}, tmp_path / "dag.log")
    assert run.state == "success", run.log[-5000:]
    assert files(data_dir / "good_data") == []
    [bad] = files(data_dir / "bad_data")
    assert len(read_raw_csv(bad)) == 20
    row = ingestion_row(database_url, "nocol")
    assert (row["valid"], row["invalid"], row["criticality"]) == (0, 20, "high")
    assert row["issues"][("missing_column", missing)] == ("file", 20)
    [card] = teams.received
    assert card["@type"] == "MessageCard" and card["themeColor"] == "C62828"  # high
    assert "missing\\_column in" in card["title"]


def test_an_unparseable_file_is_kept_whole_in_bad_data(
    dag_env, data_dir, clean_rows, database_url, teams, tmp_path
):
    text = clean_rows.iloc[:10].to_csv(index=False).replace("male", "m\u00e4le")
    raw = data_dir / "raw-data" / "latin1.csv"
    raw.write_bytes(text.encode("latin-1"))
    env = dag_env | {"TEAMS_WEBHOOK_URL": ""}  # no webhook: logged, not failed
    run = run_dag("ingest_data", env, tmp_path / "dag.log")
    assert run.state == "success", run.log[-5000:]
    assert run.tasks["send_alerts"] == "success"
    assert "no TEAMS_WEBHOOK_URL configured" in run.log
    [bad, reasons] = files(data_dir / "bad_data")
    assert bad.read_bytes() == text.encode("latin-1")
    assert "not UTF-8" in json.loads(reasons.read_text())["parse_error"]
    row = ingestion_row(database_url, "latin1")
    assert (row["total"], row["invalid"], row["criticality"]) == (10, 10, "high")
    assert "not UTF-8" in row["parse_error"]
    assert teams.received == []


def test_a_file_over_the_size_limit_goes_whole_to_bad_data(
    dag_env, data_dir, clean_rows, database_url, teams, tmp_path
):
    raw = data_dir / "raw-data" / "huge.csv"
    pd.concat([clean_rows] * 25, ignore_index=True).to_csv(raw, index=False)  # 1.2 MB
    content = raw.read_bytes()
    run = run_dag("ingest_data", dag_env | {"INGEST_MAX_FILE_MB": "1"}, tmp_path / "dag.log")
    assert run.state == "success", run.log[-5000:]
    assert files(data_dir / "good_data") == [] and files(data_dir / "processing") == []
    [bad, reasons] = files(data_dir / "bad_data")
    assert bad.read_bytes() == content
    assert json.loads(reasons.read_text())["issues"][0]["error_type"] == "file_too_large"
    row = ingestion_row(database_url, "huge")
    assert (row["total"], row["valid"], row["criticality"]) == (25_000, 0, "high")
    assert row["issues"] == {("file_too_large", ""): ("file", 25_000)}
    assert "INGEST_MAX_FILE_MB" in row["parse_error"]
    [card] = teams.received
    assert "file\\\\_too\\\\_large" in json.dumps(card)


def test_an_empty_folder_skips_the_whole_run(dag_env, tmp_path):
    run = run_dag("ingest_data", dag_env, tmp_path / "dag.log")
    assert run.state == "success"
    assert set(run.tasks.values()) == {"skipped"}, run.tasks


def test_two_runs_at_once_never_take_the_same_file(
    dag_env, data_dir, clean_rows, database_url, tmp_path
):
    for i in range(2):
        clean_rows.iloc[i * 30 : i * 30 + 30].to_csv(
            data_dir / "raw-data" / f"race{i}.csv", index=False
        )
    procs = [
        (start_dag("ingest_data", dag_env, tmp_path / f"{i}.log"), tmp_path / f"{i}.log")
        for i in range(2)
    ]
    runs = [finish_dag(p, log) for p, log in procs]
    assert [r.state for r in runs] == ["success", "success"], [r.log[-3000:] for r in runs]
    good = files(data_dir / "good_data")
    assert sorted(g.name.split("--")[0] for g in good) == ["race0", "race1"]
    assert sum(len(read_raw_csv(g)) for g in good) == 60
    assert (
        ingestion_row(database_url, "race0")["total"]
        == ingestion_row(database_url, "race1")["total"]
        == 30
    )


def test_a_claim_held_by_a_run_airflow_does_not_know_is_released_and_ingested(
    dag_env, data_dir, clean_rows, database_url, tmp_path
):
    """read_data asks the API server about the run holding a claim (runtime.active_runs, then
    runtime.run_state, whose state call gets a 404 for a missing run): that run does not
    exist, so the claim is released and this run ingests the file."""
    from pipelines.ingestion import lifecycle

    name = "orphan--20260101T000000-abcdef.csv"
    (data_dir / "processing").mkdir(exist_ok=True)
    clean_rows.iloc[:20].to_csv(data_dir / "processing" / name, index=False)
    holder = lifecycle.Holder.this_process(dag_id="ingest_data", run_id="never_was", try_number=1)
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn:
        lifecycle.record_claim(conn, name, "orphan.csv", holder)
    run = run_dag("ingest_data", dag_env, tmp_path / "dag.log")
    assert run.state == "success", run.log[-3000:]
    assert run.tasks["split_and_save_data"] == "success", run.tasks
    with psycopg2.connect(psycopg2_dsn(database_url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT outcome, evidence FROM ingestion_claims WHERE claimed_name = %s",
                    (name,))  # fmt: skip
        assert cur.fetchone() == ("failed", "run ingest_data/never_was no longer exists")
    assert [g.name.split("--")[0] for g in files(data_dir / "good_data")] == ["orphan"]
