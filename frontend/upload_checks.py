"""An uploaded CSV, read and checked completely before anything is sent.

The features always come from the API's /model-info (as `mlsys.features.Feature`), never from
a list typed here. A file is checked whole (columns, then every value against the feature's
kind, domain and range, with the same rules as the API) so that a bad file is refused with the
rows and columns at fault, instead of being half-sent chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlsys import csvfile
from mlsys.features import Feature, Kind

# How many invalid values are listed one by one; the summary still counts all of them.
MAX_LISTED_PROBLEMS = 200


@dataclass(frozen=True)
class CellProblem:
    """One value at fault. `row` counts data rows from 1 (the first line after the header)."""

    row: int
    column: str
    value: str
    message: str


class CsvError(ValueError):
    """An uploaded file that cannot be predicted; `str()` names the problem for the user, and
    `notes` says what the reader normalised on the way (a skipped hint line, ...)."""

    def __init__(
        self,
        message: str,
        problems: Sequence[CellProblem] = (),
        total: int = 0,
        notes: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.problems = list(problems)
        self.total = total or len(self.problems)
        self.notes = list(notes)


@dataclass
class ParsedBatch:
    """A checked CSV: `frame` holds typed values in feature order, `records` what the API takes,
    `notes` what the reader normalised (shown to the user before anything is sent)."""

    frame: pd.DataFrame
    records: list[dict[str, Any]] = field(repr=False)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.records)


def read_csv_text(data: bytes, *, max_bytes: int) -> csvfile.CsvTable:
    """Raw bytes -> the file as a table of text, read by the ingestion's reader
    (`mlsys.csvfile`: a `sep=` line, trailing delimiters, blank lines...), refusing what is too
    large, what the reader refuses (its reason, naming the line, as a sentence), or no rows."""
    if len(data) > max_bytes:
        raise CsvError(
            f"The file is {len(data) / 1024 / 1024:.1f} MB, over the limit of "
            f"{max_bytes / 1024 / 1024:.0f} MB. Split it into smaller files."
        )
    try:
        table = csvfile.read_csv(data)
    except csvfile.CsvRefused as exc:
        raise CsvError(_sentence(exc.reason), notes=exc.notes) from None
    if not table.rows_total:
        raise CsvError("The file has a header but no rows.", notes=table.notes)
    return table


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def check_columns(header: Sequence[str], features: Sequence[Feature]) -> None:
    """Refuse missing and extra columns, naming them (the API takes exactly the features)."""
    names = [f.name for f in features]
    missing = [n for n in names if n not in header and _required(features, n)]
    extra = [h for h in header if h not in names]
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(f"missing column{'s' if len(missing) > 1 else ''}: {', '.join(missing)}")
    if extra:
        parts.append(f"unexpected column{'s' if len(extra) > 1 else ''}: {', '.join(extra)}")
    hint = ""
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        hint = " The header has a single column: is the file separated by commas?"
    raise CsvError(
        f"The columns do not match the model's features ({'; '.join(parts)}). "
        f"Expected: {', '.join(names)}.{hint}"
    )


def _required(features: Sequence[Feature], name: str) -> bool:
    return next(f.required for f in features if f.name == name)


def number_text(value: float) -> str:
    """A bound as the user wrote it in the schema: 18, not 18.0; 0.5 stays 0.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _check_column(feature: Feature, raw: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Typed values, a mask of bad cells, and the message of each bad cell."""
    messages = pd.Series("", index=raw.index, dtype="object")
    empty = raw == ""
    if feature.required:
        messages[empty] = "missing value"
    if feature.is_categorical:
        bad_domain = ~empty & ~raw.isin(feature.values)
        allowed = ", ".join(feature.values)
        messages[bad_domain] = raw[bad_domain].map(lambda v: f"{v!r} is not one of: {allowed}")
        values = raw.where(~empty, None).astype("object")
        return values, messages != "", messages
    numbers = pd.to_numeric(raw.where(~empty), errors="coerce")
    kind_name = "an integer" if feature.kind is Kind.INTEGER else "a number"
    not_number = ~empty & ~pd.Series(np.isfinite(numbers.to_numpy(float)), index=raw.index)
    messages[not_number] = raw[not_number].map(lambda v: f"{v!r} is not {kind_name}")
    ok = ~empty & ~not_number
    if feature.kind is Kind.INTEGER:
        fractional = ok & (numbers % 1 != 0)
        messages[fractional] = raw[fractional].map(lambda v: f"{v!r} is not {kind_name}")
        ok &= ~fractional
    if feature.minimum is not None:
        low = ok & (numbers < feature.minimum)
        lo = number_text(feature.minimum)
        messages[low] = raw[low].map(lambda v: f"{v} is below the minimum {lo}")
    if feature.maximum is not None:
        high = ok & (numbers > feature.maximum)
        hi = number_text(feature.maximum)
        messages[high] = raw[high].map(lambda v: f"{v} is above the maximum {hi}")
    bad = messages != ""
    cast = int if feature.kind is Kind.INTEGER else float
    # Python ints and floats with None for a gap: what JSON needs (numpy types and NaN are not).
    values = pd.Series(
        [None if x != x else cast(x) for x in numbers.tolist()],  # x != x: NaN
        index=raw.index,
        dtype="object",
    )
    return values, bad, messages


def check_values(text: pd.DataFrame, features: Sequence[Feature]) -> pd.DataFrame:
    """Every value of a text frame (see `read_csv_text`) against its feature; returns the typed
    frame, indexed by row number from 1, or raises with every problem."""
    index = pd.RangeIndex(1, len(text) + 1)  # row numbers as the user counts them
    raw = {
        name: pd.Series(text[name].astype(object).str.strip().to_numpy(), index=index)
        for name in text.columns
    }
    typed: dict[str, pd.Series] = {}
    problems: list[CellProblem] = []
    total = 0
    for feature in features:
        column = raw[feature.name] if feature.name in raw else pd.Series("", index=index)
        values, bad, messages = _check_column(feature, column)
        typed[feature.name] = values
        total += int(bad.sum())
        for row in bad[bad].index[: MAX_LISTED_PROBLEMS - len(problems)]:
            problems.append(CellProblem(int(row), feature.name, column[row], messages[row]))
    if total:
        problems.sort(key=lambda p: (p.row, p.column))
        raise CsvError(describe_problems(problems, total), problems, total)
    return pd.DataFrame(typed, index=index)


def describe_problems(problems: Sequence[CellProblem], total: int | None = None) -> str:
    """One sentence: how many values are invalid, in which columns and rows."""
    total = total if total is not None else len(problems)
    by_column: dict[str, list[int]] = {}
    for p in problems:
        by_column.setdefault(p.column, []).append(p.row)
    rows = {p.row for p in problems}
    parts = []
    for column, column_rows in by_column.items():
        listed = ", ".join(str(r) for r in column_rows[:5])
        more = ", ..." if len(column_rows) > 5 else ""
        parts.append(f"{column} (row{'s' if len(column_rows) > 1 else ''} {listed}{more})")
    listed_note = "" if total == len(problems) else f" (the first {len(problems)} are listed)"
    return (
        f"{total} invalid value{'s' if total != 1 else ''}{listed_note} in "
        f"{len(rows)}{'+' if total > len(problems) else ''} row{'s' if len(rows) != 1 else ''}: "
        + "; ".join(parts)
        + ". Nothing was sent."
    )


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Typed frame -> JSON-ready records (Python ints, floats, strings; None when missing)."""
    columns = list(frame.columns)
    return [dict(zip(columns, row, strict=True)) for row in frame.itertuples(index=False)]


def parse_upload(data: bytes, features: Sequence[Feature], *, max_bytes: int) -> ParsedBatch:
    """An uploaded file -> checked records, or a `CsvError` naming every problem."""
    table = read_csv_text(data, max_bytes=max_bytes)
    try:
        check_columns(list(table.frame.columns), features)
        frame = check_values(table.frame, features)
    except CsvError as exc:
        exc.notes = table.notes
        raise
    return ParsedBatch(frame=frame, records=records_of(frame), notes=table.notes)
