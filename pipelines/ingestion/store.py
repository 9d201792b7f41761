"""Save a file's validation statistics in PostgreSQL, idempotently (keyed by file name)."""

from __future__ import annotations

from pathlib import Path

import psycopg2
from psycopg2.extras import execute_values

from mlsys.schema_versions import SchemaVersion, record_schema_version, version_of_text
from pipelines.ingestion.result import ValidationResult
from pipelines.proposals.evidence import save_evidence

UPSERT_FILE = """
INSERT INTO ingestion_files
    (file_name, rows_total, rows_valid, rows_invalid, criticality, parse_error, report_path,
     report_link, index_link, schema_version, schema_sha256)
VALUES (%(file_name)s, %(rows_total)s, %(rows_valid)s, %(rows_invalid)s, %(criticality)s,
        %(parse_error)s, %(report_path)s, %(report_link)s, %(index_link)s, %(schema_version)s,
        %(schema_sha256)s)
ON CONFLICT (file_name) DO UPDATE SET
    rows_total = EXCLUDED.rows_total, rows_valid = EXCLUDED.rows_valid,
    rows_invalid = EXCLUDED.rows_invalid, criticality = EXCLUDED.criticality,
    parse_error = EXCLUDED.parse_error, report_path = EXCLUDED.report_path,
    report_link = EXCLUDED.report_link, index_link = EXCLUDED.index_link,
    schema_version = EXCLUDED.schema_version, schema_sha256 = EXCLUDED.schema_sha256
RETURNING id
"""


def save_statistics(
    dsn: str,
    result: ValidationResult,
    *,
    report_path: str | None,
    report_link: str | None = None,
    index_link: str | None = None,
    schema_path: Path | None = None,
) -> int:
    """One row per file plus its issues and drift, in one transaction: counts only, however
    many rows are bad (the rows themselves are in bad_data). A retried task replaces what a
    previous attempt wrote instead of adding to it. Returns the file's id.

    report_link, index_link: the signed links to the file's report and to the index of
    reports (mlsys/report_links.py), for Grafana's table, which cannot sign them itself.

    The schema version the file was judged by (`result.schema_version`) is recorded in
    `schema_versions` first (the row's foreign key), with its text when the file at
    `schema_path` is still that version (read here; NULL text otherwise)."""
    sv = result.schema_version
    conn = psycopg2.connect(dsn)
    try:
        with conn, conn.cursor() as cur:
            if sv is not None:
                record_schema_version(conn, sv, text=_text_of(schema_path, sv))
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
                    "schema_version": sv.version if sv else None,
                    "schema_sha256": sv.sha256 if sv else None,
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


def _text_of(path: Path | None, sv: SchemaVersion) -> str | None:
    """The schema's text when the file at `path` is still the version `sv`, else None."""
    if path is None:
        return None
    try:
        raw = path.read_bytes()
    except OSError:
        return None
    if version_of_text(raw).sha256 != sv.sha256:
        return None
    return raw.decode("utf-8", errors="replace")
