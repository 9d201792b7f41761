"""The HTML data-quality report of one file: self-contained (opens offline), values escaped."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlsys.rowchecks import RULE_DESCRIPTIONS
from pipelines.ingestion.claim import short_hash, slug

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
MAX_BAD_ROWS_SHOWN = 200


def report_name(file_name: str) -> str:
    """A report's file name for any data file name: `<slug of the stem>-<8 hex>.html`.

    The slug keeps the name readable (ASCII letters, digits, `.`, `_`, `-`, at most 80
    characters), the hash of the whole name keeps names apart that the slug merges (case,
    accents, punctuation, length). The result is a valid URL path segment and file name on
    every system.
    """
    stem = file_name[:-4] if file_name.lower().endswith(".csv") else file_name
    return f"{slug(stem, fallback='report')}-{short_hash(file_name)}.html"


def render_report(result: dict[str, Any], *, generated_at: datetime | None = None) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    bad_rows = sorted(result["bad_rows"].items(), key=lambda kv: int(kv[0]))
    return env.get_template("report.html.j2").render(
        r=result,
        generated_at=(generated_at or datetime.now(UTC)).isoformat(timespec="seconds"),
        bad_rows=bad_rows[:MAX_BAD_ROWS_SHOWN],
        bad_rows_hidden=max(len(bad_rows) - MAX_BAD_ROWS_SHOWN, 0),
        rules=RULE_DESCRIPTIONS,
    )


def write_report(result: dict[str, Any], reports_dir: Path) -> Path:
    """Render and write atomically; returns the report's path."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / report_name(result["file"])
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(result), encoding="utf-8")
    os.replace(tmp, path)
    return path
