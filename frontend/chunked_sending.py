"""Sending checked records to the API in chunks, resumable, each chunk with an Idempotency-Key.

Each chunk is all-or-nothing on the API side; `BatchOutcome` keeps what was stored so that a
Streamlit rerun, a timeout or the API going down never leaves a row sent twice or lost.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from frontend.api_client import ApiClient, ApiError, ApiRejected, Prediction, RecordError
from frontend.upload_checks import CellProblem


def chunk_bounds(total: int, size: int) -> Iterator[tuple[int, int]]:
    """[start, end) of each chunk of `size` records."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    for start in range(0, total, size):
        yield start, min(start + size, total)


def api_problems(
    errors: Sequence[RecordError], *, offset: int, rows: Sequence[int] | None = None
) -> list[CellProblem]:
    """The API's record errors of a chunk starting at record `offset` -> rows of the file.

    `rows`: the file row number of each record sent (from 1); None when record i is row i + 1.
    An error that names no record is put on the chunk's first row.
    """

    def row(record: int | None) -> int:
        i = offset + (record if record is not None else 0)
        return rows[i] if rows is not None else i + 1

    return [
        CellProblem(
            row=row(e.record),
            column=e.field or "",
            value="" if e.value is None else str(e.value),
            message=e.message,
            rule=e.rule,
        )
        for e in errors
    ]


def describe_rows(rows: Sequence[int]) -> str:
    """Row numbers sent together, for a sentence: "rows 3 to 12", or "the 8 valid rows among
    rows 3 to 12" when invalid rows in between were not sent."""
    if not rows:
        return "no row"
    first, last = rows[0], rows[-1]
    if len(rows) == 1:
        return f"row {first}"
    if last - first + 1 == len(rows):
        return f"rows {first} to {last}"
    return f"the {len(rows)} valid rows among rows {first} to {last}"


@dataclass
class BatchOutcome:
    """A file being sent in chunks: the predictions received so far, and the failure if any.

    Chunks before a failed one are stored by the API (each chunk is all-or-nothing), so the
    outcome keeps their predictions, says exactly which rows were and were not stored, and
    sending can resume at the first row not stored, never sending a stored row twice.
    """

    total: int
    # The file row number (from 1) of each record, when invalid rows are not sent; None when
    # record i is row i + 1. Messages and the API's refusals name these rows.
    rows: list[int] | None = None
    predictions: list[Prediction] = field(default_factory=list)
    error: str | None = None
    problems: list[CellProblem] = field(default_factory=list)
    # Records [start, end) of the chunk the API refused (all-or-nothing: none of them stored).
    refused: tuple[int, int] | None = None
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

    def file_rows(self, start: int = 0, end: int | None = None) -> list[int]:
        """The file row numbers of records [start, end)."""
        end = self.total if end is None else end
        return (
            list(self.rows[start:end]) if self.rows is not None else list(range(start + 1, end + 1))
        )

    def retry(self) -> None:
        """Forget the failure, so that sending resumes at the first row not stored."""
        self.error, self.problems, self.retryable, self.refused = None, [], False, None


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
    if outcome.rows is not None and len(outcome.rows) != outcome.total:
        raise ValueError(f"outcome of {outcome.total} records has {len(outcome.rows)} row numbers")
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
                f"{_capital(describe_rows(outcome.file_rows(0, start)))} were predicted and "
                f"stored; {describe_rows(outcome.file_rows(start))} were not."
                if start
                else "Nothing was stored."
            )
            reason = str(exc)
            if isinstance(exc, ApiRejected):
                outcome.problems = api_problems(exc.errors, offset=start, rows=outcome.rows)
                outcome.refused = (start, end)
                reason = (
                    f"The API refused {describe_rows(outcome.file_rows(start, end))}: {exc.detail}"
                )
            outcome.error = f"{reason} {stored}"
            outcome.retryable = not isinstance(exc, ApiRejected)
            return
        outcome.predictions.extend(result.predictions)
        if on_progress is not None:
            on_progress(end, total)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
