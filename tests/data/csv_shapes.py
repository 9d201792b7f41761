"""The CSV shapes the reader must handle, with their right outcomes: one table for every
environment (run here in `app`, and by `python -m tests.data.csv_shapes` in `tfdv` and
`airflow`, which prints every outcome as JSON so that the pandas versions can be compared).

Standard library and `mlsys.csvfile` only: importable in all three environments.
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlsys import csvfile

CASES = Path(__file__).resolve().parent / "cases" / "ingestion"
HEADER = "sex,job,housing,saving_accounts,checking_account,credit_amount,duration,purpose,age"
FIRST_ROW = {
    "sex": "male", "job": "2", "housing": "own", "saving_accounts": "not_known",
    "checking_account": "little", "credit_amount": "1169", "duration": "6",
    "purpose": "radio/TV", "age": "67",
}  # fmt: skip
SMALL = "sex,job,age\nmale,2,67\nfemale,1,22\n"


@dataclass(frozen=True)
class Shape:
    """One input and what must come of it: a table (columns, rows, values of row 0, notes)
    or a refusal (`refused` = the rule; `reason` = substrings the sentence must name)."""

    id: str
    data: bytes
    columns: tuple[str, ...] = ()
    rows: int = 0  # rows of the table, or the refusal's count of data lines
    first: dict[str, str] = field(default_factory=dict)  # some values of row 0
    delimiter: str = ","
    encoding: str = "utf-8"
    notes: tuple[str, ...] = ()  # each a substring of one note; no notes at all when empty
    refused: str | None = None
    reason: tuple[str, ...] = ()


def case_file(name: str) -> bytes:
    return (CASES / name).read_bytes()


NINE = tuple(HEADER.split(","))
SMALL_COLUMNS = ("sex", "job", "age")
SMALL_FIRST = {"sex": "male", "job": "2", "age": "67"}

SHAPES: list[Shape] = [
    # The four files of the issue (tests/data/cases/ingestion, copies of ../shared/cases).
    Shape(
        "case: trailing comma on every data line",
        case_file("trailing_comma_every_row.csv"),
        NINE,
        12,
        FIRST_ROW,
        notes=("every data line ends with an empty extra field",),
    ),
    Shape(
        "case: Excel sep hint line, CRLF",
        case_file("excel_sep_hint_line.csv"),
        NINE,
        20,
        {"sex": "male", "age": "26"},
        notes=("line 1 is Excel's 'sep=,' hint: skipped",),
    ),
    Shape(
        "case: upper-case extension",
        case_file("LOANS_EXPORT.CSV"),
        NINE,
        20,
        {"sex": "female", "age": "25"},
    ),
    Shape(
        "case: spaces and parentheses in the name",
        case_file("loan applications (1).csv"),
        NINE,
        20,
        {"sex": "male", "housing": "own", "age": "30"},
    ),
    # Trailing delimiters.
    Shape(
        "trailing delimiter on header and rows",
        b"sex,job,age,\nmale,2,67,\nfemale,1,22,\n",
        SMALL_COLUMNS,
        2,
        SMALL_FIRST,
        notes=("the header ends with a delimiter",),
    ),
    Shape(
        "trailing delimiter on the header only",
        b"sex,job,age,\nmale,2,67\nfemale,1,22\n",
        SMALL_COLUMNS,
        2,
        SMALL_FIRST,
        notes=("the header ends with a delimiter", "lack the header's empty trailing"),
    ),
    Shape(
        "trailing delimiter on some data lines",
        b"sex,job,age\nmale,2,67,\nfemale,1,22\n",
        SMALL_COLUMNS,
        2,
        SMALL_FIRST,
        notes=("1 of 2 data lines end with an empty extra",),
    ),
    Shape(
        "a value beyond the header is ragged",
        b"sex,job,age\nmale,2,67,x\nfemale,1,22\n",
        rows=2,
        refused="ragged_rows",
        reason=("has 3 fields", "line 2 has 4"),
    ),
    # Ragged rows: every line named, counted.
    Shape(
        "ragged rows",
        b"sex,job,age\nmale,2,67\nmale,2,67,1\nfemale\n\nfemale,1,22\n",
        rows=4,
        refused="ragged_rows",
        reason=(
            "the header (line 1) has 3 fields",
            "2 of 4 data lines do not",
            "line 3 has 4, line 4 has 1",
        ),
    ),
    # Excel's hint line honoured, even when Excel padded it on a later save.
    Shape(
        "Excel sep=; hint",
        b"sep=;\r\nsex;job;age\r\nmale;2;67\r\n",
        SMALL_COLUMNS,
        1,
        SMALL_FIRST,
        delimiter=";",
        notes=("'sep=;' hint: skipped, fields split on ';'",),
    ),
    Shape(
        "Excel hint padded with delimiters",
        b"sep=,,,\nsex,job,age\nmale,2,67\n",
        SMALL_COLUMNS,
        1,
        SMALL_FIRST,
        notes=("'sep=,' hint",),
    ),
    # Encodings.
    Shape(
        "UTF-8 byte-order mark",
        codecs.BOM_UTF8 + SMALL.encode(),
        SMALL_COLUMNS,
        2,
        SMALL_FIRST,
        encoding="utf-8-sig",
        notes=("UTF-8 byte-order mark",),
    ),
    # Encodings other than UTF-8: refused, not guessed.
    Shape(
        "UTF-16 with a byte-order mark",
        codecs.BOM_UTF16_LE + SMALL.encode("utf-16-le"),
        rows=2,
        refused="undecodable_text",
        reason=("UTF-16 text (it starts with the byte-order mark ff fe)", "'CSV UTF-8'"),
    ),
    Shape(
        "Windows-1252 text",
        "sex,job,age\nmännlich,2,67\n".encode("cp1252"),
        rows=1,
        refused="undecodable_text",
        reason=(
            "not UTF-8 text: line 2, byte offset 13 (0xe4) cannot be decoded",
            "as Windows-1252 (Excel's plain 'CSV') the line would read 'männlich,2,67'",
        ),
    ),
    Shape(
        "neither UTF-8 nor Windows-1252",
        b"sex,job,age\nmale,2,67\nm\x81le,1,22\n",
        rows=2,
        refused="undecodable_text",
        reason=("line 3, byte offset 23 (0x81)", "not Windows-1252 either"),
    ),
    Shape(
        "UTF-8 mixed with Latin-1",
        "sex,job,age\nmännlich,2,67\n".encode()
        + "weiblich,1,22\nmännlich,2,30\n".encode("latin-1"),
        rows=3,
        refused="undecodable_text",
        reason=("mixes encodings", "line 2", "line 4"),
    ),
    # Binary content.
    Shape(
        "NUL bytes",
        b"sex,job,age\nmale,2,67\nfe\x00male,1,22\n",
        rows=2,
        refused="binary_file",
        reason=("line 3, byte offset 24 is a NUL byte",),
    ),
    Shape(
        "a PNG image",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        rows=2,
        refused="binary_file",
        reason=("line 3, byte offset 8 is a NUL byte",),
    ),
    Shape(
        "UTF-16 without a byte-order mark",
        SMALL.encode("utf-16-le"),
        rows=2,
        refused="binary_file",
        reason=("UTF-16 text without a byte-order mark",),
    ),
    # Line ends and blank lines; rows are records, not lines.
    Shape("CRLF line ends", SMALL.replace("\n", "\r\n").encode(), SMALL_COLUMNS, 2, SMALL_FIRST),
    Shape(
        "old Mac CR line ends",
        SMALL.replace("\n", "\r").encode(),
        SMALL_COLUMNS,
        2,
        SMALL_FIRST,
        notes=("bare CR",),
    ),
    Shape(
        "blank lines in between and at the end",
        b"\nsex,job,age\n\nmale,2,67\n   \n\t\nfemale,1,22\n\n\r\n\n",
        SMALL_COLUMNS,
        2,
        SMALL_FIRST,
        notes=("6 blank lines skipped",),
    ),
    Shape(
        "a line of empty cells is a row",
        b"sex,job,age\nmale,2,67\n,,\n",
        SMALL_COLUMNS,
        2,
        SMALL_FIRST,
    ),
    Shape(
        "quoted fields with line breaks and delimiters",
        b'sex,job,age\n"ma\nle",2,67\n"fe,male","1",""\n"x ""y""",3,1\n',
        SMALL_COLUMNS,
        3,
        {"sex": "ma\nle", "job": "2"},
    ),
    Shape(
        "a bare CR inside a line ends it (for pandas too)",
        b"sex,job,age\nmale,2\r,67\nfemale,1,22\n",
        rows=3,
        refused="ragged_rows",
        reason=("line 2 has 2",),
    ),
    # Header names.
    Shape(
        "duplicated header names with equal values",
        b"sex,job,age,job\nmale,2,67,2\nfemale,1,22,1\n",
        SMALL_COLUMNS,
        2,
        SMALL_FIRST,
        notes=(
            "column 'job' appears more than once: column 4 was dropped (its values equal "
            "column 2's in every row)",
        ),
    ),
    Shape(
        "duplicated header names with different values: which one is meant is a guess",
        b"sex,job,age,job,age\nmale,2,67,2,68\nfemale,1,22,1,22\n",
        rows=2,
        refused="conflicting_columns",
        reason=(
            "column 'age' appears twice (columns 3 and 5) with different values in 1 row",
            "'67' against '68'",
        ),
    ),
    Shape(
        "header with surrounding spaces",
        b" sex , job,age \n male,2,67\n",
        SMALL_COLUMNS,
        1,
        {"sex": " male", "job": "2"},
        notes=("' sex ' -> 'sex'",),
    ),
    Shape(
        "an unnamed column with values",
        b"sex,,age\nmale,x,67\n",
        ("sex", "Unnamed: 1", "age"),
        1,
        {"Unnamed: 1": "x"},
        notes=("column 2 has no name in the header: called 'Unnamed: 1'",),
    ),
    Shape(
        "an unnamed empty column",
        b"sex,,age\nmale,,67\n",
        ("sex", "age"),
        1,
        {"sex": "male", "age": "67"},
        notes=("column 2 has no name and no value: dropped",),
    ),
    # Other delimiters, undeclared: sniffed on a head sample, named, refused.
    Shape(
        "semicolons",
        b"sex;job;age\nmale;2;67\nfemale;1;22\n",
        rows=2,
        refused="wrong_delimiter",
        reason=(
            "separated by semicolons (';'), not commas (the header splits into 3 fields on ';')",
            "add the line 'sep=;' above the header",
        ),
    ),
    Shape(
        "semicolons with decimal commas",
        b"sex;ratio\nmale;1,5\nfemale;2,25\n",
        rows=2,
        refused="wrong_delimiter",
        reason=("semicolons",),
    ),
    Shape(
        "tabs",
        SMALL.replace(",", "\t").encode(),
        rows=2,
        refused="wrong_delimiter",
        reason=("separated by tabs", "'sep=' followed by a tab"),
    ),
    Shape(
        "pipes",
        SMALL.replace(",", "|").encode(),
        rows=2,
        refused="wrong_delimiter",
        reason=("separated by pipes ('|')", "'sep=|'"),
    ),
    Shape(
        "semicolons, ragged",
        b"sex;job;age\nmale;2\nfemale;1;22\n",
        rows=2,
        refused="wrong_delimiter",
        reason=("semicolons",),
    ),
    Shape(
        "declared semicolons, ragged",
        b"sep=;\nsex;job;age\nmale;2\nfemale;1;22\n",
        rows=2,
        refused="ragged_rows",
        reason=("the header (line 2) has 3 fields (fields split on ';')", "line 3 has 2"),
        notes=("'sep=;' hint",),
    ),
    Shape(
        "commas in values of a comma file",
        b'sex,purpose,age\nmale,"car, new",67\nfemale,"radio; TV",22\n',
        ("sex", "purpose", "age"),
        2,
        {"purpose": "car, new"},
    ),
    Shape("one column", b"age\n67\n22\n", ("age",), 2, {"age": "67"}),
    # Empty files.
    Shape("empty file", b"", refused="empty_file", reason=("empty (0 bytes)",)),
    Shape("only blank lines", b"\n \r\n\n", refused="empty_file", reason=("only blank lines",)),
    Shape("header only", b"sex,job,age\n", SMALL_COLUMNS, 0),
    Shape("header only, no line end", b"sex,job,age", SMALL_COLUMNS, 0),
    # Quotes.
    Shape(
        "unterminated quote",
        b'sex,job,age\nmale,2,67\n"female,1,22\nmale,3,30\n',
        rows=3,
        refused="unterminated_quote",
        reason=("line 3 opens a quoted field", '"female,1,22'),
    ),
    Shape(
        "text after a closing quote",
        b'sex,job,age\n"ma"le,2,67\n',
        rows=1,
        refused="unreadable_file",
        reason=("line 2 is not well-formed CSV",),
    ),
]


def outcome(data: bytes) -> dict[str, Any]:
    """What the reader makes of `data`, as JSON-ready values (compared across environments)."""
    try:
        table = csvfile.read_csv(data)
    except csvfile.CsvRefused as exc:
        return {"rule": exc.rule, "reason": exc.reason, "rows": exc.rows, "notes": exc.notes}
    frame = table.frame
    return {
        "columns": [str(c) for c in frame.columns],
        "rows": table.rows_total,
        "cells": [[str(v) for v in row] for row in frame.itertuples(index=False)],
        "types": sorted({type(v).__name__ for row in frame.itertuples(index=False) for v in row}),
        "index": [int(i) for i in frame.index],
        "encoding": table.encoding,
        "delimiter": table.delimiter,
        "notes": table.notes,
    }


if __name__ == "__main__":
    print(json.dumps({shape.id: outcome(shape.data) for shape in SHAPES}))
