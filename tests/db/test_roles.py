"""The embedded server's access control, on the real server through its real pg_hba.conf:
no login without a password, one role per component that can do its job and nothing more,
secrets 0600, and a data folder from before passwords upgraded in place."""

from __future__ import annotations

import secrets
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from psycopg2 import errors, sql

from mlsys.db import RolePlan, apply_grants, migrate, provision
from ops import pg

APP_DB, AIRFLOW_DB = "roles_app", "roles_airflow"
NAMES = {
    "owner": "mlsys_owner",
    "service": "mlsys_service",
    "pipelines": "mlsys_pipelines",
    "airflow": "mlsys_airflow",
    "reader": "grafana_reader",
}


@pytest.fixture(scope="module")
def plan(pg_server: pg.EmbeddedServer) -> Iterator[RolePlan]:
    plan = RolePlan(
        app_db=APP_DB,
        airflow_db=AIRFLOW_DB,
        roles={c: (name, secrets.token_urlsafe(16)) for c, name in NAMES.items()},
    )
    provision(pg_server.dsn(), plan)
    assert provision(pg_server.dsn(), plan) == []  # a second run changes nothing
    owner_url = _url(pg_server, plan, "owner", APP_DB)
    migrate(owner_url)
    kwargs = {c: NAMES[c] for c in ("service", "pipelines", "reader")}
    apply_grants(owner_url, **kwargs)
    apply_grants(owner_url, **kwargs)  # idempotent
    yield plan
    admin = psycopg2.connect(pg_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        for db in (APP_DB, AIRFLOW_DB):
            cur.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(db)))
    admin.close()


def _url(server: pg.EmbeddedServer, plan: RolePlan, component: str, database: str) -> str:
    name, password = plan.roles[component]
    return f"postgresql://{name}:{password}@{server.host}:{server.port}/{database}"


def _connect(server, plan, component, database=APP_DB):
    conn = psycopg2.connect(_url(server, plan, component, database))
    conn.autocommit = True
    return conn


def _refused(conn, statement: str, params=()) -> bool:
    with conn.cursor() as cur:
        try:
            cur.execute(statement, params)
        except (errors.InsufficientPrivilege, errors.ReadOnlySqlTransaction):
            return True
    return False


PREDICTION = (
    "INSERT INTO predictions (source, features, prediction, probability, model_version) "
    "VALUES ('webapp', '{}', '1', 0.5, 'test') RETURNING id"
)


def test_no_login_without_the_right_password(pg_server, plan):
    base = f"host={pg_server.host} port={pg_server.port} dbname=postgres"
    for user in ("postgres", "mlsys_service"):
        with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
            psycopg2.connect(f"{base} user={user}")
        with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
            psycopg2.connect(f"{base} user={user} password=wrong")
    hba = (pg_server.data_dir / "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
    assert rules and all(r[0] == "host" and r[-1] == "scram-sha-256" for r in rules)
    reader = _connect(pg_server, plan, "reader")
    assert _refused(reader, "SELECT rolpassword FROM pg_authid")  # only superusers see verifiers
    reader.close()
    admin = psycopg2.connect(pg_server.dsn())
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_authid WHERE rolname = ANY(%s) AND "
                    "rolpassword LIKE 'SCRAM-SHA-256$%%'", (list(NAMES.values()) + ["postgres"],))  # fmt: skip
        assert cur.fetchone() == (len(NAMES) + 1,)  # stored as SCRAM verifiers, never in clear
    admin.close()


def test_secret_files_are_private(pg_server):
    path = pg_server.password_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_the_service_stores_predictions_reads_ingested_files_and_nothing_else(pg_server, plan):
    conn = _connect(pg_server, plan, "service")
    try:
        with conn.cursor() as cur:
            cur.execute(PREDICTION)
            (new_id,) = cur.fetchone()
            cur.execute("SELECT count(*) FROM predictions WHERE id = %s", (new_id,))
            assert cur.fetchone() == (1,)
            cur.execute("SELECT nextval('predictions_id_seq')")  # the COPY path takes ids first
            # a scheduled row: its key (0012) is written with the service's own grants, and the
            # same file and row again is refused
            scheduled = (
                "INSERT INTO predictions (source, features, prediction, probability,"
                " model_version, source_file, source_row)"
                " VALUES ('scheduled', '{}', '1', 0.5, 'test', 'roles.csv', 0)"
            )
            cur.execute(scheduled)
            with pytest.raises(psycopg2.errors.UniqueViolation):
                cur.execute(scheduled)
            # The index of reports reads the ingested files (service/routes/report_index.py).
            cur.execute("SELECT count(*) FROM ingestion_files f JOIN data_quality_issues q "
                        "ON q.file_id = f.id JOIN criticality_levels l ON l.level = f.criticality")  # fmt: skip
        for statement in (
            "UPDATE predictions SET prediction = '0'",
            "DELETE FROM predictions",
            "TRUNCATE predictions",
            "DROP TABLE predictions",
            "CREATE TABLE mine (x int)",
            "UPDATE ingestion_files SET rows_total = 0",
            "DELETE FROM data_quality_issues",
            "SELECT * FROM ingestion_claims",
            "INSERT INTO predicted_files (file_name, status, rows) VALUES ('f', 'done', 1)",
            "SELECT * FROM _yoyo_migration",
        ):
            assert _refused(conn, statement), statement
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect(pg_server, plan, "service", AIRFLOW_DB)


def test_the_pipelines_record_files_and_cannot_touch_predictions(pg_server, plan):
    conn = _connect(pg_server, plan, "pipelines")
    try:
        with conn.cursor() as cur:
            upsert = (
                "INSERT INTO ingestion_files (file_name, rows_total, rows_valid, rows_invalid, "
                "criticality) VALUES ('a.csv', 2, 1, 1, 'low') ON CONFLICT (file_name) DO UPDATE "
                "SET rows_total = EXCLUDED.rows_total RETURNING id"
            )
            cur.execute(upsert)
            cur.execute(upsert)  # a retried task updates its row
            (file_id,) = cur.fetchone()
            cur.execute("DELETE FROM data_quality_issues WHERE file_id = %s", (file_id,))
            cur.execute(
                "INSERT INTO data_quality_issues (file_id, error_type, level, row_count) "
                "VALUES (%s, 'x', 'row', 1)",
                (file_id,),
            )
            cur.execute(
                "INSERT INTO predicted_files (file_name, status, rows) VALUES ('g.csv', 'done', 3) "
                "ON CONFLICT (file_name) DO UPDATE SET status = EXCLUDED.status"
            )
        for statement in (
            PREDICTION,
            "SELECT * FROM predictions",
            "DELETE FROM predicted_files",
            "DROP TABLE predicted_files",
        ):
            assert _refused(conn, statement), statement
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect(pg_server, plan, "pipelines", AIRFLOW_DB)


def test_the_pipelines_keep_the_alert_state_with_their_own_role(pg_server, plan):
    """The whole decision (lock, record, tell, prune) as the pipelines' role: its grants
    suffice; the service may not touch the alert state."""
    from datetime import UTC, datetime, timedelta

    from pipelines.ingestion import alert_state

    failure = alert_state.Occurrence(
        "pipeline:ingest_data.read_data", "pipeline", "failure of ingest_data.read_data", "run 1"
    )
    told: list[alert_state.Card] = []

    def deliver(card: alert_state.Card) -> bool:
        told.append(card)
        return True

    conn = psycopg2.connect(_url(pg_server, plan, "pipelines", APP_DB))
    try:
        now = datetime(2026, 12, 1, tzinfo=UTC)
        policy = alert_state.Policy()
        alert_state.process(conn, alert_state.Observation((failure,)), policy, deliver, now=now)
        # 40 days later: resolved, and what was told before ALERT_KEEP_DAYS is pruned.
        alert_state.settle(conn, policy, deliver, now=now + timedelta(days=40))
        with conn.cursor() as cur:
            cur.execute("SELECT kind FROM alert_cards")
            assert cur.fetchall() == [("resolved",)]
    finally:
        conn.close()
    assert [c.kind for c in told] == ["problem", "resolved"]
    service = _connect(pg_server, plan, "service")
    try:
        for table in ("alert_problems", "alert_occurrences", "alert_cards"):
            assert _refused(service, f"SELECT * FROM {table}"), table
    finally:
        service.close()


def test_airflow_owns_its_database_and_cannot_open_the_applications(pg_server, plan):
    conn = _connect(pg_server, plan, "airflow", AIRFLOW_DB)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE metadata_probe (x int)")  # what `airflow db migrate` does
        cur.execute("DROP TABLE metadata_probe")
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect(pg_server, plan, "airflow", APP_DB)


def test_the_reader_reads_and_never_writes(pg_server, plan):
    conn = _connect(pg_server, plan, "reader")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM predictions")
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone() == ("30s",)
        assert _refused(conn, "DELETE FROM predictions")
        with conn.cursor() as cur:
            cur.execute("SET default_transaction_read_only = off")
        assert _refused(conn, "DELETE FROM predictions")  # no privilege either
    finally:
        conn.close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect(pg_server, plan, "reader", AIRFLOW_DB)


def test_a_data_folder_from_before_passwords_is_upgraded(tmp_path: Path):
    """`make up` on a server an earlier version initialised with `trust`: the superuser gets
    its password before the server listens, and the tables move to the owner role."""
    data = tmp_path / "pg"
    data.mkdir()
    user = pg._run_as()
    server = pg.EmbeddedServer(data_dir=data, port=pg.free_port(), state_dir=tmp_path)
    pg._prepare_permissions(server, user)
    done = subprocess.run(
        [pg._bin("initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"],
        capture_output=True, text=True, user=user, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert pg.needs_upgrade(server)
    pg.start(server)
    try:
        pg.wait_until_ready(server.dsn())
        assert not pg.needs_upgrade(server)
        with pytest.raises(psycopg2.OperationalError, match="no password supplied"):
            psycopg2.connect(f"host={server.host} port={server.port} user=postgres dbname=postgres")
        pg.ensure_database(server.dsn(), APP_DB)
        with psycopg2.connect(server.dsn(APP_DB)) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE old (id serial PRIMARY KEY)")  # owned by postgres
        plan = RolePlan(APP_DB, AIRFLOW_DB, {c: (n, "pw-" + c) for c, n in NAMES.items()})
        assert "1 objects of roles_app handed to mlsys_owner" in provision(server.dsn(), plan)
        owner = psycopg2.connect(_url(server, plan, "owner", APP_DB))
        with owner, owner.cursor() as cur:
            cur.execute("ALTER TABLE old ADD COLUMN x int")  # only an owner may
            cur.execute("SELECT nextval('old_id_seq')")
        owner.close()
    finally:
        pg.stop(server)


def test_every_table_has_its_grants_decided(pg_server, plan):
    """A table added by a new migration must say in sql/grants.sql who may use it: without a
    line there, the service and the pipelines get "permission denied" at run time."""
    import re

    from mlsys.db import GRANTS_FILE

    conn = _connect(pg_server, plan, "owner")
    with conn.cursor() as cur:
        cur.execute(
            "SELECT tablename FROM pg_tables t WHERE schemaname = 'public' "
            "AND tablename NOT LIKE '%%yoyo%%' "
            # a partition (predictions by month, 0012) is used through its table's grants
            "AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
            "AND c.relname = t.tablename AND c.relispartition)"
        )
        tables = [name for (name,) in cur.fetchall()]
    conn.close()
    text = GRANTS_FILE.read_text()
    missing = [t for t in tables if not re.search(rf"\b{re.escape(t)}\b", text)]
    assert tables and not missing, f"add grants for {missing} to sql/grants.sql"
