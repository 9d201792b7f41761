"""Benchmark of the one CSV reader (`mlsys.csvfile.read_csv`) on a 1,000,000-row, 50 MB file.

Figures, in the `app` (pandas 3) and `tfdv` (pandas 1.5) environments, each in a fresh process:
wall time and peak RSS of `read_csv` on the file as `make raw-data` writes it and on the same
rows with a trailing comma on every data line, beside a bare `pandas.read_csv(dtype=str)` of
the same bytes (the reference: reading with no dialect check, no field counts, no notes).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlsys.config import ROOT, get_settings

ROWS = 1_000_000
ENVS = {env: get_settings().venv_python(env) for env in ("app", "tfdv")}


def write_files(folder: Path) -> dict[str, Path]:
    import pandas as pd

    from mlsys.config import get_settings

    s = get_settings()
    frame = pd.read_csv(s.dataset_path).drop(columns=[s.target_column])
    big = pd.concat([frame] * (ROWS // len(frame) + 1), ignore_index=True).iloc[:ROWS]
    plain, trailing = folder / "plain.csv", folder / "trailing.csv"
    big.to_csv(plain, index=False)
    with open(plain, "rb") as src, open(trailing, "wb") as out:
        out.write(src.readline())
        for line in src:
            out.write(line[:-1] + b",\n")
    return {"plain": plain, "trailing comma": trailing}


def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process. Not ru_maxrss: after fork and exec it
    still holds the parent's peak, which here built the 1M-row frame to write the files."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, path: str) -> None:
    """Runs in the measured process: one read, then its figures as one JSON line."""
    import pandas as pd

    from mlsys import csvfile

    baseline = memory_mb("VmRSS")
    start = time.perf_counter()
    if mode == "csvfile":
        rows = csvfile.read_csv(path).rows_total
    else:
        rows = len(pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False))
    seconds = time.perf_counter() - start
    peak = memory_mb("VmHWM")
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak, "import_mb": baseline}))


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="csvfile-bench-") as tmp:
        files = write_files(Path(tmp))
        size = files["plain"].stat().st_size / 1e6
        print(f"{ROWS:,} rows, {size:.0f} MB; each figure from a fresh process")
        for env, python in ENVS.items():
            if not python.exists():
                print(f"  {env}: no environment at {python}")
                continue
            for label, path in files.items():
                figures = {}
                for mode in ("csvfile", "pandas"):
                    run = subprocess.run(
                        [str(python), "-m", "bench.csvfile_bench", "--child", mode, str(path)],
                        cwd=ROOT, capture_output=True, text=True, timeout=600,
                    )  # fmt: skip
                    if run.returncode != 0:
                        print(run.stderr[-2000:], file=sys.stderr)
                        return 1
                    figures[mode] = json.loads(run.stdout.splitlines()[-1])
                ours, ref = figures["csvfile"], figures["pandas"]
                print(
                    f"  {env:4} {label:14} read_csv {ours['seconds']:5.2f} s, peak RSS "
                    f"{ours['peak_mb']:4.0f} MB ({ours['rows']:,} rows) | bare pandas "
                    f"{ref['seconds']:5.2f} s, {ref['peak_mb']:4.0f} MB ({ref['rows']:,} rows)"
                    f" | after imports {ours['import_mb']:.0f} MB"
                )
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
