"""Timings of validating one file inside the `tfdv` environment (run by bench/ingest_bench.py).

    .venvs/tfdv/bin/python -m bench.ingest_timing FILE GOOD_DATA_DIR
Prints one JSON line: seconds spent in each step.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    path, good = Path(sys.argv[1]), Path(sys.argv[2])
    t0 = time.perf_counter()
    import tensorflow_data_validation  # noqa: F401

    t_import = time.perf_counter() - t0
    from mlsys import rowchecks
    from mlsys import tfdv_validate as tv
    from mlsys.config import get_settings
    from mlsys.features import get_feature_spec
    from pipelines.ingestion.validate import ValidationConfig, _typed, validate_file

    s = get_settings()
    spec = get_feature_spec()
    timings: dict[str, float] = {"tfdv_import": t_import}

    def timed(name: str, fn):
        start = time.perf_counter()
        value = fn()
        timings[name] = time.perf_counter() - start
        return value

    raw = timed("read_csv", lambda: rowchecks.read_raw_csv(path))
    timed("row_checks", lambda: rowchecks.check_rows(raw, spec))
    frame = tv.prepare_frame(_typed(raw), s.schema_path)
    stats = timed("statistics", lambda: tv.statistics(frame))
    timed("validate_statistics", lambda: tv.file_anomalies(stats, s.schema_path))
    timed("drift_compare", lambda: tv.drift(stats, s.schema_path, s.training_stats_path))
    config = ValidationConfig(s.schema_path, s.training_stats_path, s.target_column, good)
    timed("validate_file_first", lambda: validate_file(path, config))
    timed("validate_file_warm", lambda: validate_file(path, config))
    print(json.dumps(timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
