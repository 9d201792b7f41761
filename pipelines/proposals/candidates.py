"""Which schema changes the evidence of recent files supports: thresholds on share and
persistence, so that injected errors (a few bad rows, one odd file) are never proposed.

The window is the newest `window_files` files judged row by row (`ingestion_files` without a
parse error, with rows). For each possible change (a value for a string domain, a bound of a
range, a new column), against the schema as it is now:

- a **category** or a **range** is proposed when the files showing it are at least
  `min_files` and at least `min_file_share` of the window (persistence), and its rows are at
  least `min_row_share` of all the window's rows (share);
- a range's new bound is the furthest value of those files, leaving out a file whose excess
  over the bound is more than `range_outlier_factor` times the median excess of the files
  (one file with x100 amounts does not set the bound, nor count as evidence);
- a **column** is proposed when every one of the newest `min_files` files has it.

A change with an open proposal is not proposed again. After a rejection, only files ingested
after the decision count for that change: the same evidence never comes back, while new
evidence, as strong as the thresholds ask, may (docs/schema.md). Settings: `ProposalSettings`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from mlsys.config import env_float, env_int
from pipelines.proposals.evidence import ABOVE_MAX, BELOW_MIN, CATEGORY, COLUMN


@dataclass(frozen=True)
class ProposalSettings:
    """The thresholds, from environment variables (defaults and reasoning: .env.example)."""

    window_files: int = 10  # PROPOSAL_WINDOW_FILES
    min_files: int = 5  # PROPOSAL_MIN_FILES
    min_file_share: float = 0.5  # PROPOSAL_MIN_FILE_SHARE
    min_row_share: float = 0.02  # PROPOSAL_MIN_ROW_SHARE
    range_outlier_factor: float = 3.0  # PROPOSAL_RANGE_OUTLIER_FACTOR

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ProposalSettings:
        env = dict(os.environ if env is None else env)
        settings = cls(
            window_files=env_int(env, "PROPOSAL_WINDOW_FILES", 10, low=1, high=100_000),
            min_files=env_int(env, "PROPOSAL_MIN_FILES", 5, low=1, high=100_000),
            min_file_share=env_float(env, "PROPOSAL_MIN_FILE_SHARE", 0.5, low=0.0, high=1.0),
            min_row_share=env_float(env, "PROPOSAL_MIN_ROW_SHARE", 0.02, low=0.0, high=1.0),
            range_outlier_factor=env_float(
                env, "PROPOSAL_RANGE_OUTLIER_FACTOR", 3.0, low=1.0, high=1e6
            ),
        )
        if settings.min_files > settings.window_files:
            from mlsys.config import ConfigError

            raise ConfigError(
                f"PROPOSAL_MIN_FILES={settings.min_files} is above "
                f"PROPOSAL_WINDOW_FILES={settings.window_files}: nothing could be proposed"
            )
        return settings

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class WindowFile:
    file_id: int
    name: str
    rows: int
    ingested_at: datetime


@dataclass(frozen=True)
class Seen:
    """One file's evidence for one change."""

    file: WindowFile
    rows: int
    extreme: float | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decided:
    """What was decided about one change key: an open proposal, the last rejection."""

    open_id: int | None = None
    rejected_at: datetime | None = None


@dataclass(frozen=True)
class Candidate:
    """A change the evidence supports, with that evidence (files, rows, shares)."""

    key: str
    kind: str
    column: str
    value: str
    seen: tuple[Seen, ...]
    window: tuple[WindowFile, ...]
    left_out: tuple[Seen, ...] = ()  # range: files far beyond the others (not evidence)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.seen)

    @property
    def window_rows(self) -> int:
        return sum(f.rows for f in self.window)

    def title(self) -> str:
        if self.kind == CATEGORY:
            return f'{self.column}: accept the value "{self.value}"'
        if self.kind == COLUMN:
            return f"new column {self.column}"
        side = "maximum" if self.kind == ABOVE_MAX else "minimum"
        return f"{self.column}: move the {side} to {_number(self.bound())}"

    def bound(self) -> float:
        values = [s.extreme for s in self.seen if s.extreme is not None]
        return max(values) if self.kind == ABOVE_MAX else min(values)

    def fingerprint(self) -> str:
        """sha256 of the change and the (file, rows) it rests on: the same evidence, the same
        fingerprint, whatever the order it was read in."""
        basis = [self.key, sorted([s.file.name, s.rows] for s in self.seen)]
        return hashlib.sha256(json.dumps(basis).encode()).hexdigest()

    def evidence(self, settings: ProposalSettings) -> dict[str, Any]:
        """What the proposal shows and stores (table schema_proposals, `evidence`)."""
        return {
            "files": [
                {
                    "file": s.file.name,
                    "rows": s.rows,
                    "rows_total": s.file.rows,
                    "share": round(s.rows / s.file.rows, 4) if s.file.rows else 0.0,
                    "ingested_at": s.file.ingested_at.isoformat(),
                    **({"extreme": s.extreme} if s.extreme is not None else {}),
                }
                for s in self.seen
            ],  # fmt: skip
            "left_out": [
                {"file": s.file.name, "rows": s.rows, "extreme": s.extreme} for s in self.left_out
            ],  # fmt: skip
            "files_seen": len(self.seen),
            "window_files": len(self.window),
            "file_share": round(len(self.seen) / len(self.window), 4),
            "rows": self.rows,
            "window_rows": self.window_rows,
            "row_share": round(self.rows / self.window_rows, 4) if self.window_rows else 0.0,
            "thresholds": settings.to_dict(),
        }

    def summary(self) -> str:
        """One line for the schema's comment: '5 of 10 recent files, 25 of 500 rows'."""
        return (
            f"seen in {len(self.seen)} of {len(self.window)} recent files, "
            f"{self.rows} of {self.window_rows} rows"
        )

    def to_request(self, comment: str) -> dict[str, Any]:
        """What the TFDV drafting step needs (pipelines/proposals/draft.py)."""
        request: dict[str, Any] = {"key": self.key, "kind": self.kind, "column": self.column,
                                   "comment": comment}  # fmt: skip
        if self.kind == CATEGORY:
            request["value"] = self.value
        elif self.kind == COLUMN:
            request["detail"] = merged_column_detail([s.detail for s in self.seen])
        else:
            request["extremes"] = [s.extreme for s in self.seen]
        return request


def change_key(kind: str, column: str, value: str = "") -> str:
    return f"{kind}:{column}:{value}" if kind == CATEGORY else f"{kind}:{column}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


WINDOW_SQL = """
SELECT id, file_name, rows_total, ingested_at FROM ingestion_files
WHERE parse_error IS NULL AND rows_total > 0
ORDER BY ingested_at DESC, id DESC
LIMIT %(n)s
"""
EVIDENCE_SQL = """
SELECT file_id, kind, column_name, value, row_count, extreme, detail
FROM schema_evidence WHERE file_id = ANY(%(ids)s)
"""
DECIDED_SQL = """
SELECT change_key,
       min(id) FILTER (WHERE status = 'proposed') AS open_id,
       max(decided_at) FILTER (WHERE status = 'rejected') AS rejected_at
FROM schema_proposals GROUP BY change_key
"""


def read_window(conn, settings: ProposalSettings):
    """(window files newest first, {change key: [Seen]}, {change key: Decided}) from the
    database (psycopg2 connection; reads only)."""
    with conn.cursor() as cur:
        cur.execute(WINDOW_SQL, {"n": settings.window_files})
        window = tuple(WindowFile(int(i), n, int(r), t) for i, n, r, t in cur.fetchall())
        by_id = {f.file_id: f for f in window}
        cur.execute(EVIDENCE_SQL, {"ids": list(by_id)})
        seen: dict[tuple[str, str, str], list[Seen]] = {}
        for file_id, kind, column, value, rows, extreme, detail in cur.fetchall():
            seen.setdefault((kind, column, value), []).append(
                Seen(by_id[file_id], int(rows), extreme, detail or {})
            )
        cur.execute(DECIDED_SQL)
        decided = {k: Decided(o, r) for k, o, r in cur.fetchall()}
    return window, seen, decided


def find_candidates(
    window: tuple[WindowFile, ...],
    seen: dict[tuple[str, str, str], list[Seen]],
    decided: dict[str, Decided],
    schema,
    settings: ProposalSettings,
) -> list[Candidate]:
    """The changes the window's evidence supports against `schema` (a SchemaSnapshot: its
    serving features and every feature name), by the rules of the module docstring."""
    spec = schema.feature_spec()
    features = {f.name: f for f in spec.features}
    all_names = {f.name for f in schema.proto.feature}
    found = []
    for (kind, column, value), items in sorted(seen.items()):
        key = change_key(kind, column, value)
        state = decided.get(key, Decided())
        if state.open_id is not None:
            continue
        if state.rejected_at is not None:  # only evidence newer than the rejection counts
            items = [s for s in items if s.file.ingested_at > state.rejected_at]
        feature = features.get(column)
        if kind == CATEGORY:
            if feature is None or not feature.is_categorical or value in feature.values:
                continue
            candidate = Candidate(key, kind, column, value, tuple(items), window)
        elif kind in (ABOVE_MAX, BELOW_MIN):
            bound = None if feature is None else (
                feature.maximum if kind == ABOVE_MAX else feature.minimum)  # fmt: skip
            if bound is None:
                continue
            beyond = [s for s in items if s.extreme is not None and (
                s.extreme > bound if kind == ABOVE_MAX else s.extreme < bound)]  # fmt: skip
            kept, left_out = _without_outliers(beyond, bound, settings.range_outlier_factor)
            candidate = Candidate(key, kind, column, "", kept, window, left_out)
        elif kind == COLUMN:
            if column in all_names:
                continue
            newest = {f.file_id for f in window[: settings.min_files]}
            have = {s.file.file_id for s in items}
            if len(window) < settings.min_files or not newest <= have:
                continue
            found.append(Candidate(key, kind, column, "", tuple(items), window))
            continue
        else:
            continue
        if _strong_enough(candidate, settings):
            found.append(candidate)
    return found


def _strong_enough(c: Candidate, settings: ProposalSettings) -> bool:
    files = len(c.seen)
    if not c.window or files < max(settings.min_files, 1):
        return False
    if files < math.ceil(settings.min_file_share * len(c.window) - 1e-9):
        return False
    return c.window_rows > 0 and c.rows / c.window_rows >= settings.min_row_share


def _without_outliers(items: list[Seen], bound: float, factor: float):
    """(kept, left out): a file whose excess over the bound is above `factor` times the median
    excess of the files is left out (an injected x100 value is far beyond legitimate ones)."""
    if not items:
        return (), ()
    excess = [abs(s.extreme - bound) for s in items]
    limit = factor * statistics.median(excess)
    kept = tuple(s for s, e in zip(items, excess, strict=True) if e <= limit)
    return kept, tuple(s for s in items if s not in kept)


def merged_column_detail(details: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary of a column over files (pipelines/proposals/evidence.py `_column_summary`):
    numeric only when numeric in every file, values' rows added up."""
    numeric = all(d.get("numeric") for d in details)
    merged: dict[str, Any] = {
        "missing": sum(int(d.get("missing", 0)) for d in details),
        "distinct": max((int(d.get("distinct", 0)) for d in details), default=0),
        "numeric": numeric,
    }
    if numeric:
        merged |= {
            "integer": all(d.get("integer") for d in details),
            "min": min(d["min"] for d in details),
            "max": max(d["max"] for d in details),
        }
    else:
        totals: dict[str, int] = {}
        for d in details:
            for v, n in d.get("values", []):
                totals[str(v)] = totals.get(str(v), 0) + int(n)
            if d.get("numeric"):  # a numeric file among text ones: its bounds as values
                for bound in ("min", "max"):
                    key = _number(d[bound])
                    totals[key] = totals.get(key, 0) + 1
        merged["values"] = [[v, n] for v, n in sorted(totals.items(), key=lambda x: -x[1])]
        merged["distinct"] = max(merged["distinct"], len(totals))
    return merged
