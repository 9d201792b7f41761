"""Split a validated file into good_data and bad_data, atomically, losing no row.

The bad rows and their reasons come from the reasons file the validation wrote beside the
claimed file (`ValidationResult.reasons_path`), streamed in chunks of bad rows: no process
holds every reason at once, whatever the number of bad rows.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlsys.rowchecks import Reason, read_raw_csv
from pipelines.ingestion.durable import sync_paths
from pipelines.ingestion.result import ValidationResult, read_reason_chunks

ROW_COLUMN, ERRORS_COLUMN = "_source_row", "_errors"
CHUNK_ROWS = 100_000  # rows written per chunk


class RowsNotConserved(RuntimeError):
    """What the split would write does not add up to the rows validated: nothing is moved."""


@dataclass(frozen=True)
class SplitOutcome:
    good: str | None  # path of the good_data file, if any row is good
    bad: str | None  # path of the bad_data file, if any row is bad
    good_rows: int
    bad_rows: int
    retried: bool = False  # the claimed file was already split by an earlier attempt

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _errors_json(reasons: Iterable[Reason]) -> str:
    return json.dumps([{"rule": r.rule, "column": r.column, "value": r.value} for r in reasons])


def _json_strings(values) -> Any:
    """json.dumps of each value, computed once per distinct value (numpy object array)."""
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(values)
    return np.array([json.dumps(str(u)) for u in uniques], dtype=object)[codes]


def bad_row_chunks(chunks: Iterable[Any], rows_total: int) -> Iterator[tuple[Any, list[str]]]:
    """Reasons (DataFrames of row, rule, column, value, sorted by row) -> per chunk, the bad
    rows (int64 array) and each one's reasons as a JSON list, the `_errors` of bad_data.

    A row whose reasons straddle two chunks is held back until it is complete. Raises
    ValueError when the reasons are not sorted by row or name a row outside the file.
    """
    import numpy as np
    import pandas as pd

    held = None
    last_row = -1
    for chunk in chunks:
        if held is not None:
            chunk = pd.concat([held, chunk], ignore_index=True)
        rows = chunk["row"].to_numpy(dtype=np.int64)
        if len(rows) == 0:
            continue
        if (np.diff(rows) < 0).any() or rows[0] < last_row:
            raise ValueError("reasons not sorted by row")
        if rows[0] < 0 or rows[-1] >= rows_total:
            raise ValueError(f"a reason names a row outside a file of {rows_total} rows")
        # Hold back the last row: its other reasons may open the next chunk.
        cut = int(np.searchsorted(rows, rows[-1], side="left"))
        held, chunk, rows = chunk.iloc[cut:], chunk.iloc[:cut], rows[:cut]
        last_row = int(held["row"].iloc[0])
        if len(rows):
            yield _group(chunk, rows)
    if held is not None and len(held):
        yield _group(held, held["row"].to_numpy(dtype=np.int64))


def _group(chunk, rows) -> tuple[Any, list[str]]:
    import numpy as np

    items = (
        '{"rule": ' + _json_strings(chunk["rule"]) + ', "column": '
        + _json_strings(chunk["column"]) + ', "value": ' + _json_strings(chunk["value"]) + "}"
    )  # fmt: skip
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    single = ends - starts == 1
    errors = np.empty(len(starts), dtype=object)
    errors[single] = "[" + items[starts[single]] + "]"
    for i in np.flatnonzero(~single):  # rows with several reasons: few
        errors[i] = "[" + ", ".join(items[starts[i] : ends[i]]) + "]"
    return rows[starts], errors.tolist()


class _CsvOut:
    """A CSV written under a temporary name (not *.csv: never picked up half-written) and
    renamed into place by `commit`, with the dialect pandas writes (minimal quoting, \\n)."""

    def __init__(self, path: Path, header: list[str]) -> None:
        self.path, self.tmp = path, path.with_name(f".{path.name}.tmp")
        self._file = open(self.tmp, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(header)

    def write(self, rows: Iterable[Iterable[Any]]) -> None:
        self._writer.writerows(rows)

    def commit(self) -> None:
        self._file.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self._file.close()
        self.tmp.unlink(missing_ok=True)


def split_file(
    claimed: Path, result: ValidationResult, good_dir: Path, bad_dir: Path
) -> SplitOutcome:
    """Good rows -> good_dir/<name> (extra columns dropped), bad rows with their reasons ->
    bad_dir/<name> (`_source_row` first, `_errors` JSON last); a file that was not read
    (unparseable, empty, too large) goes to bad_dir as it is, with its reasons beside it. The
    claimed file (and its reasons file) is removed only after every write succeeded.

    Raises RowsNotConserved when good + bad rows would not equal the validated rows (nothing
    is moved then). Idempotent: a retry after the claimed file is gone reports the outputs.
    """
    good_dir.mkdir(parents=True, exist_ok=True)
    bad_dir.mkdir(parents=True, exist_ok=True)
    good_path, bad_path = good_dir / claimed.name, bad_dir / claimed.name
    reasons_path = Path(result.reasons_path) if result.reasons_path else None
    if not claimed.exists():
        if good_path.exists() or bad_path.exists():
            if reasons_path is not None:
                reasons_path.unlink(missing_ok=True)
            return SplitOutcome(
                str(good_path) if good_path.exists() else None,
                str(bad_path) if bad_path.exists() else None,
                result.rows_valid, result.rows_invalid, retried=True,
            )  # fmt: skip
        raise FileNotFoundError(f"{claimed} is gone and no output of it exists")

    if result.whole_file_bad:
        return _whole_file_to_bad(claimed, result, bad_path)

    import numpy as np

    raw = read_raw_csv(claimed)
    if len(raw) != result.rows_total:
        raise RowsNotConserved(
            f"{claimed.name}: {len(raw)} rows now, {result.rows_total} validated"
        )
    header = [str(c) for c in raw.columns]
    cells = [raw[c].to_numpy(dtype=object) for c in raw.columns]
    del raw
    keep = np.ones(result.rows_total, dtype=bool)
    bad_out = _CsvOut(bad_path, [ROW_COLUMN, *header, ERRORS_COLUMN])
    good_out = None
    try:
        bad_rows = 0
        for rows, errors in _bad_chunks(result, reasons_path):
            bad_out.write(zip(rows.tolist(), *(c[rows] for c in cells), errors, strict=True))
            keep[rows] = False
            bad_rows += len(rows)
        good_rows = int(keep.sum())
        if bad_rows != result.rows_invalid or good_rows + bad_rows != result.rows_total:
            raise RowsNotConserved(
                f"{claimed.name}: {good_rows} good + {bad_rows} bad rows, but "
                f"{result.rows_total} rows validated with {result.rows_invalid} bad"
            )
        if good_rows:
            dropped = set(result.unexpected_columns)
            kept = [i for i, name in enumerate(header) if name not in dropped]
            good_out = _CsvOut(good_path, [header[i] for i in kept])
            good = np.flatnonzero(keep)
            for start in range(0, len(good), CHUNK_ROWS):
                part = good[start : start + CHUNK_ROWS]
                good_out.write(zip(*(cells[i][part] for i in kept), strict=True))
    except BaseException:
        bad_out.discard()
        if good_out is not None:
            good_out.discard()
        raise
    if good_out is not None:
        good_out.commit()
    if bad_rows:
        bad_out.commit()
    else:
        bad_out.discard()
    sync_paths([good_path if good_rows else None, bad_path if bad_rows else None])
    claimed.unlink()  # only once the outputs are on disk
    if reasons_path is not None:
        reasons_path.unlink(missing_ok=True)
    return SplitOutcome(
        str(good_path) if good_rows else None,
        str(bad_path) if bad_rows else None,
        good_rows,
        bad_rows,
    )


def _bad_chunks(
    result: ValidationResult, reasons_path: Path | None
) -> Iterator[tuple[Any, list[str]]]:
    """The bad rows and their errors, chunk by chunk: every row when a file-level reason makes
    them all bad, else the rows of the reasons file."""
    import numpy as np

    if result.unusable:
        errors = _errors_json(result.file_reasons)
        for start in range(0, result.rows_total, CHUNK_ROWS):
            rows = np.arange(start, min(start + CHUNK_ROWS, result.rows_total))
            yield rows, [errors] * len(rows)
        return
    if reasons_path is None:
        if result.rows_invalid:
            raise RowsNotConserved(
                f"{result.file}: {result.rows_invalid} bad rows, no reasons file"
            )
        return
    yield from bad_row_chunks(read_reason_chunks(reasons_path), result.rows_total)


def _whole_file_to_bad(claimed: Path, result: ValidationResult, bad_path: Path) -> SplitOutcome:
    tmp = bad_path.with_name(f".{bad_path.name}.tmp")
    shutil.copyfile(claimed, tmp)  # streamed: a file over the size limit is never in memory
    os.replace(tmp, bad_path)
    reasons = bad_path.with_suffix(".reasons.json")
    reasons.write_text(
        json.dumps(
            {"file": result.file, "parse_error": result.parse_error,
             "issues": [asdict(i) for i in result.issues]},
            indent=2,
        )
    )  # fmt: skip
    sync_paths([bad_path, reasons])  # on disk before the raw file goes
    claimed.unlink()
    return SplitOutcome(None, str(bad_path), 0, result.rows_total)
