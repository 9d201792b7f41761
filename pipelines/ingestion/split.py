"""Split a validated file into good_data and bad_data, atomically, losing no row."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from mlsys.rowchecks import read_raw_csv
from pipelines.ingestion.durable import sync_paths

ROW_COLUMN, ERRORS_COLUMN = "_source_row", "_errors"


def _write_atomic_csv(frame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")  # not *.csv: never picked up half-written
    frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


def split_file(
    claimed: Path, result: dict[str, Any], good_dir: Path, bad_dir: Path
) -> dict[str, Any]:
    """Good rows -> good_dir/<name> (extra columns dropped), bad rows with their reasons ->
    bad_dir/<name>; a file that cannot be parsed goes to bad_dir as it is, with its reasons
    beside it. The claimed file is removed only after every write succeeded.

    Idempotent: a retry after the claimed file is gone finds the outputs and reports them.
    """
    good_dir.mkdir(parents=True, exist_ok=True)
    bad_dir.mkdir(parents=True, exist_ok=True)
    good_path, bad_path = good_dir / claimed.name, bad_dir / claimed.name
    if not claimed.exists():
        if good_path.exists() or bad_path.exists():
            return {"good": str(good_path) if good_path.exists() else None,
                    "bad": str(bad_path) if bad_path.exists() else None, "retried": True}  # fmt: skip
        raise FileNotFoundError(f"{claimed} is gone and no output of it exists")

    if result["parse_error"] or (result["unusable"] and result["rows_total"] == 0):
        tmp = bad_path.with_name(f".{bad_path.name}.tmp")
        shutil.copyfile(claimed, tmp)
        os.replace(tmp, bad_path)
        reasons = bad_path.with_suffix(".reasons.json")
        reasons.write_text(json.dumps({"file": result["file"], "issues": result["issues"],
                                       "parse_error": result["parse_error"]}, indent=2))  # fmt: skip
        sync_paths([bad_path, reasons])  # on disk before the raw file goes
        claimed.unlink()
        return {
            "good": None,
            "bad": str(bad_path),
            "good_rows": 0,
            "bad_rows": result["rows_total"],
        }

    raw = read_raw_csv(claimed)
    bad_index = sorted(int(r) for r in result["bad_rows"])
    if len(raw) != result["rows_total"]:
        raise ValueError(f"{claimed.name}: {len(raw)} rows now, {result['rows_total']} validated")
    good = raw.drop(index=bad_index).drop(columns=result.get("unexpected_columns", []))
    bad = raw.loc[bad_index].copy()
    bad.insert(0, ROW_COLUMN, bad_index)
    bad[ERRORS_COLUMN] = [json.dumps(result["bad_rows"][str(i)]) for i in bad_index]
    if len(good) + len(bad) != len(raw):
        raise AssertionError("rows in != good rows + bad rows")
    if len(good):
        _write_atomic_csv(good, good_path)
    if len(bad):
        _write_atomic_csv(bad, bad_path)
    sync_paths([good_path if len(good) else None, bad_path if len(bad) else None])
    claimed.unlink()
    return {
        "good": str(good_path) if len(good) else None,
        "bad": str(bad_path) if len(bad) else None,
        "good_rows": len(good),
        "bad_rows": len(bad),
    }
