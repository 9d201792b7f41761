"""Alerts worth reading (issue 15 point 3): a card per distinct problem, a digest in a storm, a
cooldown per problem, a "resolved" card, drift as a condition of the stream, pipeline failures
through the same state, kept in PostgreSQL.

Real parts: the session's PostgreSQL (migrated), a real HTTP receiver standing in for Teams,
real processes and threads for restarts and concurrent runs. The clock is the `now` parameter
of the typed core: minutes pass without sleeping.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import psycopg2
import pytest

from mlsys import report_links
from mlsys.config import ROOT
from mlsys.schema_versions import SchemaVersion
from pipelines.ingestion import alert_state, alerts
from pipelines.ingestion.result import Criticality, Drift, DriftWindow, Issue, ValidationResult
from tests.conftest import APP_PYTHON, REPORT_LINK_KEY

pytestmark = pytest.mark.timeout(300)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = alert_state.Policy(
    cooldown_s=3600, window_s=300, storm_cards=2, digest_min_files=5, resolve_after_s=1800
)
BASE = "http://reports.example/reports"
LINKS = alerts.Links(BASE, REPORT_LINK_KEY.encode())
# Problems of a storm: rules and TFDV anomalies on columns, as the validation names them.
KINDS = [
    ("missing_value", "age"),
    ("unknown_category", "housing"),
    ("out_of_range", "duration"),
    ("not_a_number", "credit_amount"),
    ("tfdv_enum_type_unexpected_string_values", "purpose"),
    ("duplicate_row", ""),
    ("missing_column", "job"),
]


def bad_file(i: int, problems: list[tuple[str, str]], rows: int = 50) -> ValidationResult:
    issues = tuple(
        Issue(rule, column, "row", 3 + j, f"{rule} found", example="x") for j, (rule, column)
        in enumerate(problems)
    )  # fmt: skip
    invalid = sum(i.row_count for i in issues)
    return ValidationResult(
        file=f"file{i}--20261201T0900-{i:06x}.csv", rows_total=rows, rows_invalid=invalid,
        criticality=Criticality.MEDIUM if invalid * 10 >= rows else Criticality.LOW,
        issues=issues,
    )  # fmt: skip


def clean_file(i: int, drift: tuple[Drift, ...] = (), window: DriftWindow | None = None):
    return ValidationResult(
        file=f"clean{i}--20261201T0900-{i:06x}.csv", rows_total=50, rows_invalid=0,
        criticality=Criticality.NONE, drift=drift, drift_window=window,
    )  # fmt: skip


def look(dsn: str, teams, result: ValidationResult, now: datetime) -> list[alert_state.Card]:
    """What send_alerts does for one judged file, at `now`."""
    observation = alerts.file_observation(
        result, minimum=Criticality.LOW, report_name=f"{result.file[:-4]}.html"
    )
    return run(dsn, teams, observation, now)


def run(dsn: str, teams, observation, now: datetime) -> list[alert_state.Card]:
    conn = psycopg2.connect(dsn)  # a new connection each time, as each task has
    try:
        deliver = alerts.teams_delivery(teams.url, "adaptive", LINKS)
        return alert_state.process(conn, observation, POLICY, deliver, now=now)
    finally:
        conn.close()


def settle(dsn: str, teams, now: datetime) -> list[alert_state.Card]:
    return run(dsn, teams, alert_state.Observation(), now)


def card_links(card: dict) -> list[str]:
    return [a["url"] for a in card["attachments"][0]["content"].get("actions", [])]


def card_facts(card: dict) -> dict[str, str]:
    (facts,) = [b for b in card["attachments"][0]["content"]["body"] if b["type"] == "FactSet"]
    return {f["title"]: f["value"] for f in facts["facts"]}


def card_text(card: dict) -> str:
    return json.dumps(card["attachments"][0]["content"])


def assert_links_open(card: dict) -> None:
    """Every card links reports (or their index), each a valid signed link."""
    links = card_links(card)
    assert links, card_text(card)
    for url in links:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        assert f"{parts.scheme}://{parts.netloc}{parts.path}".startswith(BASE + "/"), url
        name = parts.path[len(urlsplit(BASE).path) + 1 :]
        if name:  # a report
            assert name.endswith(".html")
            assert report_links.verify(
                name, query["expires"], query["sig"], REPORT_LINK_KEY.encode()
            )
        else:  # the index
            assert report_links.verify_index(
                query["expires"], query["sig"], REPORT_LINK_KEY.encode()
            )


def test_a_storm_of_20_bad_files_in_5_minutes_gives_at_most_3_cards(fresh_alerts, teams):
    for i in range(20):  # one every 15 s, each with one or two of seven problems
        problems = [KINDS[i % len(KINDS)]] + ([KINDS[(i + 3) % len(KINDS)]] if i % 2 else [])
        look(fresh_alerts, teams, bad_file(i, problems), T0 + timedelta(seconds=15 * i))
    during = list(teams.received)
    assert 1 <= len(during) <= 2, [card_text(c)[:200] for c in during]
    # The window moves on: the rest comes as one digest, and then nothing more.
    for minute in range(5, 16):
        settle(fresh_alerts, teams, T0 + timedelta(minutes=minute))
    assert len(teams.received) == 3
    digest = teams.received[-1]
    text = card_text(digest)
    assert "digest" in text and "Worst files" in text
    for card in teams.received:
        assert_links_open(card)
    # The digest links the index and the worst files' reports, and counts every file told.
    assert any(urlsplit(u).path == "/reports/" for u in card_links(digest))
    told = _rows(fresh_alerts, "SELECT count(DISTINCT source) FROM alert_occurrences "
                               "WHERE card_id IS NOT NULL")  # fmt: skip
    assert told == [(20,)]
    # Every distinct problem was told, none twice as new.
    assert _rows(
        fresh_alerts, "SELECT count(*) FROM alert_problems WHERE last_card_at IS NULL"
    ) == [(0,)]


def test_fifty_clean_files_give_no_card(fresh_alerts, teams):
    window = DriftWindow(rows=300, files=6, names=("a.csv",), own=False)
    ok = (Drift("age", "jensen_shannon", 0.04, 0.1, "ok", 300),)
    for i in range(50):
        look(fresh_alerts, teams, clean_file(i, ok, window), T0 + timedelta(seconds=20 * i))
    settle(fresh_alerts, teams, T0 + timedelta(hours=2))
    assert teams.received == []
    assert _rows(fresh_alerts, "SELECT count(*) FROM alert_problems") == [(0,)]


def test_a_problem_is_told_once_per_cooldown_and_resolved_after_the_quiet_window(
    fresh_alerts, teams
):
    problem = [("unknown_category", "housing")]
    look(fresh_alerts, teams, bad_file(1, problem), T0)
    [first] = teams.received
    assert "new - unknown\\\\_category in housing (TFDV: ENUM\\\\_TYPE" in card_text(first)
    assert_links_open(first)
    # Again and again within the cooldown (past the storm window): no card.
    for i, minutes in enumerate((6, 12, 30, 59), start=2):
        look(fresh_alerts, teams, bad_file(i, problem), T0 + timedelta(minutes=minutes))
    assert len(teams.received) == 1
    # After the cooldown: one reminder with everything seen since.
    look(fresh_alerts, teams, bad_file(9, problem), T0 + timedelta(minutes=61))
    assert len(teams.received) == 2
    reminder = card_text(teams.received[1])
    assert "digest: 5 files, 1 problem(s)" in reminder and "5 file(s)" in reminder
    # Clean files from then on: resolved only once gone for the whole quiet window.
    for minutes in (62, 70, 80):
        look(fresh_alerts, teams, clean_file(minutes), T0 + timedelta(minutes=minutes))
    settle(fresh_alerts, teams, T0 + timedelta(minutes=62 + 29))
    assert len(teams.received) == 2
    settle(fresh_alerts, teams, T0 + timedelta(minutes=62 + 31))
    assert len(teams.received) == 3
    resolved = teams.received[2]
    assert "Resolved: unknown\\\\_category in housing" in card_text(resolved)
    assert_links_open(resolved)
    settle(fresh_alerts, teams, T0 + timedelta(hours=5))
    assert len(teams.received) == 3  # said once


def test_without_files_a_data_problem_is_not_called_resolved(fresh_alerts, teams):
    look(fresh_alerts, teams, bad_file(1, [("missing_value", "age")]), T0)
    settle(fresh_alerts, teams, T0 + timedelta(hours=3))  # nothing judged since: no evidence
    assert len(teams.received) == 1


RESTART = """
import sys
from datetime import datetime
import psycopg2
from mlsys.schema_versions import SchemaVersion
from pipelines.ingestion import alert_state, alerts
from tests.pipelines.test_alerts import LINKS, POLICY, bad_file
from pipelines.ingestion.result import Criticality
dsn, url, now = sys.argv[1], sys.argv[2], datetime.fromisoformat(sys.argv[3])
conn = psycopg2.connect(dsn)
result = bad_file(1, [("out_of_range", "duration")])
obs = alerts.file_observation(result, minimum=Criticality.LOW, report_name="r.html")
cards = alert_state.process(conn, obs, POLICY, alerts.teams_delivery(url, "adaptive", LINKS), now=now)
print(len(cards))
"""


def test_the_state_survives_a_restart(fresh_alerts, teams):
    # Another process tells the channel, and ends.
    done = subprocess.run(
        [str(APP_PYTHON), "-c", RESTART, fresh_alerts, teams.url, T0.isoformat()],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "1" and len(teams.received) == 1
    # This process, with new connections, knows it was told: the cooldown holds.
    look(
        fresh_alerts, teams, bad_file(2, [("out_of_range", "duration")]), T0 + timedelta(minutes=10)
    )
    assert len(teams.received) == 1


def test_concurrent_runs_never_double_post(fresh_alerts, teams):
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def one_run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            look(fresh_alerts, teams, bad_file(i, [("missing_value", "age")]), T0)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=one_run, args=(i,)) for i in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(teams.received) == 1
    assert _rows(fresh_alerts, "SELECT count(*) FROM alert_occurrences") == [(2,)]


def test_drift_is_a_condition_of_the_stream_named_by_its_window(fresh_alerts, teams):
    window = DriftWindow(rows=300, files=6, names=("clean0.csv", "g1.csv", "g2.csv"), own=False)
    drifting = (
        Drift("age", "jensen_shannon", 0.22, 0.1, "drift", 300),
        Drift("housing", "l_infinity", 0.05, 0.15, "ok", 300),
    )
    for i in range(12):  # one clean file a minute, judged with the same drifted window
        look(fresh_alerts, teams, clean_file(i, drifting, window), T0 + timedelta(minutes=i))
    [card] = teams.received
    text = card_text(card)
    assert "Drift in the stream" in text and "drift of age" in text
    assert "COMPARATOR\\\\_JENSEN\\\\_SHANNON\\\\_DIVERGENCE\\\\_HIGH" in text
    assert "300 rows of 6 file(s)" in text and "housing" not in text
    assert_links_open(card)
    # A problem card links its report first, then the index of reports.
    assert card_links(card)[0].split("?")[0].endswith(".html")
    assert urlsplit(card_links(card)[-1]).path == "/reports/"


def test_a_digest_counts_a_file_by_its_own_rows_not_its_drift_window(fresh_alerts, teams):
    """A file judged bad with a drifted window of 300 rows: its digest line says its own 30."""
    window = DriftWindow(rows=300, files=6, names=("a.csv",), own=False)
    drifting = (Drift("age", "jensen_shannon", 0.22, 0.1, "drift", 300),)
    for i in range(8):  # a storm: past the card budget, the rest comes as one digest
        result = bad_file(i, [KINDS[i % len(KINDS)]], rows=30)
        result = dataclasses.replace(result, drift=drifting, drift_window=window)
        look(fresh_alerts, teams, result, T0 + timedelta(seconds=20 * i))
    settle(fresh_alerts, teams, T0 + timedelta(minutes=6))
    texts = [card_text(c) for c in teams.received]
    digest = [t for t in texts if "Worst files" in t]
    assert digest, texts
    assert " of 30 rows" in digest[-1] and " of 300 rows" not in digest[-1], digest[-1]


def test_a_pipeline_failure_storm_is_one_card_then_a_digest(fresh_alerts, teams):
    for i in range(12):  # the TFDV worker is broken: every run fails, one a minute
        occurrence = alerts.pipeline_occurrence(
            "ingest_data.validate_data", "failure of ingest_data.validate_data",
            f"scheduled__{i} try 3", "Failed after its retries: ConnectionError",
            link=f"http://127.0.0.1:8080/log?run={i}",
        )  # fmt: skip
        run(fresh_alerts, teams, alert_state.Observation((occurrence,)), T0 + timedelta(minutes=i))
    assert len(teams.received) == 2, [card_text(c)[:300] for c in teams.received]
    first, digest = (card_text(c) for c in teams.received)
    assert "Pipeline: new - failure of ingest\\\\_data.validate\\\\_data" in first
    assert "digest" in digest and "Log: scheduled" in digest
    assert card_links(teams.received[0]) == ["http://127.0.0.1:8080/log?run=0"]
    # An hour of the same: still no third card until the cooldown has passed.
    for i in range(12, 50):
        occurrence = alerts.pipeline_occurrence(
            "ingest_data.validate_data", "failure of ingest_data.validate_data",
            f"scheduled__{i} try 3", "Failed", link="http://127.0.0.1:8080/log",
        )  # fmt: skip
        run(fresh_alerts, teams, alert_state.Observation((occurrence,)), T0 + timedelta(minutes=i))
    assert len(teams.received) == 2


def test_a_delivery_failure_loses_nothing(fresh_alerts, teams):
    teams.status = 500
    with pytest.raises(alerts.AlertDeliveryError, match="500"):
        look(fresh_alerts, teams, bad_file(1, [("missing_value", "age")]), T0)
    assert _rows(fresh_alerts, "SELECT count(*) FROM alert_cards") == [(0,)]
    teams.status = 202
    teams.received.clear()
    settle(fresh_alerts, teams, T0 + timedelta(minutes=1))  # the next run tells it
    [card] = teams.received
    assert "missing\\\\_value in age" in card_text(card)


def test_below_the_minimum_a_problem_is_present_but_not_told(fresh_alerts, teams):
    result = bad_file(1, [("missing_value", "age")])
    assert result.criticality is Criticality.LOW
    obs = alerts.file_observation(result, minimum=Criticality.MEDIUM, report_name="r.html")
    assert obs.occurrences == () and obs.present == {"data_quality:missing_value:age"}
    run(fresh_alerts, teams, obs, T0)
    assert teams.received == []


def _rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql)
        rows = cur.fetchall()
    conn.close()
    return rows


def test_the_task_glue_writes_each_report_and_links_the_ones_it_tells(
    fresh_alerts, teams, database_url, tmp_path
):
    """send_alerts as the DAG calls it (real settings, reports written): a burst of 20 bad
    files makes at most the storm budget of cards, and every link names a written report."""
    from pipelines.config import load_pipeline_settings
    from pipelines.ingestion import tasks

    ps = load_pipeline_settings({
        "DATA_DIR": str(tmp_path), "DATABASE_URL": database_url, "TEAMS_WEBHOOK_URL": teams.url,
        "REPORT_BASE_URL": BASE,
    })  # fmt: skip
    outcomes = [
        tasks.send_alerts(ps, bad_file(i, [KINDS[i % len(KINDS)]]).to_dict()) for i in range(20)
    ]
    assert all(len(o["problems"]) == 1 for o in outcomes)
    assert 1 <= len(teams.received) <= ps.alert_policy.storm_cards
    reports = {p.name for p in (tmp_path / "reports").glob("*.html")}
    assert len(reports) == 20
    for card in teams.received:
        assert_links_open(card)
        for url in card_links(card):
            name = urlsplit(url).path.rsplit("/", 1)[1]
            assert not name or name in reports, url


def test_cards_name_the_schema_versions_their_files_were_judged_by(fresh_alerts, teams):
    """Issue 16: a card says which schema judged its files; a digest across an approval names
    both versions. The version is recorded with each occurrence."""
    old = SchemaVersion("3", "a" * 64)
    new = SchemaVersion("4", "b" * 64)
    first = dataclasses.replace(bad_file(0, [KINDS[0]]), schema_version=old)
    look(fresh_alerts, teams, first, T0)
    [card] = teams.received
    assert card_facts(card)["Schema"] == alerts.escape(old.short), card_text(card)
    # A storm spanning an approval: the digest lists both versions, oldest first.
    for i in range(1, 8):
        sv = old if i < 4 else new
        look(fresh_alerts, teams, dataclasses.replace(bad_file(i, [KINDS[i % 3]]),
                                                      schema_version=sv), T0 + timedelta(seconds=i))  # fmt: skip
    settle(fresh_alerts, teams, T0 + timedelta(minutes=6))
    digest = card_facts(teams.received[-1])
    assert digest["Schema"] == alerts.escape(f"{old.short}, {new.short}"), digest
    with psycopg2.connect(fresh_alerts) as conn, conn.cursor() as cur:
        cur.execute("SELECT DISTINCT schema_version, schema_sha256 FROM alert_occurrences")
        assert set(cur.fetchall()) == {("3", "a" * 64), ("4", "b" * 64)}
    conn.close()
