"""What the pages do, as plain typed functions: read and check a CSV, build records, summarise.

The pages only wire widgets to these functions, and the tests call them directly. The features
always come from the API's /model-info (as `mlsys.features.Feature`), never from a list typed here.

A CSV is checked completely before anything is sent (columns, then every value against the
feature's kind, domain and range, with the rules of `mlsys.rules`: the same the API and the
ingestion apply) so that a bad file is refused as a whole with the rows and columns at fault,
instead of being half-sent chunk by chunk.
"""

from __future__ import annotations

import math
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from frontend.api_client import ApiClient, ApiError, ApiRejected, Prediction, RecordError
from mlsys import csvfile, rules
from mlsys.features import Feature, Kind

# How many invalid values are listed one by one; the summary still counts all of them.
MAX_LISTED_PROBLEMS = 200
# Past-predictions source filter: label shown -> value of the API's `source` parameter.
SOURCE_CHOICES: dict[str, str] = {
    "all": "all",
    "webapp": "webapp",
    "scheduled predictions": "scheduled",
}


@dataclass(frozen=True)
class CellProblem:
    """One value at fault. `row` counts data rows from 1 (the first line after the header);
    `rule`: its `mlsys.rules` rule name."""

    row: int
    column: str
    value: str
    message: str
    rule: str = ""


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


# --- reading a CSV --------------------------------------------------------------------------


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
    """Refuse a file without a column a required feature needs, naming them. Columns the model
    does not know are ignored (`unexpected_columns`), as the ingestion drops them."""
    missing = [f.name for f in features if f.required and f.name not in {str(h) for h in header}]
    if not missing:
        return
    names = [f.name for f in features]
    hint = ""
    if len(header) == 1 and any(sep in header[0] for sep in ";\t|"):
        hint = " The header has a single column: is the file separated by commas?"
    raise CsvError(
        f"The columns do not match the model's features (missing column"
        f"{'s' if len(missing) > 1 else ''}: {', '.join(missing)}). "
        f"Expected: {', '.join(names)}.{hint}",
        # Row 0: the header line.
        [
            CellProblem(0, n, "", rules.missing_column_message(), rules.MISSING_COLUMN)
            for n in missing
        ],
    )


def unexpected_columns(header: Sequence[str], features: Sequence[Feature]) -> list[str]:
    """The columns of `header` that are not features (ignored, and said in a note)."""
    names = {f.name for f in features}
    return [str(h) for h in header if str(h) not in names]


def _number_text(value: float) -> str:
    return rules.format_number(value)


def _check_column(feature: Feature, raw: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Typed values, a mask of bad cells, and the message of each bad cell (`mlsys.rules`)."""
    verdict = rules.judge_column(feature, raw)
    bad = verdict.rules[verdict.codes] != None  # noqa: E711
    messages = np.where(bad, verdict.messages[verdict.codes], "")
    return (
        pd.Series(verdict.values[verdict.codes], index=raw.index, dtype="object"),
        pd.Series(bad, index=raw.index),
        pd.Series(messages, index=raw.index, dtype="object"),
    )


def check_values(text: pd.DataFrame, features: Sequence[Feature]) -> pd.DataFrame:
    """Every value of a text frame (see `read_csv_text`) against its feature
    (`mlsys.rules.check_frame`); returns the typed frame, indexed by row number from 1, or
    raises with every problem."""
    return _typed_or_refused(rules.check_frame(text.reset_index(drop=True), features), text)


def _typed_or_refused(check: rules.FrameCheck, text: pd.DataFrame) -> pd.DataFrame:
    if check.unusable:
        check_columns(list(text.columns), check.features)
    total = len(check.problems)
    if total:
        problems = [
            CellProblem(p.row + 1, p.column, p.value, p.message, p.rule)
            for p in check.cell_problems(MAX_LISTED_PROBLEMS)
        ]
        raise CsvError(describe_problems(problems, total), problems, total)
    typed = check.typed()
    typed.index = pd.RangeIndex(1, len(text) + 1)  # row numbers as the user counts them
    return typed


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
    return rules.records_of_typed(frame)


def parse_upload(data: bytes, features: Sequence[Feature], *, max_bytes: int) -> ParsedBatch:
    """An uploaded file -> checked records, or a `CsvError` naming every problem.

    The records are `mlsys.rules.to_records` of the file's text, the conversion the prediction
    DAG uses for good_data files."""
    table = read_csv_text(data, max_bytes=max_bytes)
    notes = list(table.notes)
    extra = unexpected_columns(list(table.frame.columns), features)
    if extra:
        message = rules.unexpected_column_message([f.name for f in features])
        notes.extend(f"Column {name!r} {message}: ignored." for name in extra)
    try:
        check_columns(list(table.frame.columns), features)
        check = rules.check_frame(table.frame, features)
        frame = _typed_or_refused(check, table.frame)
    except CsvError as exc:
        exc.notes = notes
        raise
    return ParsedBatch(frame=frame, records=check.valid_records(table.frame), notes=notes)


# --- sending in chunks ------------------------------------------------------------------------


def chunk_bounds(total: int, size: int) -> Iterator[tuple[int, int]]:
    """[start, end) of each chunk of `size` records."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    for start in range(0, total, size):
        yield start, min(start + size, total)


def api_problems(errors: Sequence[RecordError], *, offset: int) -> list[CellProblem]:
    """The API's record errors of a chunk starting at record `offset` -> rows of the file."""
    return [
        CellProblem(
            row=offset + (e.record if e.record is not None else 0) + 1,
            column=e.field or "",
            value="" if e.value is None else str(e.value),
            message=e.message,
        )
        for e in errors
    ]


@dataclass
class BatchOutcome:
    """A file being sent in chunks: the predictions received so far, and the failure if any.

    Chunks before a failed one are stored by the API (each chunk is all-or-nothing), so the
    outcome keeps their predictions, says exactly which rows were and were not stored, and
    sending can resume at the first row not stored, never sending a stored row twice.
    """

    total: int
    predictions: list[Prediction] = field(default_factory=list)
    error: str | None = None
    problems: list[CellProblem] = field(default_factory=list)
    # True when the failure may pass by itself (the API down or failing), so a retry makes
    # sense; False when the API refused the rows, which fails again until the file changes.
    retryable: bool = False
    # One sender at a time. Streamlit's fast reruns (runner.fastReruns, on by default) start
    # the new run of the page while the old one is still stopping: without this lock both
    # could send the same chunk, and the outcome would hold one chunk twice and lack another.
    sending: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    # Names this upload in each chunk's Idempotency-Key (with the chunk's rows): a chunk sent
    # again after a timeout, whose first sending the API did store, is answered "already
    # stored" with the same predictions, never stored twice.
    upload_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def sent(self) -> int:
        return len(self.predictions)

    @property
    def complete(self) -> bool:
        return self.error is None and self.sent == self.total

    @property
    def pending(self) -> bool:
        """Rows remain to be sent and nothing has failed (new, or interrupted by a rerun)."""
        return self.error is None and self.sent < self.total

    def retry(self) -> None:
        """Forget the failure, so that sending resumes at the first row not stored."""
        self.error, self.problems, self.retryable = None, [], False


def chunk_key(outcome: BatchOutcome, start: int, end: int) -> str:
    """The Idempotency-Key of rows [start, end) of an upload: the same on every resend."""
    return f"ui-{outcome.upload_id}-{start}-{end}"


def send_in_chunks(
    client: ApiClient,
    records: Sequence[dict[str, Any]],
    *,
    chunk_size: int,
    source: str = "webapp",
    on_progress: Callable[[int, int], None] | None = None,
    outcome: BatchOutcome | None = None,
) -> BatchOutcome:
    """POST the records chunk by chunk, in order, stopping at the first failed chunk.

    With an `outcome` from an earlier, interrupted or failed call, resume after its last stored
    row. The outcome is updated in place after each chunk, before `on_progress` is called: in
    Streamlit a rerun can stop the script inside that call, and the outcome must then already
    hold everything the API stored.
    """
    outcome = outcome if outcome is not None else BatchOutcome(total=len(records))
    if outcome.total != len(records):
        raise ValueError(f"outcome of {outcome.total} records resumed with {len(records)}")
    # A run that finds another one sending waits for it to stop (at its next progress call,
    # right after it recorded its last chunk), then goes on from the first row not stored.
    with outcome.sending:
        if outcome.error is None:
            _send_rest(client, records, chunk_size, source, on_progress, outcome)
    return outcome


def _send_rest(
    client: ApiClient,
    records: Sequence[dict[str, Any]],
    chunk_size: int,
    source: str,
    on_progress: Callable[[int, int], None] | None,
    outcome: BatchOutcome,
) -> None:
    total = len(records)
    for start in range(outcome.sent, total, chunk_size):
        end = min(start + chunk_size, total)
        try:
            result = client.predict(
                list(records[start:end]),
                source=source,
                idempotency_key=chunk_key(outcome, start, end),
            )
        except ApiError as exc:
            stored = (
                f"Rows 1 to {start} were predicted and stored; rows {start + 1} to "
                f"{total} were not."
                if start
                else "Nothing was stored."
            )
            reason = str(exc)
            if isinstance(exc, ApiRejected):
                outcome.problems = api_problems(exc.errors, offset=start)
                reason = f"The API refused rows {start + 1} to {end}: {exc.detail}"
            outcome.error = f"{reason} {stored}"
            outcome.retryable = not isinstance(exc, ApiRejected)
            return
        outcome.predictions.extend(result.predictions)
        if on_progress is not None:
            on_progress(end, total)


# --- results ----------------------------------------------------------------------------------


def results_frame(frame: pd.DataFrame, predictions: Sequence[Prediction]) -> pd.DataFrame:
    """Predictions next to their features, one row per record of the file."""
    if len(predictions) > len(frame):
        raise ValueError(f"{len(predictions)} predictions for {len(frame)} rows")
    out = frame.iloc[: len(predictions)].copy()
    out.insert(0, "probability", [p.probability for p in predictions])
    out.insert(0, "prediction", [p.prediction for p in predictions])
    out.index.name = "row"
    return out


def class_summary(
    predictions: Sequence[str], classes: Sequence[str], positive: str | None = None
) -> pd.DataFrame:
    """Count and share per predicted class, every known class listed (zero when absent)."""
    counts = pd.Series(list(predictions), dtype="object").value_counts()
    order = list(classes) + sorted(set(counts.index) - set(classes))
    total = max(len(predictions), 1)
    return pd.DataFrame(
        {
            "class": order,
            "meaning": [
                ("positive" if c == positive else "negative") if positive is not None else ""
                for c in order
            ],
            "count": [int(counts.get(c, 0)) for c in order],
            "share": [round(int(counts.get(c, 0)) / total, 4) for c in order],
        }
    )


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=True).encode("utf-8")


# --- the single-prediction form ---------------------------------------------------------------


def number_widget_args(feature: Feature) -> dict[str, Any]:
    """Bounds and step of a number input, from the schema's range for this feature."""
    if feature.kind is Kind.INTEGER:
        return {
            "min_value": None if feature.minimum is None else math.ceil(feature.minimum),
            "max_value": None if feature.maximum is None else math.floor(feature.maximum),
            "step": 1,
            "format": "%d",
        }
    return {
        "min_value": feature.minimum,
        "max_value": feature.maximum,
        "step": None,
        "format": "%g",
    }


def range_hint(feature: Feature) -> str:
    if feature.is_categorical:
        return ", ".join(feature.values)
    low = "" if feature.minimum is None else _number_text(feature.minimum)
    high = "" if feature.maximum is None else _number_text(feature.maximum)
    if low and high:
        return f"{low} to {high}"
    if low:
        return f"at least {low}"
    return f"at most {high}" if high else "any number"


def form_record(
    values: dict[str, Any], features: Sequence[Feature]
) -> tuple[dict[str, Any], list[str]]:
    """The form's values -> (record for the API, names of required fields left empty)."""
    record: dict[str, Any] = {}
    missing = []
    for feature in features:
        value = values.get(feature.name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if feature.required:
                missing.append(feature.name)
            record[feature.name] = None
        elif feature.kind is Kind.INTEGER:
            record[feature.name] = int(value)
        elif feature.kind is Kind.FLOAT:
            record[feature.name] = float(value)
        else:
            record[feature.name] = str(value)
    return record, missing


# --- past predictions -------------------------------------------------------------------------


def date_filter(start: date, end: date) -> tuple[date, date]:
    """Check a date range from the selector; the API includes the whole `end` day."""
    if start > end:
        raise ValueError(f"the start date {start} is after the end date {end}")
    return start, end


def past_frame(items: Sequence[Prediction], feature_names: Sequence[str]) -> pd.DataFrame:
    """Stored predictions -> one row each: when, source, prediction, then the features."""
    extra = sorted({k for p in items for k in p.features} - set(feature_names))
    columns = list(feature_names) + extra
    rows = []
    for p in items:
        row: dict[str, Any] = {
            "id": p.id,
            "created_at": p.created_at,
            "source": p.source,
            "prediction": p.prediction,
            "probability": p.probability,
            "model_version": p.model_version,
            "source_file": p.source_file,
            "source_row": p.source_row,
        }
        row.update({name: p.features.get(name) for name in columns})
        rows.append(row)
    fixed = [
        "id",
        "created_at",
        "source",
        "prediction",
        "probability",
        "model_version",
        "source_file",
        "source_row",
    ]
    return pd.DataFrame(rows, columns=fixed + columns)


def time_bucket(start: datetime, end: datetime) -> tuple[str, str, str]:
    """A pandas frequency for a chart over [start, end], its name, and a label format."""
    span = end - start
    if span <= timedelta(hours=3):
        return "10min", "10 minutes", "%Y-%m-%d %H:%M"
    if span <= timedelta(days=2):
        return "h", "hour", "%Y-%m-%d %H:00"
    if span <= timedelta(days=92):
        return "D", "day", "%Y-%m-%d"
    return "W-MON", "week", "week of %Y-%m-%d"  # weeks starting on Monday


def counts_over_time(
    items: Sequence[Prediction], classes: Sequence[str]
) -> tuple[pd.DataFrame, str]:
    """Predictions per time bucket (rows, oldest first) and class (columns), and the bucket's name.

    Every bucket between the first and the last prediction is a row, empty ones with zeros, and
    rows are labelled with text so that the chart draws one readable bar per bucket.
    """
    stamped = [(p.created_at, p.prediction) for p in items if p.created_at is not None]
    if not stamped:
        return pd.DataFrame(columns=list(classes)), "day"
    frame = pd.DataFrame(stamped, columns=["created_at", "prediction"])
    created = pd.to_datetime(frame["created_at"], utc=True).dt.tz_localize(None)  # UTC
    freq, name, label = time_bucket(created.min(), created.max())
    if freq == "W-MON":  # weeks are not fixed lengths for floor(): go through periods
        frame["bucket"] = created.dt.to_period("W-SUN").dt.start_time
    else:
        frame["bucket"] = created.dt.floor(freq)
    every = pd.date_range(frame["bucket"].min(), frame["bucket"].max(), freq=freq)
    table = frame.pivot_table(index="bucket", columns="prediction", aggfunc="size", fill_value=0)
    order = list(classes) + sorted(set(table.columns) - set(classes))
    table = table.reindex(index=every, columns=order, fill_value=0)
    table.index = [stamp.strftime(label) for stamp in table.index]
    table.index.name = name
    table.columns.name = None
    return table.astype(int), name
