"""The HTML data-quality report of one file: self-contained (opens offline), values escaped."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from mlsys.rowchecks import RULE_DESCRIPTIONS
from pipelines.ingestion.claim import short_hash, slug
from pipelines.ingestion.result import ValidationResult

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def report_name(file_name: str) -> str:
    """A report's file name for any data file name: `<slug of the stem>-<8 hex>.html`.

    The slug keeps the name readable (ASCII letters, digits, `.`, `_`, `-`, at most 80
    characters), the hash of the whole name keeps names apart that the slug merges (case,
    accents, punctuation, length). The result is a valid URL path segment and file name on
    every system.
    """
    stem = file_name[:-4] if file_name.lower().endswith(".csv") else file_name
    return f"{slug(stem, fallback='report')}-{short_hash(file_name)}.html"


def render_report(
    result: ValidationResult,
    *,
    generated_at: datetime | None = None,
    original_name: str | None = None,
    proposals: tuple[dict, ...] = (),
) -> str:
    """The report's HTML: counts, issues, the first bad rows (the result's sample; the others
    are in bad_data), TFDV anomalies, drift and statistics. `proposals`: the schema proposals
    the file's evidence supports ({id, title, status, decided_by}), one line each."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    bad_rows = result.sample_by_row()
    return env.get_template("report.html.j2").render(
        r=result,
        original_name=original_name,  # the name it arrived under (the result has the claimed one)
        generated_at=(generated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        bad_rows=bad_rows,
        bad_rows_hidden=0 if result.all_rows_bad else max(result.rows_invalid - len(bad_rows), 0),
        rules=RULE_DESCRIPTIONS,
        proposals=proposals,
    )


def write_report(
    result: ValidationResult,
    reports_dir: Path,
    *,
    original_name: str | None = None,
    proposals: tuple[dict, ...] = (),
) -> Path:
    """Render and write atomically; returns the report's path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / report_name(result.file)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(
        render_report(result, original_name=original_name, proposals=proposals), encoding="utf-8"
    )
    os.replace(tmp, path)
    return path
