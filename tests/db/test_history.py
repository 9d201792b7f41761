"""`predictions` by month (sql/migrations/0012, mlsys/history.py) on the real embedded server:
the upgrade of a table with rows, months made ahead, the DEFAULT partition, retention while
writers write, and exactly once across months."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from psycopg2 import sql
from yoyo import get_backend, read_migrations

from mlsys import history
from mlsys.config import ConfigError
from mlsys.db import MIGRATIONS_DIR, migrate, psycopg2_dsn
from tests.conftest import fresh_database

PARTITIONED = "0012"
INSERT = """INSERT INTO predictions (created_at, source, features, prediction, probability,
                                     model_version, source_file, source_row)
            VALUES (%s, %s, %s, %s, %s, 'v1', %s, %s) RETURNING id"""


def _migrate_before(url: str, first_excluded: str) -> None:
    backend = get_backend(psycopg2_dsn(url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        backend.apply_migrations(
            backend.to_apply(migrations.filter(lambda m: m.id < first_excluded))
        )


def _insert(cur, at: datetime, *, file: str | None = None, row: int | None = None) -> int:
    source = "webapp" if file is None else "scheduled"
    cur.execute(INSERT, (at, source, '{"age": 30}', "1", 0.75, file, row))
    return cur.fetchone()[0]


def _month(at: datetime) -> str:
    return f"predictions_{at:%Y_%m}"


def _partition_of(cur, pid: int) -> str:
    cur.execute("SELECT tableoid::regclass::text FROM predictions WHERE id = %s", (pid,))
    return cur.fetchone()[0]


@pytest.fixture
def history_db(pg_server):
    """A migrated database of its own (partitions are created and dropped: never shared)."""
    name = f"history_{uuid.uuid4().hex[:8]}"
    url = fresh_database(pg_server, name)
    migrate(url)
    yield url
    admin = psycopg2.connect(pg_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
    admin.close()


def test_upgrade_keeps_every_row_id_grant_and_the_sequence(pg_server):
    url = fresh_database(pg_server, "history_upgrade")
    _migrate_before(url, PARTITIONED)
    role = f"reader_{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    times = [now - timedelta(days=70), now - timedelta(days=35), now]
    with psycopg2.connect(psycopg2_dsn(url)) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
        cur.execute(sql.SQL("GRANT SELECT ON predictions TO {}").format(sql.Identifier(role)))
        # as another migration before 0012 might: an index of its own, a comment
        cur.execute("CREATE INDEX predictions_extra ON predictions (model_version, probability)")
        cur.execute("COMMENT ON COLUMN predictions.features IS 'the request''s record'")
        for i, at in enumerate(times * 3):
            _insert(cur, at, file="old.csv" if i % 2 else None, row=i if i % 2 else None)
        cur.execute("SELECT setval('predictions_id_seq', 1000)")  # ids with a gap keep it
        _insert(cur, now)
        cur.execute("SELECT * FROM predictions ORDER BY id")
        before = cur.fetchall()
    applied = migrate(url)
    assert applied and applied[0].startswith(PARTITIONED)
    with psycopg2.connect(psycopg2_dsn(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT * FROM predictions ORDER BY id")
        assert cur.fetchall() == before
        cur.execute("SELECT relkind FROM pg_class WHERE oid = 'predictions'::regclass")
        assert cur.fetchone() == ("p",)
        cur.execute("SELECT count(*) FROM predictions_before")
        assert cur.fetchone() == (0,)  # every row found its month
        cur.execute("SELECT DISTINCT tableoid::regclass::text FROM predictions")
        assert {r[0] for r in cur.fetchall()} == {_month(t) for t in times}
        assert _insert(cur, now) == 1002  # the sequence goes on
        cur.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'predictions'"
            " AND indexname = 'predictions_extra'"
        )
        assert "(model_version, probability)" in cur.fetchone()[0]
        cur.execute("SELECT col_description('predictions'::regclass, 4)")
        assert cur.fetchone() == ("the request's record",)
        cur.execute("SELECT has_table_privilege(%s, 'predictions', 'SELECT')", (role,))
        assert cur.fetchone() == (True,)
        cur.execute("SELECT count(*) FROM prediction_keys")
        assert cur.fetchone() == (sum(1 for r in before if r[-2] is not None),)
        with pytest.raises(psycopg2.errors.UniqueViolation):
            _insert(cur, now, file="old.csv", row=1)  # stored 70 days ago, in another month
        conn.rollback()
        cur.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_the_constraints_of_the_old_table_hold(history_db):
    with (
        psycopg2.connect(psycopg2_dsn(history_db)) as conn,
        conn.cursor() as cur,
        pytest.raises(psycopg2.errors.CheckViolation, match="predictions_scheduled_has_file"),
    ):
        cur.execute(INSERT, (datetime.now(UTC), "scheduled", "{}", "1", 0.5, None, None))


def test_months_are_created_ahead_and_the_catch_alls_take_the_rest(history_db):
    dsn = psycopg2_dsn(history_db)
    now = datetime.now(UTC)
    with psycopg2.connect(dsn) as conn:
        names = [p.name for p in history.partitions(conn)]
    ahead = [_month(history.month_start(now, k)) for k in range(4)]
    assert names == ["predictions_before", *ahead, "predictions_after"]  # the migration's
    assert history.ensure_partitions(dsn, 3) == []  # idempotent
    assert history.ensure_partitions(dsn, 5) == [
        _month(history.month_start(now, 4)),
        _month(history.month_start(now, 5)),
    ]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        far, old = datetime(2099, 5, 3, tzinfo=UTC), now - timedelta(days=400)
        far_id, old_id = _insert(cur, far), _insert(cur, old, file="f.csv", row=0)
        # no month for them: a catch-all takes each, nothing fails
        assert _partition_of(cur, far_id) == "predictions_after"
        assert _partition_of(cur, old_id) == "predictions_before"
    # months made for old rows: the row moves into its month, with its id and its key
    created = history.ensure_partitions(dsn, 5, since=old)
    assert created[0] == _month(old) and created[-1] == _month(history.month_start(now, -1))
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        assert _partition_of(cur, old_id) == _month(old)
        assert _partition_of(cur, far_id) == "predictions_after"
        with pytest.raises(psycopg2.errors.UniqueViolation):
            _insert(cur, now, file="f.csv", row=0)
        conn.rollback()
        # the bounds still cover every instant, without overlap (ATTACH would refuse one)
        parts = history.partitions(conn)
        assert parts[0].range_from is None and parts[-1].range_to is None
        assert all(a.range_to == b.range_from for a, b in zip(parts, parts[1:], strict=False))


def test_a_catch_all_left_detached_is_attached_back(history_db):
    dsn = psycopg2_dsn(history_db)
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("ALTER TABLE predictions DETACH PARTITION predictions_after CONCURRENTLY")
    conn.close()
    assert history.ensure_partitions(dsn, 3) == []
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        assert history.partitions(conn)[-1].name == "predictions_after"
        assert _partition_of(cur, _insert(cur, datetime(2199, 1, 1, tzinfo=UTC))) == (
            "predictions_after"
        )


def test_a_row_sent_again_next_month_is_not_stored_twice(history_db):
    """Across the month boundary, by any writer, in a whole multi-row statement."""
    before = datetime(2026, 10, 31, 23, 59, 59, 999999, tzinfo=UTC)
    after = before + timedelta(microseconds=1)
    history.ensure_partitions(psycopg2_dsn(history_db), 0, since=before)
    with psycopg2.connect(psycopg2_dsn(history_db)) as conn, conn.cursor() as cur:
        first = _insert(cur, before, file="b.csv", row=7)
        assert _partition_of(cur, first) == "predictions_2026_10"
        conn.commit()
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute(
                "INSERT INTO predictions (created_at, source, features, prediction,"
                " probability, model_version, source_file, source_row) VALUES"
                " (%s, 'scheduled', '{}', '1', 0.5, 'v1', 'b.csv', 8),"
                " (%s, 'scheduled', '{}', '1', 0.5, 'v1', 'b.csv', 7)",
                (after, after),
            )
        conn.rollback()
        cur.execute("SELECT count(*) FROM predictions WHERE source_file = 'b.csv'")
        assert cur.fetchone() == (1,)  # row 8 went with the statement
        with pytest.raises(psycopg2.errors.IntegrityConstraintViolation):
            cur.execute("UPDATE predictions SET created_at = %s WHERE id = %s", (after, first))


def test_retention_drops_old_months_while_writers_write(history_db):
    dsn = psycopg2_dsn(history_db)
    now = datetime.now(UTC)
    old = [now - timedelta(days=31 * k) for k in range(1, 15)]  # 14 months back
    history.ensure_partitions(dsn, 3, since=old[-1])
    with psycopg2.connect(dsn) as conn:
        with conn.cursor() as cur:
            for k, at in enumerate(old):
                for r in range(50):
                    _insert(cur, at, file=f"old-{k}.csv", row=r)
        conn.commit()
    cutoff = history.retention_cutoff(now, 6)
    kept_month = old[2]  # a month kept: writers write there too during the prune
    assert kept_month >= cutoff

    stop = threading.Event()
    errors: list[BaseException] = []
    written = {"now": 0, "kept": 0, "read": 0}

    def writer(name: str, at: datetime | None) -> None:
        try:
            conn = psycopg2.connect(dsn)
            conn.autocommit = True
            with conn.cursor() as cur:
                i = 0
                while not stop.is_set():
                    _insert(cur, at or datetime.now(UTC), file=f"{name}.csv", row=i)
                    written[name] += 1
                    i += 1
            conn.close()
        except BaseException as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    def reader() -> None:
        try:
            conn = psycopg2.connect(dsn)
            conn.autocommit = True
            with conn.cursor() as cur:
                while not stop.is_set():
                    cur.execute(
                        "SELECT id FROM predictions WHERE created_at >= %s"
                        " ORDER BY created_at DESC, id DESC LIMIT 100",
                        (now - timedelta(days=400),),
                    )
                    cur.fetchall()
                    written["read"] += 1
            conn.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [
        threading.Thread(target=writer, args=("now", None)),
        threading.Thread(target=writer, args=("kept", kept_month)),
        threading.Thread(target=reader),
    ]
    for t in threads:
        t.start()
    time.sleep(0.5)
    mid = dict(written)
    report = history.prune(dsn, 6, now=now)
    after_prune = dict(written)
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join(30)
    assert errors == []
    # the writers were not blocked: they went on during and after the prune
    assert after_prune["now"] > mid["now"] and written["now"] > after_prune["now"]
    assert written["read"] > mid["read"]

    dropped = {_month(t) for t in old if t < cutoff}
    assert dropped and set(report.dropped) == dropped
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        names = {p.name for p in history.partitions(conn)}
        assert not names & dropped
        cur.execute("SELECT count(*) FROM pg_class WHERE relname = ANY(%s)", (list(dropped),))
        assert cur.fetchone() == (0,)  # dropped, not left detached
        cur.execute("SELECT count(*) FROM predictions WHERE created_at < %s", (cutoff,))
        assert cur.fetchone() == (0,)
        for k, at in enumerate(old):
            cur.execute(
                "SELECT count(*) FROM predictions WHERE source_file = %s", (f"old-{k}.csv",)
            )
            assert cur.fetchone() == ((0,) if at < cutoff else (50,))
        for name in ("now", "kept"):  # no row of a kept month lost
            cur.execute("SELECT count(*) FROM predictions WHERE source_file = %s", (f"{name}.csv",))
            assert cur.fetchone() == (written[name],)
        cur.execute("SELECT count(*) FROM prediction_keys WHERE created_at < %s", (cutoff,))
        assert cur.fetchone() == (0,)
        # a row of a dropped month may be predicted again (its key went with it) ...
        _insert(cur, now, file="old-13.csv", row=0)
        # ... a row of a kept month may not
        with pytest.raises(psycopg2.errors.UniqueViolation):
            _insert(cur, now, file="old-0.csv", row=0)


def test_an_interrupted_detach_is_finalised(history_db):
    dsn = psycopg2_dsn(history_db)
    now = datetime.now(UTC)
    gone = now - timedelta(days=400)
    history.ensure_partitions(dsn, 0, since=gone)
    # A DETACH CONCURRENTLY cancelled in its second phase leaves the partition pending.
    blocker = psycopg2.connect(dsn)
    with blocker.cursor() as cur:
        cur.execute("SELECT count(*) FROM predictions")  # an open snapshot the detach waits for
    detacher = psycopg2.connect(dsn)
    detacher.autocommit = True
    with detacher.cursor() as cur:
        cur.execute("SET statement_timeout = '300ms'")
        with pytest.raises(psycopg2.errors.QueryCanceled):
            cur.execute(
                sql.SQL("ALTER TABLE predictions DETACH PARTITION {} CONCURRENTLY").format(
                    sql.Identifier(_month(gone))
                )
            )
    detacher.close()
    blocker.close()
    with psycopg2.connect(dsn) as conn:
        pending = [p.name for p in history.partitions(conn) if p.detach_pending]
    assert pending == [_month(gone)]
    report = history.prune(dsn, 12, now=now)
    assert _month(gone) in report.dropped


@pytest.mark.parametrize(
    ("now", "months", "cutoff"),
    [
        (datetime(2026, 12, 15, tzinfo=UTC), 12, datetime(2025, 12, 1, tzinfo=UTC)),
        (datetime(2026, 1, 1, tzinfo=UTC), 1, datetime(2025, 12, 1, tzinfo=UTC)),
        (datetime(2026, 3, 31, 23, tzinfo=UTC), 3, datetime(2025, 12, 1, tzinfo=UTC)),
    ],
)
def test_retention_cutoff(now, months, cutoff):
    assert history.retention_cutoff(now, months) == cutoff


def test_retention_settings():
    assert history.load_history_settings({}) == history.HistorySettings(0, 3)
    assert history.load_history_settings(
        {"PREDICTIONS_RETENTION_MONTHS": "12", "PREDICTIONS_MONTHS_AHEAD": "1"}
    ) == history.HistorySettings(12, 1)
    with pytest.raises(ConfigError, match="PREDICTIONS_RETENTION_MONTHS"):
        history.load_history_settings({"PREDICTIONS_RETENTION_MONTHS": "-1"})


def test_make_migrate_prunes_and_creates_the_months(history_db, monkeypatch, tmp_path):
    """`make up`/`make migrate` (ops.supervisor.database_up) on a server named by DATABASE_URL:
    the months ahead are created and, with a retention, the old ones dropped."""
    from mlsys.config import load_settings
    from ops.supervisor import database_up

    dsn = psycopg2_dsn(history_db)
    now = datetime.now(UTC)
    history.ensure_partitions(dsn, 3, since=now - timedelta(days=500))
    monkeypatch.setenv("PREDICTIONS_RETENTION_MONTHS", "12")
    monkeypatch.setenv("PREDICTIONS_MONTHS_AHEAD", "5")
    settings = load_settings({"DATABASE_URL": history_db, "VAR_DIR": str(tmp_path)})
    message = database_up(settings)
    assert "months of predictions created" in message and "dropped" in message
    with psycopg2.connect(dsn) as conn:
        months = [p for p in history.partitions(conn) if not p.catch_all]
    assert months[0].range_from == history.retention_cutoff(now, 12)
    assert months[-1].range_from == history.month_start(now, 5)
