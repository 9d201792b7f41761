"""Grafana's read-only role as `make up` and docker compose's db-migrate make it
(mlsys.db.provision + sql/grants.sql), on the real embedded server: it reads every application
table, writes nothing, cannot open Airflow's database, and every dashboard query runs as it."""

from __future__ import annotations

import uuid

import psycopg2
import pytest
from psycopg2 import sql

from mlsys.db import RolePlan, apply_grants, migrate, provision


@pytest.fixture(scope="module")
def initialised(pg_server):
    suffix = uuid.uuid4().hex[:8]
    names = {
        "APP_DB_NAME": f"app_{suffix}",
        "AIRFLOW_DB_NAME": f"airflow_{suffix}",
        "GRAFANA_DB_USER": f"reader_{suffix}",
        "GRAFANA_DB_PASSWORD": 'it\'s a "quoted" secret',  # quotes must not break the SQL
    }
    roles = {c: (f"{c}_{suffix}", f"pw-{c}") for c in ("owner", "service", "pipelines", "airflow")}
    roles["reader"] = (names["GRAFANA_DB_USER"], names["GRAFANA_DB_PASSWORD"])
    provision(pg_server.dsn(), RolePlan(names["APP_DB_NAME"], names["AIRFLOW_DB_NAME"], roles))
    owner = roles["owner"]
    owner_url = f"postgresql://{owner[0]}:{owner[1]}@{pg_server.host}:{pg_server.port}/{names['APP_DB_NAME']}"
    migrate(owner_url)  # the tables are created after the role, by the owner
    apply_grants(owner_url, service=roles["service"][0], pipelines=roles["pipelines"][0],
                 reader=roles["reader"][0])  # fmt: skip
    yield names
    admin = psycopg2.connect(pg_server.dsn())
    admin.autocommit = True
    with admin.cursor() as cur:
        for db in (names["APP_DB_NAME"], names["AIRFLOW_DB_NAME"]):
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db))
            )
        for name, _ in roles.values():
            cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
    admin.close()


def _as_reader(pg_server, names, database):
    return psycopg2.connect(
        host=pg_server.host, port=pg_server.port, user=names["GRAFANA_DB_USER"],
        password=names["GRAFANA_DB_PASSWORD"], dbname=database,
    )  # fmt: skip


def test_reader_selects_from_tables_created_after_it(pg_server, initialised):
    conn = _as_reader(pg_server, initialised, initialised["APP_DB_NAME"])
    try:
        with conn.cursor() as cur:
            for table in (
                "predictions",
                "ingestion_files",
                "data_quality_issues",
                "feature_drift",
                "predicted_files",
            ):
                cur.execute(sql.SQL("SELECT COUNT(*) FROM {}").format(sql.Identifier(table)))
                assert cur.fetchone() == (0,)
            cur.execute("SHOW statement_timeout")
            assert cur.fetchone() == ("30s",)
    finally:
        conn.close()


def test_reader_cannot_write(pg_server, initialised):
    conn = _as_reader(pg_server, initialised, initialised["APP_DB_NAME"])
    try:
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.ReadOnlySqlTransaction):
            cur.execute("DELETE FROM predictions")
        conn.rollback()
        conn.autocommit = True  # even outside the read-only default, no privilege to write
        with conn.cursor() as cur:
            cur.execute("SET default_transaction_read_only = off")
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute("DELETE FROM predictions")
    finally:
        conn.close()


def test_reader_cannot_open_airflows_database(pg_server, initialised):
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        _as_reader(pg_server, initialised, initialised["AIRFLOW_DB_NAME"])


def test_every_dashboard_and_alert_query_runs_as_the_reader(pg_server, initialised):
    """Grafana logs in as this role: its grants must cover every table the SQL touches."""
    from datetime import UTC, datetime

    from tests.grafana.grafana_sql import (
        EXPRESSION_UID,
        TimeRange,
        alert_rules,
        dashboard_variables,
        expand,
        load_dashboards,
        panels,
        queries,
    )

    window = TimeRange.last("1h", now=datetime.now(UTC))
    texts = [
        expand(t["rawSql"], window, variables=dashboard_variables(d))
        for d in load_dashboards().values()
        for p in panels(d)
        for t in queries(p)
    ]
    texts += [
        expand(q["model"]["rawSql"], window)
        for _, rule in alert_rules()
        for q in rule["data"]
        if q["datasourceUid"] != EXPRESSION_UID
    ]
    conn = _as_reader(pg_server, initialised, initialised["APP_DB_NAME"])
    try:
        with conn.cursor() as cur:
            for text in texts:
                cur.execute(text)
                cur.fetchall()
    finally:
        conn.close()
    assert len(texts) >= 14
