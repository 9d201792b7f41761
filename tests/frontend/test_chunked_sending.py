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
