"""An uploaded CSV, read and checked completely before anything is sent.

The features always come from the API's /model-info (as `mlsys.features.Feature`), never from
a list typed here. A file that cannot be read as the model's table (too large, not CSV, missing
or extra columns, no rows) is refused as a whole (`CsvError`). Otherwise every value is checked
against its feature's kind, domain and range, with the same rules as the API, and the file is
split: the valid rows can be predicted, the invalid ones are listed (row, column, value, why)
and can be downloaded with their reasons.

Rows are numbered as the analyst counts them in the file: 1 is the first record after the
header; blank lines are not rows (`ROW_NUMBERING` says so on the page).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlsys import csvfile
from mlsys.features import Feature, Kind

# How many invalid values the page lists one by one; the summary counts all of them and the
# download holds every invalid row.
MAX_LISTED_PROBLEMS = 200
ROW_NUMBERING = (
    "Rows are numbered from 1, the first record after the header; blank lines are not rows."
)
# The columns of a problems table: one line per invalid value.
PROBLEM_COLUMNS = ["row", "column", "value", "problem"]


@dataclass(frozen=True)
class CellProblem:
    """One value at fault. `row` counts data rows from 1 (the first line after the header)."""

    row: int
    column: str
    value: str
    message: str


class CsvError(ValueError):
    """An uploaded file that cannot be predicted at all; `str()` names the problem for the user,
    and `notes` says what the reader normalised on the way (a skipped hint line, ...)."""

    def __init__(self, message: str, notes: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.notes = list(notes)


@dataclass
class CheckedUpload:
    """A file read and checked, every row with its verdict.

    `frame`: typed values in feature order, indexed by row number (from 1); an invalid cell is
    None. `text`: the cells as read (strings, the file's columns), same index. `problems`: one
    line per invalid value (`PROBLEM_COLUMNS`), sorted by row then feature order. `records`:
    the valid rows as JSON-ready records for POST /predict, in file order, and `valid_rows`
    their row numbers. `notes`: what the reader normalised (shown before anything is sent).
    """

    frame: pd.DataFrame = field(repr=False)
    text: pd.DataFrame = field(repr=False)
    problems: pd.DataFrame = field(repr=False)
    records: list[dict[str, Any]] = field(repr=False)
    valid_rows: list[int] = field(repr=False)
    notes: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        """Rows in the file."""
        return len(self.frame)

    @property
    def invalid_rows(self) -> list[int]:
        """Row numbers with at least one invalid value, ascending."""
        return sorted({int(r) for r in self.problems["row"]})

    @property
    def all_valid(self) -> bool:
        return self.problems.empty


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


def check_values(
    text: pd.DataFrame, features: Sequence[Feature]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every value of a text frame (see `read_csv_text`) against its feature.

    Returns the typed frame (feature order, indexed by row number from 1, None where a value is
    invalid or missing) and the problems (`PROBLEM_COLUMNS`, one line per invalid value, sorted
    by row then feature order; empty when every value is valid).
    """
    index = pd.RangeIndex(1, len(text) + 1)  # row numbers as the user counts them
    raw = {
        name: pd.Series(text[name].astype(object).str.strip().to_numpy(), index=index)
        for name in text.columns
    }
    typed: dict[str, pd.Series] = {}
    found: list[pd.DataFrame] = []
    for order, feature in enumerate(features):
        column = raw[feature.name] if feature.name in raw else pd.Series("", index=index)
        values, bad, messages = _check_column(feature, column)
        typed[feature.name] = values.where(~bad, None)
        if bad.any():
            found.append(
                pd.DataFrame(
                    {
                        "row": bad.index[bad].to_numpy(),
                        "column": feature.name,
                        "value": column[bad].to_numpy(),
                        "problem": messages[bad].to_numpy(),
                        "_order": order,
                    }
                )
            )
    if found:
        problems = (
            pd.concat(found, ignore_index=True)
            .sort_values(["row", "_order"], kind="stable")
            .drop(columns="_order")
            .reset_index(drop=True)
        )
    else:
        problems = pd.DataFrame(
            {c: pd.Series(dtype="int64" if c == "row" else "object") for c in PROBLEM_COLUMNS}
        )
    return pd.DataFrame(typed, index=index), problems


def problems_frame(problems: Sequence[CellProblem]) -> pd.DataFrame:
    """`CellProblem`s (such as the API's refusals) as a problems table (`PROBLEM_COLUMNS`)."""
    return pd.DataFrame(
        [(p.row, p.column, p.value, p.message) for p in problems], columns=PROBLEM_COLUMNS
    ).astype({"row": "int64"})


def describe_problems(problems: pd.DataFrame) -> str:
    """One sentence: how many values are invalid, in how many rows, in which columns and rows.

    `problems` is a problems table (`PROBLEM_COLUMNS`); at most five rows are named per column.
    """
    total = len(problems)
    rows = problems["row"].nunique()
    parts = []
    for column, column_rows in problems.groupby("column", sort=False)["row"]:
        listed = ", ".join(str(r) for r in column_rows.iloc[:5])
        more = ", ..." if len(column_rows) > 5 else ""
        parts.append(f"{column} (row{'s' if len(column_rows) > 1 else ''} {listed}{more})")
    return (
        f"{total} invalid value{'s' if total != 1 else ''} in {rows} "
        f"row{'s' if rows != 1 else ''}: " + "; ".join(parts) + "."
    )


def row_reasons(problems: pd.DataFrame) -> pd.Series:
    """Row number -> every problem of that row in one text ("age: 'abc' is not an integer; ...")."""
    if problems.empty:
        return pd.Series(dtype="object")
    lines = problems["column"] + ": " + problems["problem"]
    return lines.groupby(problems["row"], sort=True).agg("; ".join)


def invalid_rows_csv(checked: CheckedUpload) -> bytes:
    """The invalid rows as CSV: `row` (number in the file), `problems` (every reason of the row),
    then the file's columns exactly as read, so that the analyst can fix them and send them again
    (after dropping the two first columns)."""
    reasons = row_reasons(checked.problems)
    rows = checked.text.loc[reasons.index]
    out = pd.concat([reasons.rename("problems"), rows], axis=1)
    out.index.name = "row"
    return out.to_csv(index=True).encode("utf-8")


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Typed frame -> JSON-ready records (Python ints, floats, strings; None when missing)."""
    columns = list(frame.columns)
    return [dict(zip(columns, row, strict=True)) for row in frame.itertuples(index=False)]


def parse_upload(data: bytes, features: Sequence[Feature], *, max_bytes: int) -> CheckedUpload:
    """An uploaded file -> every row checked (`CheckedUpload`), or a `CsvError` when the file
    cannot be read as the model's table (size, not CSV, no rows, missing or extra columns)."""
    table = read_csv_text(data, max_bytes=max_bytes)
    try:
        check_columns(list(table.frame.columns), features)
    except CsvError as exc:
        exc.notes = table.notes
        raise
    frame, problems = check_values(table.frame, features)
    text = table.frame.set_axis(frame.index)
    invalid = problems["row"].unique()
    valid = frame.drop(index=invalid)
    return CheckedUpload(
        frame=frame,
        text=text,
        problems=problems,
        records=records_of(valid),
        valid_rows=[int(r) for r in valid.index],
        notes=table.notes,
    )
