"""Save a file's validation statistics in PostgreSQL, idempotently (keyed by file name)."""

from __future__ import annotations

import psycopg2
from psycopg2.extras import execute_values

from pipelines.ingestion.result import ValidationResult
from pipelines.proposals.evidence import save_evidence

UPSERT_FILE = """
INSERT INTO ingestion_files
    (file_name, rows_total, rows_valid, rows_invalid, criticality, parse_error, report_path,
     report_link, index_link)
VALUES (%(file_name)s, %(rows_total)s, %(rows_valid)s, %(rows_invalid)s, %(criticality)s,
        %(parse_error)s, %(report_path)s, %(report_link)s, %(index_link)s)
ON CONFLICT (file_name) DO UPDATE SET
    rows_total = EXCLUDED.rows_total, rows_valid = EXCLUDED.rows_valid,
    rows_invalid = EXCLUDED.rows_invalid, criticality = EXCLUDED.criticality,
    parse_error = EXCLUDED.parse_error, report_path = EXCLUDED.report_path,
    report_link = EXCLUDED.report_link, index_link = EXCLUDED.index_link
RETURNING id
"""


def save_statistics(
    dsn: str,
    result: ValidationResult,
    *,
    report_path: str | None,
    report_link: str | None = None,
    index_link: str | None = None,
) -> int:
    """One row per file plus its issues and drift, in one transaction: counts only, however
    many rows are bad (the rows themselves are in bad_data). A retried task replaces what a
    previous attempt wrote instead of adding to it. Returns the file's id.

    report_link, index_link: the signed links to the file's report and to the index of
    reports (mlsys/report_links.py), for Grafana's table, which cannot sign them itself."""
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(
                UPSERT_FILE,
                {
                    "file_name": result.file,
                    "rows_total": result.rows_total,
                    "rows_valid": result.rows_valid,
                    "rows_invalid": result.rows_invalid,
                    "criticality": result.criticality.value,
                    "parse_error": result.parse_error,
                    "report_path": report_path,
                    "report_link": report_link,
                    "index_link": index_link,
                },
            )
            file_id = cur.fetchone()[0]
            cur.execute("DELETE FROM data_quality_issues WHERE file_id = %s", (file_id,))
            cur.execute("DELETE FROM feature_drift WHERE file_id = %s", (file_id,))
            save_evidence(cur, file_id, result.evidence)
            execute_values(
                cur,
                """INSERT INTO data_quality_issues
                   (file_id, error_type, column_name, level, row_count, description, example)
                   VALUES %s""",
                [
                    (
                        file_id,
                        i.error_type,
                        i.column,
                        i.level,
                        i.row_count,
                        i.description,
                        i.example,
                    )
                    for i in result.issues
                ],  # fmt: skip
            )
            execute_values(
                cur,
                """INSERT INTO feature_drift
                   (file_id, feature, metric, value, threshold, status, window_rows) VALUES %s""",
                [
                    (file_id, d.feature, d.metric, d.value, d.threshold, d.status, d.window_rows)
                    for d in result.drift
                ],
            )  # fmt: skip
        return int(file_id)
    finally:
        conn.close()
