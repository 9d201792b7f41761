"""Sending in chunks (frontend/chunked_sending.py); against the real API in test_pages.py."""

from __future__ import annotations

import pytest

from frontend import chunked_sending
from frontend.api_client import RecordError
from frontend.upload_checks import CellProblem


def test_chunks_cover_every_record_once():
    assert list(chunked_sending.chunk_bounds(7, 3)) == [(0, 3), (3, 6), (6, 7)]
    assert list(chunked_sending.chunk_bounds(6, 3)) == [(0, 3), (3, 6)]
    assert list(chunked_sending.chunk_bounds(0, 3)) == []
    with pytest.raises(ValueError):
        list(chunked_sending.chunk_bounds(3, 0))


def test_api_errors_of_a_chunk_point_at_rows_of_the_file():
    errors = [RecordError(record=2, field="age", value=-5, message="-5 is below the minimum 18")]
    assert chunked_sending.api_problems(errors, offset=500) == [
        CellProblem(row=503, column="age", value="-5", message="-5 is below the minimum 18")
    ]


def test_api_errors_name_the_file_rows_when_invalid_rows_were_not_sent():
    rows = [1, 3, 4, 8, 9]  # rows 2, 5, 6 and 7 were invalid: records 0-4 are these rows
    errors = [RecordError(record=1, field="age", value=5, message="below"),
              RecordError(record=None, field=None, value=None, message="whole chunk")]  # fmt: skip
    assert chunked_sending.api_problems(errors, offset=2, rows=rows) == [
        CellProblem(row=8, column="age", value="5", message="below"),
        CellProblem(row=4, column="", value="", message="whole chunk"),  # the chunk's first row
    ]


def test_rows_sent_together_are_described_without_hiding_the_gaps():
    assert chunked_sending.describe_rows([3]) == "row 3"
    assert chunked_sending.describe_rows([3, 4, 5]) == "rows 3 to 5"
    assert chunked_sending.describe_rows([3, 4, 9]) == "the 3 valid rows among rows 3 to 9"
    outcome = chunked_sending.BatchOutcome(total=3)
    assert outcome.file_rows() == [1, 2, 3] and outcome.file_rows(1, 2) == [2]
    outcome = chunked_sending.BatchOutcome(total=3, rows=[2, 5, 6])
    assert outcome.file_rows(1) == [5, 6]


def test_an_outcome_refuses_records_that_do_not_match_its_row_numbers():
    outcome = chunked_sending.BatchOutcome(total=2, rows=[1])
    with pytest.raises(ValueError, match="2 records has 1 row numbers"):
        chunked_sending.send_in_chunks(None, [{}, {}], chunk_size=1, outcome=outcome)  # type: ignore[arg-type]
