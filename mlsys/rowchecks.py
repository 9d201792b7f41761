"""Which rows of a raw file are bad, and why: vectorised checks derived from the schema.

TFDV judges a file as a whole (and its example-level validation is far too slow to split
rows), so the ingestion splits rows with these checks, built from the same schema: presence,
string domains, numeric types and ranges, plus duplicated rows. Plain pandas, so it runs in the
`tfdv` environment (pandas 1.5) as well as in `app` (pandas 3).

Files are read with every cell as text, so that a value is judged (and written to good_data or
bad_data) exactly as it was received.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlsys import csvfile
from mlsys.features import FeatureSpec, Kind

# pandas' default NA markers: the same cells TFDV (fed by pd.read_csv) sees as missing.
NA_TOKENS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip

# Row-level rules, in the order they are reported for a cell (first match wins per cell).
MISSING_VALUE = "missing_value"
UNKNOWN_CATEGORY = "unknown_category"
NOT_A_NUMBER = "not_a_number"
NOT_AN_INTEGER = "not_an_integer"
OUT_OF_RANGE = "out_of_range"
DUPLICATE_ROW = "duplicate_row"
# File-level rules (those of a file that cannot be read as a table live in `mlsys.csvfile`).
MISSING_COLUMN = "missing_column"
UNEXPECTED_COLUMN = "unexpected_column"
EMPTY_FILE = csvfile.EMPTY_FILE
UNREADABLE_FILE = csvfile.UNREADABLE_FILE

RULE_DESCRIPTIONS = {
    MISSING_VALUE: "a required feature has no value",
    UNKNOWN_CATEGORY: "the value is not in the feature's domain",
    NOT_A_NUMBER: "a numeric feature holds text",
    NOT_AN_INTEGER: "an integer feature holds a fractional number",
    OUT_OF_RANGE: "the number is outside the schema's range",
    DUPLICATE_ROW: "an exact copy of an earlier row of the same file",
    MISSING_COLUMN: "a required column is absent: no row can be used",
    UNEXPECTED_COLUMN: "a column the schema does not know (dropped from good data)",
    **csvfile.RULE_DESCRIPTIONS,
}


@dataclass(frozen=True)
class Reason:
    row: int  # 0-based data row (header excluded)
    rule: str
    column: str
    value: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RowCheckResult:
    rows_total: int
    reasons: list[Reason] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    unexpected_columns: list[str] = field(default_factory=list)

    @property
    def unusable(self) -> bool:
        """A required column is missing: every row is bad."""
        return bool(self.missing_columns)

    @property
    def bad_rows(self) -> list[int]:
        if self.unusable:
            return list(range(self.rows_total))
        return sorted({r.row for r in self.reasons})

    def counts_by_rule(self) -> dict[tuple[str, str], int]:
        """(rule, column) -> number of distinct rows it affects."""
        rows: dict[tuple[str, str], set[int]] = {}
        for r in self.reasons:
            rows.setdefault((r.rule, r.column), set()).add(r.row)
        counts = {key: len(value) for key, value in rows.items()}
        for column in self.missing_columns:
            counts[(MISSING_COLUMN, column)] = self.rows_total
        for column in self.unexpected_columns:
            counts[(UNEXPECTED_COLUMN, column)] = 0
        return counts


def read_raw_csv(path) -> Any:
    """The text frame of a CSV file (`mlsys.csvfile.read_csv`: every cell a str as received,
    unique column names, RangeIndex); raises `csvfile.CsvRefused` (a ValueError) naming the
    problem for a file that cannot be read as a table."""
    return csvfile.read_csv(path).frame


def check_rows(frame, spec: FeatureSpec) -> RowCheckResult:
    """Judge every row of a text frame (see `read_raw_csv`) against the feature spec."""
    import pandas as pd

    result = RowCheckResult(rows_total=len(frame))
    columns = [str(c) for c in frame.columns]
    result.missing_columns = [f.name for f in spec.features if f.required and f.name not in columns]
    result.unexpected_columns = [c for c in columns if c not in set(spec.names)]
    if result.unusable:
        return result

    for feature in spec.features:
        if feature.name not in columns:
            continue  # optional and absent
        raw = frame[feature.name].astype(str)
        text = raw.str.strip()
        missing = text.isin(NA_TOKENS)
        flagged = missing.copy() if feature.required else pd.Series(False, index=frame.index)
        _add(result, raw, flagged, MISSING_VALUE, feature.name)
        present = ~missing
        if feature.kind is Kind.CATEGORICAL:
            unknown = present & ~text.isin(set(feature.values))
            _add(result, raw, unknown, UNKNOWN_CATEGORY, feature.name)
            continue
        numbers = pd.to_numeric(text.where(present), errors="coerce")
        not_number = present & numbers.isna()
        _add(result, raw, not_number, NOT_A_NUMBER, feature.name)
        ok = present & ~not_number
        if feature.kind is Kind.INTEGER:
            fractional = ok & (numbers != numbers.round())
            _add(result, raw, fractional, NOT_AN_INTEGER, feature.name)
            ok = ok & ~fractional
        low = feature.minimum if feature.minimum is not None else -float("inf")
        high = feature.maximum if feature.maximum is not None else float("inf")
        out = ok & ((numbers < low) | (numbers > high))
        _add(result, raw, out, OUT_OF_RANGE, feature.name)

    duplicated = frame[spec.names].duplicated(keep="first")
    if duplicated.any():
        for row in duplicated[duplicated].index:
            result.reasons.append(Reason(int(row), DUPLICATE_ROW, "", ""))
    result.reasons.sort(key=lambda r: (r.row, r.column, r.rule))
    return result


def _add(result: RowCheckResult, raw, mask, rule: str, column: str) -> None:
    if not mask.any():
        return
    for row, value in raw[mask].items():
        result.reasons.append(Reason(int(row), rule, column, str(value)))
