"""The warm TFDV worker judges each file by the schema file as it is when the file's validation
starts, names that version in the result, and needs no restart after a new version is written;
a validation in flight finishes with the version it started with (issue 16)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest

from mlsys.config import ROOT
from mlsys.features import SchemaError
from mlsys.schema_versions import read_snapshot, write_schema
from pipelines.config import load_pipeline_settings
from pipelines.ingestion.result import ValidationResult
from pipelines.ingestion.tasks import validation_config
from pipelines.ingestion.tfdv_worker import validate_via_worker

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def rows(settings) -> pd.DataFrame:
    """50 clean rows of the data set, 10 of them aged over 65 (within the schema's 18..100)."""
    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False)
    frame = frame.drop(columns=[settings.target_column])
    ages = frame["age"].astype(int)
    old, young = frame[ages > 65].head(10), frame[ages <= 65].head(40)
    assert len(old) == 10 and len(young) == 40
    return pd.concat([young, old], ignore_index=True)


def _age_issue(result: ValidationResult) -> int:
    return sum(i.row_count for i in result.issues if (i.error_type, i.column) ==
               ("out_of_range", "age"))  # fmt: skip


def test_a_new_schema_applies_to_the_next_file_and_not_to_the_one_in_flight(
    tfdv_worker: str, data_dir: Path, rows: pd.DataFrame, tmp_path: Path
):
    schema_path = tmp_path / "schema.pbtxt"
    shutil.copy(ROOT / "schema" / "schema.pbtxt", schema_path)
    first = read_snapshot(schema_path)
    config = validation_config(load_pipeline_settings({"DATA_DIR": str(data_dir)}))
    config |= {"schema_path": str(schema_path)}
    text = rows.to_csv(index=False)

    before = data_dir / "raw-data" / "before.csv"
    before.write_text(text, encoding="utf-8")
    judged = ValidationResult.from_dict(validate_via_worker(tfdv_worker, str(before), config, 120))
    assert judged.schema_version == first.version
    assert (judged.rows_invalid, _age_issue(judged)) == (0, 0)

    # A file whose validation has started (the worker read the schema, then opened the file:
    # a FIFO, so that it waits for its rows) while a new schema is written.
    inflight = data_dir / "raw-data" / "inflight.csv"
    os.mkfifo(inflight)
    outcome: dict = {}

    def post() -> None:
        outcome["result"] = validate_via_worker(tfdv_worker, str(inflight), config, 120)

    thread = threading.Thread(target=post)
    thread.start()
    with open(inflight, "w", encoding="utf-8") as fifo:  # blocks until the worker reads it
        narrowed = first.text.replace("min: 18\n    max: 100", "min: 18\n    max: 65", 1)
        second = write_schema(schema_path, narrowed, base=first.version,
                              change_comment="applicants up to 65 only", author="test")  # fmt: skip
        fifo.write(text)
    thread.join(timeout=120)
    in_flight = ValidationResult.from_dict(outcome["result"])
    assert in_flight.schema_version == first.version  # the version it started with
    assert (in_flight.rows_invalid, _age_issue(in_flight)) == (0, 0)

    after = data_dir / "raw-data" / "after.csv"
    after.write_text(text, encoding="utf-8")
    judged = ValidationResult.from_dict(validate_via_worker(tfdv_worker, str(after), config, 120))
    assert judged.schema_version == second and second.version == "2"
    assert (judged.rows_invalid, _age_issue(judged)) == (10, 10)
    # TFDV judged the valid rows with the same (new) text: no anomaly the rows do not explain.
    assert not [i for i in judged.issues if i.error_type.startswith("tfdv_")]


@pytest.mark.parametrize(
    "damage",
    ["a brace lost in an edit", "the file removed", "not UTF-8"],
)
def test_a_schema_that_cannot_be_used_is_named_in_one_line_and_the_worker_goes_on(
    tfdv_worker: str, data_dir: Path, rows: pd.DataFrame, tmp_path: Path, damage: str
):
    """A curator's broken edit of schema.pbtxt: the task is told which file and what is wrong
    (SchemaError, no traceback), and the worker judges the next file once it is mended."""
    schema_path = tmp_path / "schema.pbtxt"
    good = (ROOT / "schema" / "schema.pbtxt").read_text()
    if damage == "a brace lost in an edit":
        schema_path.write_text(good.replace("}", "", 1))
    elif damage == "not UTF-8":
        schema_path.write_bytes(good.encode() + b"\n# caf\xe9\n")
    config = validation_config(load_pipeline_settings({"DATA_DIR": str(data_dir)}))
    config |= {"schema_path": str(schema_path)}
    path = data_dir / "raw-data" / f"broken-schema-{damage.split()[1]}.csv"
    path.write_text(rows.to_csv(index=False), encoding="utf-8")
    with pytest.raises(SchemaError) as raised:
        validate_via_worker(tfdv_worker, str(path), config, 120)
    message = str(raised.value)
    assert str(schema_path) in message and "Traceback" not in message
    assert len(message.splitlines()) == 1
    expected = {"a brace lost in an edit": "is not a valid TFDV schema",
                "the file removed": "cannot read schema", "not UTF-8": "is not UTF-8"}  # fmt: skip
    assert expected[damage] in message
    schema_path.write_text(good)
    judged = ValidationResult.from_dict(validate_via_worker(tfdv_worker, str(path), config, 120))
    assert judged.rows_valid == len(rows)
