"""What the validation of one file says: the typed value that crosses the task boundary.

`validate_data` (tfdv environment) builds a `ValidationResult`; it travels as one small XCom
(`to_dict`, JSON-ready) and `save_statistics`, `send_alerts` and `split_and_save_data` (airflow
environment) read it back with `from_dict`. Its size does not grow with the file: it carries
counts, the issues, drift and statistics per feature, the first bad rows as a sample for the
report, and a *pointer* to the file holding every bad row's reasons (`reasons_path`, written
beside the claimed file; see `write_reasons` / `iter_reason_chunks`).

`Criticality` is the one criticality type: validation computes it, alerts and the settings
compare it (`ALERT_MIN_CRITICALITY`), and SQL stores it (`criticality_levels`, migration 0002,
in the same order). Standard library only: imported in both environments and at DAG parse time.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from mlsys.rowchecks import REASON_FIELDS, Reason
from mlsys.schema_versions import SchemaVersion
from pipelines.proposals.evidence import Evidence

# The report shows this many bad rows (the first ones); the rest are in bad_data.
SAMPLE_ROWS = 100
# Values quoted in the result (sample, examples) are cut to this many characters, so that one
# huge cell cannot make the XCom large; the reasons file and bad_data keep them whole.
MAX_VALUE_CHARS = 100
REASON_COLUMNS = REASON_FIELDS  # the reasons file's header: row, rule, column, value


class Criticality(StrEnum):
    """How bad a file is, ordered: none < low < medium < high (not alphabetically)."""

    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @classmethod
    def parse(cls, text: str, *, setting: str = "criticality") -> Criticality:
        """'Medium ' -> Criticality.MEDIUM; ValueError naming the allowed levels otherwise."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            allowed = ", ".join(c.value for c in cls)
            raise ValueError(f"{setting}={text!r} must be one of {allowed}") from None

    # A str subclass would otherwise compare alphabetically ('high' < 'low'). A plain string
    # operand is read as a level (and refused if it is none), never compared as text.
    def __lt__(self, other: object) -> bool:
        return self.rank < Criticality(other).rank

    def __le__(self, other: object) -> bool:
        return self.rank <= Criticality(other).rank

    def __gt__(self, other: object) -> bool:
        return self.rank > Criticality(other).rank

    def __ge__(self, other: object) -> bool:
        return self.rank >= Criticality(other).rank


_RANKS = {level: rank for rank, level in enumerate(Criticality)}


def short_value(value: str) -> str:
    """A value as quoted in the result (examples, sample): at most MAX_VALUE_CHARS."""
    return value if len(value) <= MAX_VALUE_CHARS else value[: MAX_VALUE_CHARS - 1] + "\u2026"


@dataclass(frozen=True)
class Issue:
    """One kind of problem in a file: a rule (or TFDV anomaly) on one column ('' = the file)."""

    error_type: str
    column: str
    level: str  # 'row' | 'file'
    row_count: int  # distinct rows it affects (0 for a file-level finding that spares rows)
    description: str
    example: str = ""  # one offending value, cut to MAX_VALUE_CHARS

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Issue:
        return cls(**data)


@dataclass(frozen=True)
class Anomaly:
    """A TFDV anomaly of the file's statistics against the schema."""

    feature: str  # '' for dataset-level anomalies
    types: tuple[str, ...]
    short_description: str
    description: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Anomaly:
        return cls(**(data | {"types": tuple(data["types"])}))


@dataclass(frozen=True)
class Drift:
    """Distance of one feature's recent distribution to training."""

    feature: str
    metric: str  # 'jensen_shannon' | 'l_infinity'
    value: float
    threshold: float
    status: str  # 'ok' | 'drift' | 'insufficient_data'
    window_rows: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Drift:
        return cls(**data)


@dataclass(frozen=True)
class DriftWindow:
    """The rows drift was measured on: this file's valid rows, then the newest good_data files
    (validate.py, DRIFT_WINDOW_ROWS). Drift is a condition of that window, not of the file,
    unless the window is the file's own rows (`own`)."""

    rows: int
    files: int  # files the rows come from, this one included when it gave any
    names: tuple[str, ...]  # their names, this file first, at most WINDOW_NAMES
    own: bool  # only this file's rows: its drift is its own

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftWindow:
        return cls(**(data | {"names": tuple(data["names"])}))


# A drift window names at most this many files (the XCom stays small; `files` counts them all).
WINDOW_NAMES = 10


@dataclass(frozen=True)
class FeatureStats:
    """One feature's statistics in this file beside training's (the report's last table).

    `file` / `training`: None when absent; numeric: {mean, std, min, max, missing};
    categorical: {unique, top: [[value, share], ...], missing}.
    """

    feature: str
    kind: str
    file: dict[str, Any] | None
    training: dict[str, Any] | None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureStats:
        return cls(**data)


@dataclass(frozen=True)
class ValidationResult:
    """The verdict on one claimed file. Rows are 0-based data rows, header excluded.

    Rows conserved: rows_total = rows_valid + rows_invalid, and the bad rows are exactly the
    rows named in the reasons file (or every row, when `file_reasons` is set or the file goes
    to bad_data whole).
    """

    file: str  # the claimed file's name
    rows_total: int
    rows_invalid: int
    criticality: Criticality
    # A required column is missing (or the file has no rows): no row can be used.
    unusable: bool = False
    # Why the file was not read row by row (unreadable, too large); it goes to bad_data whole.
    parse_error: str | None = None
    issues: tuple[Issue, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()
    drift: tuple[Drift, ...] = ()
    # What `drift` was measured on; None when drift was not measured.
    drift_window: DriftWindow | None = None
    feature_stats: tuple[FeatureStats, ...] = ()
    # Columns the schema does not know: dropped from good data.
    unexpected_columns: tuple[str, ...] = ()
    # Reasons that make every row bad (row = -1), e.g. a missing column: not repeated per row.
    file_reasons: tuple[Reason, ...] = ()
    # The first SAMPLE_ROWS bad rows' reasons, values cut to MAX_VALUE_CHARS (for the report).
    sample: tuple[Reason, ...] = ()
    # Every bad row's reasons (row, rule, column, value), sorted by row; None: no per-row file.
    reasons_path: str | None = None
    # Valid rows TFDV judged (statistics, anomalies, drift): all, or a uniform sample.
    tfdv_rows: int = 0
    # What the reader had to interpret (a `sep=` line, a BOM...): shown in the report.
    notes: tuple[str, ...] = field(default=())
    # The schema this file was judged by (read once when the validation started, kept to its
    # end however the file changes meanwhile); None only for a result built without a schema.
    schema_version: SchemaVersion | None = None
    # What the file says about the schema (values outside domains, beyond ranges, unknown
    # columns), bounded per column: what schema proposals are made from (docs/schema.md).
    evidence: tuple[Evidence, ...] = ()

    @property
    def rows_valid(self) -> int:
        return self.rows_total - self.rows_invalid

    @property
    def whole_file_bad(self) -> bool:
        """The file goes to bad_data as it is: it was not read, or it has no data row."""
        return self.parse_error is not None or (self.unusable and self.rows_total == 0)

    @property
    def all_rows_bad(self) -> bool:
        return self.unusable or self.whole_file_bad

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (what the XCom holds)."""
        data = asdict(self)
        data["criticality"] = self.criticality.value
        data["rows_valid"] = self.rows_valid  # derived, for whoever reads the XCom
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationResult:
        data = dict(data)
        valid = data.pop("rows_valid", None)
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown validation result fields: {sorted(unknown)}")
        if valid is not None and valid != data["rows_total"] - data["rows_invalid"]:
            raise ValueError(f"rows_valid={valid} is not rows_total - rows_invalid")
        return cls(
            **data
            | {
                "criticality": Criticality(data["criticality"]),
                "issues": tuple(Issue.from_dict(i) for i in data.get("issues", ())),
                "anomalies": tuple(Anomaly.from_dict(a) for a in data.get("anomalies", ())),
                "drift": tuple(Drift.from_dict(d) for d in data.get("drift", ())),
                "drift_window": (
                    DriftWindow.from_dict(data["drift_window"])
                    if data.get("drift_window")
                    else None
                ),
                "feature_stats": tuple(
                    FeatureStats.from_dict(f) for f in data.get("feature_stats", ())
                ),
                "unexpected_columns": tuple(data.get("unexpected_columns", ())),
                "file_reasons": tuple(Reason(**r) for r in data.get("file_reasons", ())),
                "sample": tuple(Reason(**r) for r in data.get("sample", ())),
                "notes": tuple(data.get("notes", ())),
                "schema_version": (
                    SchemaVersion.from_dict(data["schema_version"])
                    if data.get("schema_version")
                    else None
                ),
                "evidence": tuple(Evidence.from_dict(e) for e in data.get("evidence", ())),
            }
        )

    def sample_by_row(self) -> list[tuple[int, list[Reason]]]:
        """The sample grouped by row, in row order: [(row, [reason, ...]), ...]."""
        rows: dict[int, list[Reason]] = {}
        for reason in self.sample:
            rows.setdefault(reason.row, []).append(reason)
        return sorted(rows.items())


def sample_of(reasons: Iterable[Reason], rows: int = SAMPLE_ROWS) -> tuple[Reason, ...]:
    """The reasons of the first `rows` bad rows (input sorted by row), values cut short."""
    kept: list[Reason] = []
    seen = 0
    last = None
    for r in reasons:
        if r.row != last:
            seen, last = seen + 1, r.row
            if seen > rows:
                break
        kept.append(Reason(r.row, r.rule, r.column, short_value(r.value)))
    return tuple(kept)


# --- the reasons file ------------------------------------------------------------------------


def reasons_path_for(claimed: Path) -> Path:
    """Where the validation of `claimed` writes its per-row reasons: beside it.

    `<stem>.reasons.tsv`: not `*.csv`, so nothing that lists claimed or raw CSV files takes it
    for data.
    """
    return claimed.with_name(f"{claimed.stem}.reasons.tsv")


def write_reasons_rows(path: Path, rows: Iterable[tuple[int, str, str, str]]) -> None:
    """Write (row, rule, column, value) tuples, sorted by row, atomically (temp name, rename).

    A tab-separated file with a header, quoted as CSV where a value needs it (tabs, quotes,
    newlines), so that any cell survives.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(REASON_COLUMNS)
        writer.writerows(rows)
    tmp.replace(path)


def read_reason_chunks(path: Path, chunk_reasons: int = 200_000) -> Iterator[Any]:
    """Stream a reasons file as pandas DataFrames of at most `chunk_reasons` reasons each
    (columns REASON_COLUMNS, `row` as int64, the others as text), in file order."""
    import pandas as pd

    with open(path, newline="", encoding="utf-8") as src:
        header = tuple(next(csv.reader([src.readline().rstrip("\n")], delimiter="\t"), ()))
        if header != REASON_COLUMNS:
            raise ValueError(f"{path.name}: not a reasons file (header {header!r})")
        if not src.read(1):
            return  # a header and no reason
        src.seek(0)
        src.readline()
        reader = pd.read_csv(
            src, sep="\t", names=list(REASON_COLUMNS), header=None, chunksize=chunk_reasons,
            dtype={"row": "int64", "rule": str, "column": str, "value": str},
            keep_default_na=False, na_filter=False,
        )  # fmt: skip
        yield from reader


def iter_reasons(path: Path) -> Iterator[Reason]:
    """Stream a reasons file back, one `Reason` at a time (memory: one line)."""
    with open(path, newline="", encoding="utf-8") as src:
        reader = csv.reader(src, delimiter="\t")
        header = next(reader, None)
        if tuple(header or ()) != REASON_COLUMNS:
            raise ValueError(f"{path.name}: not a reasons file (header {header!r})")
        for row, rule, column, value in reader:
            yield Reason(int(row), rule, column, value)
