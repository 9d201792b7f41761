"""The HTML data-quality report of one file: self-contained (opens offline), values escaped."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from mlsys.rowchecks import RULE_DESCRIPTIONS
from pipelines.ingestion.result import ValidationResult

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def report_name(file_name: str) -> str:
    return f"{Path(file_name).stem}.html"


def render_report(result: ValidationResult, *, generated_at: datetime | None = None) -> str:
    """The report's HTML: counts, issues, the first bad rows (the result's sample; the others
    are in bad_data), TFDV anomalies, drift and statistics."""
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
        generated_at=(generated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        bad_rows=bad_rows,
        bad_rows_hidden=0 if result.all_rows_bad else max(result.rows_invalid - len(bad_rows), 0),
        rules=RULE_DESCRIPTIONS,
    )


def write_report(result: ValidationResult, reports_dir: Path) -> Path:
    """Render and write atomically; returns the report's path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / report_name(result.file)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(result), encoding="utf-8")
    os.replace(tmp, path)
    return path
