"""Validate generated raw files with TFDV, the way the ingestion does, and print JSON.

Runs in the `tfdv` environment, one process for many files (importing TFDV costs ~20 s):
    .venvs/tfdv/bin/python -m error_injection.tfdv_check data/raw-data/*.csv
For each file: the read error if pandas cannot read it, else the TFDV anomalies per feature
(SERVING environment) and the drift of every feature against the training statistics. The
judging (does each file show what its manifest promises?) is done by the tests, on this JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mlsys.config import get_settings


def check_file(path: Path, schema_path: Path, training_stats_path: Path) -> dict[str, Any]:
    import pandas as pd

    from mlsys import tfdv_validate as tv

    result: dict[str, Any] = {"file": path.name, "read_error": None, "rows": None}
    try:
        # As the DAG hands a file to TFDV: pd.read_csv, mixed columns become strings.
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        result["read_error"] = f"{type(exc).__name__}: {exc}"
        return result
    result["rows"] = len(frame)
    frame = tv.prepare_frame(frame, schema_path)
    stats = tv.statistics(frame)
    result["anomalies"] = {a.feature: list(a.types) for a in tv.file_anomalies(stats, schema_path)}
    result["drift"] = {
        d.feature: {"metric": d.metric, "value": d.value, "threshold": d.threshold}
        for d in tv.drift(stats, schema_path, training_stats_path)
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m error_injection.tfdv_check", description=__doc__
    )
    parser.add_argument("paths", nargs="+", type=Path, help="CSV files or folders of them")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        parser.error(f"no such file or folder: {', '.join(missing)}")
    settings = get_settings()
    files = sorted(
        p for path in args.paths for p in (sorted(path.glob("*.csv")) if path.is_dir() else [path])
    )
    results = [check_file(p, settings.schema_path, settings.training_stats_path) for p in files]
    json.dump(results, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
