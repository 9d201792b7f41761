"""The one CSV reader (`mlsys.csvfile`): every shape of `csv_shapes.SHAPES` parsed correctly or
refused with a reason naming the problem, the same in pandas 3 (here) and pandas 1.5 (`tfdv`)."""

from __future__ import annotations

import io
import json
import subprocess

import pandas as pd
import pytest

from mlsys import csvfile, rowchecks
from mlsys.config import ROOT
from tests.conftest import AIRFLOW_PYTHON, TFDV_PYTHON
from tests.data.csv_shapes import SHAPES, Shape, case_file, outcome


@pytest.mark.parametrize("shape", SHAPES, ids=[s.id for s in SHAPES])
def test_each_shape_is_read_or_refused_with_its_reason(shape: Shape):
    got = outcome(shape.data)
    if shape.refused:
        assert (got.get("rule"), got["rows"]) == (shape.refused, shape.rows), got
        for part in shape.reason:
            assert part in got["reason"], got["reason"]
        return
    assert "rule" not in got, got
    assert got["columns"] == list(shape.columns)
    assert got["rows"] == shape.rows
    assert got["index"] == list(range(shape.rows))  # a default RangeIndex, blank lines gone
    assert got["types"] in ([], ["str"])  # every cell is text, exactly as received
    if shape.first:
        first = dict(zip(got["columns"], got["cells"][0], strict=True))
        assert {k: first[k] for k in shape.first} == shape.first
    assert (got["delimiter"], got["encoding"]) == (shape.delimiter, shape.encoding)
    for part in shape.notes:
        assert any(part in note for note in got["notes"]), (part, got["notes"])
    if not shape.notes:
        assert got["notes"] == []


@pytest.mark.parametrize(
    "python", [TFDV_PYTHON, AIRFLOW_PYTHON], ids=["tfdv (pandas 1.5)", "airflow"]
)
def test_every_environment_reads_every_shape_the_same(python):
    """The ingestion reads in `tfdv` and `airflow`, the UI in `app`: one table, one outcome."""
    run = subprocess.run(
        [str(python), "-m", "tests.data.csv_shapes"], cwd=ROOT, capture_output=True, timeout=120
    )
    assert run.returncode == 0, run.stderr.decode()[-3000:]
    theirs = json.loads(run.stdout)
    ours = {shape.id: outcome(shape.data) for shape in SHAPES}
    for key in ours:
        assert theirs[key] == ours[key], key


def test_the_vectorised_check_of_usual_files_changes_no_outcome(monkeypatch):
    """Clean files skip the csv module's pass (`_uniform_lines`); with it forced, every shape
    and a larger clean file come out the same."""
    clean = case_file("LOANS_EXPORT.CSV")
    bigger = clean + clean.split(b"\n", 1)[1] * 200
    fast = {s.id: outcome(s.data) for s in SHAPES} | {"bigger": outcome(bigger)}
    after_header = bigger.index(b"\n") + 1
    for block in (64, 1000, 1 << 20):  # blocks of whole lines, whatever their size
        assert csvfile._uniform_lines(bigger, after_header, ",", 9, block) == 4020
    monkeypatch.setattr(csvfile, "_uniform_lines", lambda *args: None)
    slow = {s.id: outcome(s.data) for s in SHAPES} | {"bigger": outcome(bigger)}
    assert slow == fast


def test_the_trailing_comma_file_is_not_shifted():
    """pandas alone makes the extra field an index and shifts every value one column left."""
    data = case_file("trailing_comma_every_row.csv")
    table = csvfile.read_csv(data)
    shifted = pd.read_csv(io.BytesIO(data), dtype=str)
    assert shifted.iloc[0]["sex"] != "male"  # the failure this reader exists for
    assert table.frame.iloc[0].tolist() == [
        "male", "2", "own", "not_known", "little", "1169", "6", "radio/TV", "67"
    ]  # fmt: skip
    assert table.frame["age"].tolist()[:3] == ["67", "22", "49"]


def test_a_path_bytes_and_a_file_object_read_alike(tmp_path):
    data = case_file("excel_sep_hint_line.csv")
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    frames = [csvfile.read_csv(s).frame for s in (path, str(path), data, io.BytesIO(data))]
    for frame in frames[1:]:
        pd.testing.assert_frame_equal(frame, frames[0])
    pd.testing.assert_frame_equal(rowchecks.read_raw_csv(path), frames[0])


def test_the_delimiter_is_judged_on_a_head_sample_only():
    """A semicolon far past the sample does not change the delimiter; the line is then ragged
    under ',' and named."""
    rows = "male,2,67\n" * (csvfile.SAMPLE_BYTES // 10 + 100)
    data = f"sex,job,age\n{rows}female;1;22\n".encode()
    with pytest.raises(csvfile.CsvRefused) as caught:
        csvfile.read_csv(data)
    lines = rows.count("\n") + 2
    assert caught.value.rule == csvfile.RAGGED_ROWS
    assert f"line {lines} has 1" in caught.value.reason


def test_many_ragged_lines_are_counted_and_the_first_ones_named():
    data = b"a,b\n" + b"1,2,3\n" * 25
    with pytest.raises(csvfile.CsvRefused) as caught:
        csvfile.read_csv(data)
    reason = caught.value.reason
    assert "25 of 25 data lines do not" in reason and "and 15 more lines" in reason
    assert "line 2 has 3" in reason and "line 11 has 3" in reason and "line 12" not in reason


def test_count_data_lines_for_files_that_cannot_be_read():
    assert csvfile.count_data_lines(b"") == 0
    assert csvfile.count_data_lines(b"a,b\n") == 0
    assert csvfile.count_data_lines(b"a,b\n1,2\n\n  \n3,4") == 2
    assert csvfile.count_data_lines(case_file("excel_sep_hint_line.csv")) == 20
    assert csvfile.count_data_lines(b"a,b\r\n1\x00,2\r\n") == 1
    assert csvfile.count_data_lines("a,b\n1,2\n".encode("utf-16")) == 1


def test_every_refusal_rule_has_a_description():
    rules = {s.refused for s in SHAPES if s.refused}
    assert rules <= set(csvfile.RULE_DESCRIPTIONS) <= set(rowchecks.RULE_DESCRIPTIONS)
