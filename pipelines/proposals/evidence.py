"""What one judged file says about the schema: the evidence proposals are made from.

The row checks flag a value outside a domain, a number beyond a range, a column the schema
does not know; the counts per rule land in `data_quality_issues` with one example each, which
is not enough to propose a change (which values? how far beyond the bound?). This module keeps,
per file, every value outside a string domain with its rows, the furthest value beyond each
side of a range with its rows, and a summary of each unknown column: bounded by MAX_VALUES
values per column, whatever the file's size, so it travels in the validation result and is
stored with the file's statistics (table `schema_evidence`, migration 0010).

Standard library at import time (the result module imports it at DAG parse time); pandas
only inside `file_evidence`, which runs in the validation (tfdv environment).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CATEGORY, ABOVE_MAX, BELOW_MIN, COLUMN = "category", "above_max", "below_min", "column"
KINDS = (CATEGORY, ABOVE_MAX, BELOW_MIN, COLUMN)
# Values kept per column (the most frequent): a new category is frequent by definition; what
# falls beyond these is typos and noise, which is never proposed anyway.
MAX_VALUES = 20
MAX_VALUE_CHARS = 200  # a longer cell is no category anyone curates


@dataclass(frozen=True)
class Evidence:
    """One observation of one file (see the module docstring and migration 0010)."""

    kind: str  # CATEGORY | ABOVE_MAX | BELOW_MIN | COLUMN
    column: str
    rows: int  # rows of the file with this value / beyond this bound / with the column filled
    value: str = ""  # CATEGORY: the value outside the domain (stripped)
    extreme: float | None = None  # ABOVE_MAX / BELOW_MIN: the furthest value
    # COLUMN: numeric, integer, min, max, missing, distinct, values [[value, rows], ...]
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        if data["kind"] not in KINDS:
            raise ValueError(f"unknown evidence kind {data['kind']!r}")
        return cls(**data)


def file_evidence(checks, raw, spec) -> tuple[Evidence, ...]:
    """The evidence of one file from its row checks (`mlsys.rowchecks.RowCheckResult`), its
    text frame and the feature spec it was judged with. Cost: one group-by over the reasons
    of two rules, and one pass over each unknown column."""
    import pandas as pd

    from mlsys import rowchecks

    found: list[Evidence] = []
    table = checks.table
    if table is not None and len(table):
        cats = table[table["rule"] == rowchecks.UNKNOWN_CATEGORY]
        if len(cats):
            values = cats["value"].astype(str).str.strip()
            keep = values.str.len() <= MAX_VALUE_CHARS
            counts = (
                cats[keep].assign(value=values[keep]).groupby(["column", "value"])["row"].nunique()
            )
            for column, group in counts.groupby(level=0):
                top = sorted(((-int(n), str(v)) for (_, v), n in group.items()))[:MAX_VALUES]
                found += [Evidence(CATEGORY, str(column), -n, value=v) for n, v in top]
        beyond = table[table["rule"] == rowchecks.OUT_OF_RANGE]
        for column, group in beyond.groupby("column"):
            feature = spec[column]
            numbers = pd.to_numeric(group["value"].astype(str).str.strip(), errors="coerce")
            rows = group["row"]
            for kind, bound in ((ABOVE_MAX, feature.maximum), (BELOW_MIN, feature.minimum)):
                if bound is None:
                    continue
                side = numbers > bound if kind == ABOVE_MAX else numbers < bound
                if not side.any():
                    continue
                extreme = numbers[side].max() if kind == ABOVE_MAX else numbers[side].min()
                found.append(
                    Evidence(kind, str(column), int(rows[side].nunique()), extreme=float(extreme))
                )
    for column in checks.unexpected_columns:
        found.append(Evidence(COLUMN, str(column), **_column_summary(raw[column])))
    return tuple(found)


def _column_summary(cells) -> dict[str, Any]:
    """Rows filled in, and a summary from which TFDV infers the feature (type, domain); cells
    are read as the row checks read them (`mlsys.rules.convert_texts`)."""
    import numpy as np
    import pandas as pd

    from mlsys import rules

    codes, uniques = pd.factorize(cells.astype(str))
    _, missing, numbers = rules.convert_texts(list(uniques), "float")
    rows_per_value = np.bincount(codes[codes >= 0], minlength=len(uniques))
    filled = ~missing
    numeric = bool(filled.any()) and bool(np.isfinite(numbers[filled]).all())
    detail: dict[str, Any] = {
        "missing": int(rows_per_value[missing].sum()),
        "distinct": int(len({str(u).strip() for u in uniques[filled]})),
        "numeric": numeric,
    }
    if numeric:
        values = numbers[filled]
        detail |= {
            "integer": bool((values == np.round(values)).all()),
            "min": float(values.min()),
            "max": float(values.max()),
        }
    else:
        totals: dict[str, int] = {}
        for value, n in zip(uniques[filled], rows_per_value[filled], strict=True):
            key = str(value).strip()[:MAX_VALUE_CHARS]
            totals[key] = totals.get(key, 0) + int(n)
        top = sorted((-n, v) for v, n in totals.items())[:MAX_VALUES]
        detail["values"] = [[v, -n] for n, v in top]
    return {"rows": int(rows_per_value[filled].sum()), "detail": detail}


def save_evidence(cur, file_id: int, evidence: tuple[Evidence, ...]) -> None:
    """Replace a file's evidence (psycopg2 cursor, inside the caller's transaction: the file's
    statistics are saved in one, and a retried task replaces what an earlier attempt wrote)."""
    import json

    from psycopg2.extras import execute_values

    cur.execute("DELETE FROM schema_evidence WHERE file_id = %s", (file_id,))
    execute_values(
        cur,
        """INSERT INTO schema_evidence
           (file_id, kind, column_name, value, row_count, extreme, detail) VALUES %s""",
        [
            (file_id, e.kind, e.column, e.value, e.rows, e.extreme, json.dumps(e.detail))
            for e in evidence
        ],
    )
