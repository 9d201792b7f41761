"""Run the benchmarks: `python -m bench [NAME ...]` (what `make bench` calls).

Every module `bench/<name>_bench.py` is a benchmark: it defines `main() -> int`, prints its
figures, each beside a reference measured in the same run, and exits non-zero only when it
could not measure. Each one runs in its own process, one after the other, so that they never
compete for the two cores and a crash in one does not hide the others' figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUFFIX = "_bench"


def discover() -> list[str]:
    return sorted(p.stem for p in HERE.glob(f"*{SUFFIX}.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all), e.g. service")
    args = parser.parse_args(argv)
    found = discover()
    wanted = [n if n.endswith(SUFFIX) else n + SUFFIX for n in args.names] or found
    unknown = [n for n in wanted if n not in found]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; found {found}", file=sys.stderr)
        return 2
    results = []
    for name in wanted:
        print(f"=== bench.{name} ===", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=HERE.parent).returncode
        results.append((name, code, time.monotonic() - started))
    print("=== summary ===")
    for name, code, seconds in results:
        print(f"{name:<30} {'ok' if code == 0 else f'FAILED ({code})':<12} {seconds:6.0f} s")
    return 0 if all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
