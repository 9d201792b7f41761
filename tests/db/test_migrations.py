import re

import psycopg2
import pytest

from mlsys.db import migrate, psycopg2_dsn
from tests.conftest import fresh_database

TABLES = {
    "predictions",
    "ingestion_files",
    "data_quality_issues",
    "feature_drift",
    "predicted_files",
}


def test_migrations_apply_once_then_are_a_no_op(pg_server):
    url = fresh_database(pg_server, "migrations_twice")
    first = migrate(url)
    assert first and first[0].startswith("0001")
    assert migrate(url) == []
    with psycopg2.connect(psycopg2_dsn(url)) as conn, conn.cursor() as cur:
        cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = {row[0] for row in cur.fetchall()}
    assert tables >= TABLES


def _insert_scheduled(cur, row: int):
    cur.execute(
        """INSERT INTO predictions (source, features, prediction, probability, model_version,
                                    source_file, source_row)
           VALUES ('scheduled', '{}', '1', 0.9, 'v1', 'f.csv', %s)""",
        (row,),
    )


def test_a_scheduled_file_row_is_stored_once(db_conn):
    with db_conn.cursor() as cur:
        _insert_scheduled(cur, 0)
        with pytest.raises(psycopg2.errors.UniqueViolation):
            _insert_scheduled(cur, 0)


@pytest.mark.parametrize(
    "values",
    [
        ("scheduled", None, None),  # scheduled without its file
        ("webapp", "f.csv", 1),  # webapp with a file
        ("batch", None, None),  # unknown source
    ],
)
def test_prediction_constraints(db_conn, values):
    source, file, row = values
    with db_conn.cursor() as cur, pytest.raises(psycopg2.errors.CheckViolation):
        cur.execute(
            """INSERT INTO predictions (source, features, prediction, probability, model_version,
                                        source_file, source_row)
               VALUES (%s, '{}', '1', 0.5, 'v1', %s, %s)""",
            (source, file, row),
        )


def test_ingestion_rows_must_add_up(db_conn):
    with db_conn.cursor() as cur, pytest.raises(psycopg2.errors.CheckViolation):
        cur.execute(
            """INSERT INTO ingestion_files (file_name, rows_total, rows_valid, rows_invalid, criticality)
               VALUES ('a.csv', 10, 5, 4, 'low')"""
        )


def test_past_predictions_query_uses_the_source_time_index(db_conn):
    with db_conn.cursor() as cur:
        cur.execute("SET enable_seqscan = off")
        cur.execute(
            """EXPLAIN SELECT id FROM predictions
               WHERE source = 'webapp' AND created_at >= now() - interval '1 day'
               ORDER BY created_at DESC, id DESC LIMIT 100"""
        )
        plan = "\n".join(r[0] for r in cur.fetchall())
        # predictions is partitioned by month (0012): each month's scan uses its own part of
        # the index, whose parent is the index of the table.
        used = re.findall(r" using (\S+) on ", plan)
        cur.execute(
            "SELECT DISTINCT inhparent::regclass::text FROM pg_inherits"
            " WHERE inhrelid = ANY(%s::regclass[])",
            (used,),
        )
        parents = {name for (name,) in cur.fetchall()}
    assert used and parents == {"predictions_source_time"}, plan
