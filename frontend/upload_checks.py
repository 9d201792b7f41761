"""An uploaded CSV, read and checked completely before anything is sent.

The features always come from the API's /model-info (as `mlsys.features.Feature`), never from
a list typed here. A file that cannot be read as the model's table (too large, not CSV, a
required column missing, no rows) is refused as a whole (`CsvError`); columns the model does not
know are ignored with a note, as the ingestion drops them. Otherwise every value is checked
against its feature by `mlsys.rules` (the rules, and messages, of the API and the ingestion),
and the file is split: the valid rows can be predicted (their records built by
`mlsys.rules.to_records`, the prediction DAG's conversion), the invalid ones are listed (row,
column, value, why) and can be downloaded with their reasons.

Rows are numbered as the analyst counts them in the file: 1 is the first record after the
header; blank lines are not rows (`ROW_NUMBERING` says so on the page).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlsys import csvfile, rules
from mlsys.features import Feature

# How many invalid values the page lists one by one; the summary counts all of them and the
# download holds every invalid row.
MAX_LISTED_PROBLEMS = 200
ROW_NUMBERING = (
    "Rows are numbered from 1, the first record after the header; blank lines are not rows."
)
# The columns of a problems table: one line per invalid value.
# `rule`: the `mlsys.rules` rule name (the same for the ingestion and the API).
PROBLEM_COLUMNS = ["row", "column", "value", "rule", "problem"]


@dataclass(frozen=True)
class CellProblem:
    """One value at fault. `row` counts data rows from 1 (the first line after the header);
    `rule`: its `mlsys.rules` rule name, when known."""

    row: int
    column: str
    value: str
    message: str
    rule: str = ""


class CsvError(ValueError):
    """An uploaded file that cannot be predicted at all; `str()` names the problem for the user,
    `problems` the columns at fault when there are (row 0: the header line), and `notes` what
    the reader normalised on the way (a skipped hint line, ...)."""

    def __init__(
        self, message: str, problems: Sequence[CellProblem] = (), notes: Sequence[str] = ()
    ) -> None:
        super().__init__(message)
        self.problems = list(problems)
        self.notes = list(notes)


@dataclass
class CheckedUpload:
    """A file read and checked, every row with its verdict.

    `frame`: typed values in feature order, indexed by row number (from 1); an invalid cell is
    None. `invalid_text`: the cells of the invalid rows only, as read (strings, the file's
    columns), same index: the download needs them, and the session keeps this object.
    `problems`: one line per invalid value (`PROBLEM_COLUMNS`), sorted by row then feature
    order. `records`: the valid rows as JSON-ready records for POST /predict, in file order, and
    `valid_rows` their row numbers. `notes`: what the reader normalised (shown before anything
    is sent).
    """

    frame: pd.DataFrame = field(repr=False)
    invalid_text: pd.DataFrame = field(repr=False)
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
        return [int(r) for r in np.unique(self.problems["row"].to_numpy())]

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
    """Refuse a file without the column of a required feature, naming them. Columns the model
    does not know are not refused (see `unexpected_columns`)."""
    present = {str(h) for h in header}
    missing = [f.name for f in features if f.required and f.name not in present]
    if not missing:
        return
    hint = ""
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        hint = " The header has a single column: is the file separated by commas?"
    raise CsvError(
        f"The columns do not match the model's features (missing column"
        f"{'s' if len(missing) > 1 else ''}: {', '.join(missing)}). "
        f"Expected: {', '.join(f.name for f in features)}.{hint}",
        [
            CellProblem(0, name, "", rules.missing_column_message(), rules.MISSING_COLUMN)
            for name in missing
        ],
    )


def unexpected_columns(header: Sequence[str], features: Sequence[Feature]) -> list[str]:
    """The columns of `header` that are not features: ignored, as the ingestion drops them from
    good data (`mlsys.rules`, rule `unexpected_column`), and said in a note."""
    names = {f.name for f in features}
    return [str(h) for h in header if str(h) not in names]


def check_values(check: rules.FrameCheck) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A text frame's verdict by the rules the API and the ingestion apply
    (`mlsys.rules.check_frame`: missing markers, domain, type, integer, range; one message per
    rule), renumbered as the analyst counts rows.

    Returns the typed frame (feature order, indexed by row number from 1, None where a value is
    missing or invalid) and the problems (`PROBLEM_COLUMNS`, one line per invalid value, sorted
    by row then feature order; empty when every value is valid).
    """
    typed = check.typed(np.arange(check.rows_total))
    typed.index = pd.RangeIndex(1, check.rows_total + 1)  # row numbers as the user counts them
    problems = check.problems.rename(columns={"message": "problem"})[PROBLEM_COLUMNS]
    problems = problems.assign(row=problems["row"] + 1)
    return typed, problems


def problems_frame(problems: Sequence[CellProblem]) -> pd.DataFrame:
    """`CellProblem`s (such as the API's refusals) as a problems table (`PROBLEM_COLUMNS`)."""
    return pd.DataFrame(
        [(p.row, p.column, p.value, p.rule, p.message) for p in problems], columns=PROBLEM_COLUMNS
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
    """The invalid rows as CSV: `row` (number in the file), `reason` (every problem of the row,
    as in the results), then the file's columns exactly as read, so that the analyst can fix
    them and send them again (after dropping the two first columns)."""
    reasons = row_reasons(checked.problems)
    rows = checked.invalid_text.loc[reasons.index]
    out = pd.concat([reasons.rename("reason"), rows], axis=1)
    out.index.name = "row"
    return out.to_csv(index=True).encode("utf-8")


def parse_upload(data: bytes, features: Sequence[Feature], *, max_bytes: int) -> CheckedUpload:
    """An uploaded file -> every row checked (`CheckedUpload`), or a `CsvError` when the file
    cannot be read as the model's table (size, not CSV, no rows, a required column missing).

    The records of the valid rows are `mlsys.rules.to_records` of the file's text: the
    conversion the prediction DAG uses for good_data files.
    """
    table = read_csv_text(data, max_bytes=max_bytes)
    header = [str(c) for c in table.frame.columns]
    notes = list(table.notes)
    extra = unexpected_columns(header, features)
    if extra:
        message = rules.unexpected_column_message([f.name for f in features])
        notes.extend(f"Column {name!r} {message}: ignored" for name in extra)
    try:
        check_columns(header, features)
    except CsvError as exc:
        exc.notes = notes
        raise
    check = rules.check_frame(table.frame, features)
    frame, problems = check_values(check)
    invalid = check.invalid_rows()
    return CheckedUpload(
        frame=frame,
        invalid_text=table.frame.iloc[invalid].set_axis(invalid + 1),
        problems=problems,
        # The records go with `valid_rows`, in row order (`FrameCheck.valid_records`).
        records=check.valid_records(table.frame),
        valid_rows=[int(r) + 1 for r in check.valid_rows()],
        notes=notes,
    )
