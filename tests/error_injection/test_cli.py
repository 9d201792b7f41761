"""The `python -m error_injection generate` command, run as the Makefile runs it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from error_injection import cli, errors
from mlsys import csvfile, rowchecks
from tests.conftest import APP_PYTHON


def generate(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"DATA_DIR": str(data_dir)}
    return subprocess.run(
        [str(APP_PYTHON), "-m", "error_injection", "generate", "--no-progress", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("data")
    result = generate(data_dir)
    assert result.returncode == 0, result.stderr
    assert "wrote 20 files (10 with an error)" in result.stdout
    return data_dir


def test_default_run_writes_20_files_of_50_rows_and_a_manifest_each(default_run, settings):
    raw, manifests = default_run / "raw-data", default_run / "manifests"
    files = sorted(p.name for p in raw.iterdir())
    assert len(files) == 20 and all(f.endswith(".csv") for f in files)  # no temporary file left
    assert sorted(p.name for p in manifests.iterdir()) == [
        f.replace(".csv", ".json") for f in files
    ]
    documents = [json.loads((manifests / f.replace(".csv", ".json")).read_text()) for f in files]
    assert [d["file"] for d in documents] == files
    ranges = [(d["source_rows"]["start"], d["source_rows"]["stop"]) for d in documents]
    assert ranges == [(i, i + 50) for i in range(0, 1000, 50)]
    assert sum(not d["clean"] for d in documents) == 10
    assert {d["seed"] for d in documents} == {42}
    for d in documents:
        for injection in d["injections"]:
            assert injection["level"] == errors.REGISTRY[injection["error_type"]].level


def test_every_file_shows_the_row_checks_exactly_what_its_manifest_says(
    default_run, spec, settings
):
    """The contract with the ingestion: its row checks flag the manifest's rows, no others."""
    for path in sorted((default_run / "raw-data").glob("*.csv")):
        manifest = json.loads((default_run / "manifests" / f"{path.stem}.json").read_text())
        try:
            frame = rowchecks.read_raw_csv(path)
        except csvfile.CsvRefused as exc:
            assert manifest["unusable"], f"{path.name}: {exc}"
            assert exc.rule in [i["check"] for i in manifest["injections"]], path.name
            continue
        assert settings.target_column not in frame.columns, path.name
        checks = rowchecks.check_rows(frame, spec)
        if manifest["unusable"]:
            assert checks.unusable or checks.rows_total == 0, path.name
        else:
            assert checks.rows_total == manifest["rows_written"], path.name
            assert checks.bad_rows == manifest["bad_rows"], path.name
            if manifest["clean"]:
                assert checks.reasons == [] and checks.unexpected_columns == [], path.name


def test_the_same_seed_gives_the_same_files_and_another_seed_others(default_run, tmp_path):
    again = generate(tmp_path / "again")
    assert again.returncode == 0, again.stderr
    for folder in ("raw-data", "manifests"):
        assert snapshot(tmp_path / "again" / folder) == snapshot(default_run / folder)
    other = generate(tmp_path / "other", "--seed", "7")
    assert other.returncode == 0, other.stderr
    names = sorted(p.name for p in (tmp_path / "other" / "raw-data").iterdir())
    assert names[0] == "raw-s7-0001.csv"
    # Other bad files, other types, other rows: the set of file contents differs.
    assert set(snapshot(tmp_path / "other" / "raw-data").values()) != set(
        snapshot(default_run / "raw-data").values()
    )


def test_rows_per_file_types_and_shares_are_obeyed(tmp_path):
    result = generate(
        tmp_path, "--rows-per-file", "300", "--error-share", "1", "--row-share", "0.2",
        "--types", "missing_value,duplicate_rows", "--errors-per-file", "2", "--prefix", "batch",
        "--out", str(tmp_path / "in"), "--manifests", str(tmp_path / "m"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    documents = [json.loads(p.read_text()) for p in sorted((tmp_path / "m").glob("*.json"))]
    assert [d["file"] for d in documents] == [f"batch-{i:04d}.csv" for i in range(1, 5)]
    assert [d["source_rows"]["stop"] - d["source_rows"]["start"] for d in documents] == [
        300, 300, 300, 100
    ]  # fmt: skip
    for d in documents:
        # Duplicates go first (they insert rows); the share applies to the rows at that point.
        copies, missing = d["injections"]
        assert (copies["error_type"], missing["error_type"]) == ("duplicate_rows", "missing_value")
        size = d["source_rows"]["stop"] - d["source_rows"]["start"]
        assert len(copies["rows"]) == round(0.2 * size)
        assert d["rows_written"] == size + len(copies["rows"])
        assert len(missing["rows"]) == round(0.2 * d["rows_written"])
        assert len(d["bad_rows"]) == len(copies["rows"]) + len(missing["rows"])


def test_an_earlier_run_is_never_overwritten_unless_asked(default_run, capsys):
    before = snapshot(default_run / "raw-data")
    folders = [
        "--out",
        str(default_run / "raw-data"),
        "--manifests",
        str(default_run / "manifests"),
    ]
    refused = cli.main(["generate", "--no-progress", *folders, "--types", "empty_file"])
    assert refused == 2
    message = capsys.readouterr().err
    assert "already exist" in message and "--overwrite" in message
    assert snapshot(default_run / "raw-data") == before
    assert cli.main(["generate", "--no-progress", *folders, "--overwrite"]) == 0
    assert snapshot(default_run / "raw-data") == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--types", "missing_value,typo"], "unknown error type(s): typo; known: missing_value"),
        (["--error-share", "1.5"], "1.5 is not between 0 and 1"),
        (["--seed", "-1"], "the seed must be a non-negative integer, got -1"),
        (["--files", "0"], "0 is not a positive integer"),
        (["--errors-per-file", "0"], "0 is not a positive integer"),
        (["--files", "2000"], "cannot split 1000 rows into 2000 non-empty files"),
        (["--files", "3", "--rows-per-file", "4"], "not allowed with argument"),
        (["--manifests", "RAW"], "manifests must not go to the raw-data folder"),
    ],
)
def test_bad_arguments_get_a_clear_error_and_write_nothing(tmp_path, capsys, args, message):
    """In process (the command is thin glue over `main`); always aimed at temporary folders."""
    raw = tmp_path / "raw"
    args = [str(raw) if a == "RAW" else a for a in args]
    argv = ["generate", "--no-progress", "--out", str(raw), "--manifests", str(tmp_path / "m")]
    try:
        code = cli.main(argv + args)
    except SystemExit as exc:  # argparse rejects the value itself
        code = exc.code
    assert code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_help_and_the_list_of_types(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["generate", "--help"])
    assert exited.value.code == 0
    helped = capsys.readouterr().out
    for option in ("--files", "--rows-per-file", "--error-share", "--row-share", "--seed",
                   "--types", "--out", "--manifests"):  # fmt: skip
        assert option in helped
    assert cli.main(["types"]) == 0
    listed = capsys.readouterr().out
    for name, t in errors.REGISTRY.items():
        assert f"{name:18} {t.level}" in listed
