"""Schema versions (mlsys/schema_versions.py): read from the header line and the bytes,
written only from the version the writer started from, watched by long-running processes."""

from __future__ import annotations

import hashlib
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

import psycopg2
import pytest

from mlsys.config import ROOT
from mlsys.features import SchemaError
from mlsys.schema_versions import (
    SchemaChanged,
    SchemaVersion,
    SchemaWatch,
    read_schema_version,
    read_snapshot,
    record_schema_version,
    version_of_text,
    write_schema,
)
from pipelines.ingestion.result import Criticality, ValidationResult

SCHEMA = ROOT / "schema" / "schema.pbtxt"
WHEN = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


@pytest.fixture
def schema_path(tmp_path: Path) -> Path:
    path = tmp_path / "schema.pbtxt"
    shutil.copy(SCHEMA, path)
    return path


def _narrow_age(text: str, high: int) -> str:
    changed = text.replace("min: 18\n    max: 100", f"min: 18\n    max: {high}", 1)
    assert changed != text
    return changed


def test_the_curated_schema_has_a_version_and_its_hash():
    sv = read_schema_version(SCHEMA)
    raw = SCHEMA.read_bytes()
    assert sv.version == "1" and sv.sha256 == hashlib.sha256(raw).hexdigest()
    assert sv.short == f"v1 ({sv.sha256[:8]})"
    assert SchemaVersion.from_dict(sv.to_dict()) == sv


def test_a_file_without_the_header_line_is_version_0():
    body = SCHEMA.read_text(encoding="utf-8").split("\n", 1)[1]
    assert version_of_text(body).version == "0"
    # The line counts only in the leading comments, not further down.
    assert version_of_text("feature { name: 'a' }\n# schema-version: 9\n").version == "0"


def test_write_keeps_the_header_bumps_the_version_and_logs_the_change(schema_path):
    base = read_snapshot(schema_path)
    new = write_schema(schema_path, "# a comment TFDV's writer never has\n" + _narrow_age(
        base.text, 70), base=base.version, change_comment="applicants\nup to 70", author="ann",
        now=WHEN)  # fmt: skip
    after = read_snapshot(schema_path)
    assert new == after.version and new.version == "2" and new.sha256 != base.version.sha256
    lines = after.text.splitlines()
    assert lines[0] == "# schema-version: 2"
    # The old header, whole, then the change log.
    old_header = [line for line in base.text.splitlines()[1:] if line.startswith("#")][:5]
    assert lines[1:6] == old_header
    assert "#   v2 2026-12-01 by ann: applicants up to 70" in lines
    assert "# a comment TFDV's writer never has" not in after.text
    assert after.feature_spec("risk")["age"].maximum == 70
    # The per-feature comments of the body are kept.
    assert "# years; an applicant is an adult" in after.text
    third = write_schema(schema_path, _narrow_age(base.text, 80), base=new,
                         change_comment="back to 80", now=WHEN)  # fmt: skip
    text = schema_path.read_text(encoding="utf-8")
    assert third.version == "3" and text.count("# schema-version:") == 1
    assert text.index("by ann: applicants") < text.index("v3 2026-12-01: back to 80")


def test_a_writer_that_started_from_an_older_version_is_refused(schema_path):
    base = read_snapshot(schema_path)
    write_schema(schema_path, _narrow_age(base.text, 70), base=base.version, change_comment="a")
    written = schema_path.read_bytes()
    with pytest.raises(SchemaChanged, match="changed since v1") as caught:
        write_schema(schema_path, _narrow_age(base.text, 60), base=base.version,
                     change_comment="b")  # fmt: skip
    assert caught.value.found.version == "2"
    assert schema_path.read_bytes() == written  # nothing written


def test_of_two_concurrent_writers_from_one_version_exactly_one_wins(schema_path):
    base = read_snapshot(schema_path)
    outcomes: list[object] = []
    start = threading.Barrier(8)

    def write(high: int) -> None:
        start.wait()
        try:
            outcomes.append(write_schema(schema_path, _narrow_age(base.text, high),
                                         base=base.version, change_comment=f"max {high}"))  # fmt: skip
        except SchemaChanged as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=write, args=(60 + i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [o for o in outcomes if isinstance(o, SchemaVersion)]
    assert len(won) == 1 and len(outcomes) == 8
    assert read_schema_version(schema_path) == won[0]
    assert not list(schema_path.parent.glob(".schema.pbtxt.*.tmp"))


@pytest.mark.parametrize(
    ("text", "error"),
    [("feature { name: ", SchemaError), ("default_environment: 'SERVING'\n", SchemaError)],
)
def test_a_text_that_is_not_a_servable_schema_is_refused_and_nothing_written(
    schema_path, text, error
):
    base = read_snapshot(schema_path)
    with pytest.raises(error):
        write_schema(schema_path, text, base=base.version, change_comment="broken")
    with pytest.raises(ValueError, match="needs a comment"):
        write_schema(schema_path, _narrow_age(base.text, 70), base=base.version,
                     change_comment="  ")  # fmt: skip
    assert schema_path.read_bytes() == SCHEMA.read_bytes()


def test_a_watch_follows_the_file_and_keeps_the_last_good_version(schema_path):
    watch = SchemaWatch(schema_path, target="risk")
    first = watch.current()
    assert watch.current() is first  # unchanged: the same snapshot, no re-read
    new = write_schema(schema_path, _narrow_age(first.text, 70), base=first.version,
                       change_comment="70")  # fmt: skip
    second = watch.current()
    assert second.version == new and second.feature_spec("risk")["age"].maximum == 70
    schema_path.write_text("feature { name: ", encoding="utf-8")
    assert watch.current() is second and "not a valid TFDV schema" in watch.error
    schema_path.unlink()
    assert watch.current() is second
    with pytest.raises(SchemaError, match="cannot read schema"):
        SchemaWatch(schema_path)


def test_the_validation_result_carries_its_schema_version():
    sv = read_schema_version(SCHEMA)
    result = ValidationResult("f.csv", 3, 0, Criticality.NONE, schema_version=sv)
    data = result.to_dict()
    assert data["schema_version"] == sv.to_dict()
    assert ValidationResult.from_dict(data).schema_version == sv
    old = {k: v for k, v in data.items() if k != "schema_version"}  # an XCom from before
    assert ValidationResult.from_dict(old).schema_version is None


def test_recording_a_version_fills_in_and_never_overwrites(db_conn, schema_path):
    snapshot = read_snapshot(schema_path)
    sv = snapshot.version
    with db_conn.cursor() as cur:  # the proposal the version came from (a key, migration 0010)
        cur.execute(
            """INSERT INTO schema_proposals (change_key, change, title, evidence,
                   evidence_fingerprint, diff, new_text, base_sha256)
               VALUES ('category:purpose:x', '{}', 't', '{}', %s, '', '', %s) RETURNING id""",
            ("e" * 64, sv.sha256),
        )
        [proposal_id] = cur.fetchone()
    record_schema_version(db_conn, sv)
    record_schema_version(db_conn, sv, text=snapshot.text, approved_by="ann", reason="why",
                          proposal_id=proposal_id)  # fmt: skip
    record_schema_version(db_conn, sv, approved_by="bob", reason="other")
    with db_conn.cursor() as cur:
        cur.execute("SELECT version, schema_text, approved_by, reason, proposal_id "
                    "FROM schema_versions WHERE sha256 = %s", (sv.sha256,))  # fmt: skip
        assert cur.fetchall() == [("1", snapshot.text, "ann", "why", proposal_id)]
    with pytest.raises(ValueError, match="not the content"):
        record_schema_version(db_conn, sv, text=snapshot.text + " ")
    with db_conn.cursor() as cur, pytest.raises(psycopg2.errors.ForeignKeyViolation):
        cur.execute(
            """INSERT INTO ingestion_files (file_name, rows_total, rows_valid, rows_invalid,
                   criticality, schema_version, schema_sha256)
               VALUES ('x.csv', 0, 0, 0, 'none', '9', %s)""",
            ("f" * 64,),
        )
