"""Benchmark of the ingestion: one run of `ingest_data` on a 1,000-row file.

Figures: the time in the TFDV import, statistics, validation and the rest, inside the tfdv
environment; then a whole `dag.test()` run with a cold TFDV import (no worker) beside the same
run with the warm TFDV worker, on a throw-away PostgreSQL and Airflow metadata database.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pandas as pd

from mlsys.config import ROOT, get_settings
from mlsys.db import migrate
from ops import pg
from pipelines.airflow_env import airflow_environment

TFDV_PY, AIRFLOW_PY = get_settings().venv_python("tfdv"), get_settings().venv_python("airflow")


def write_file(folder: Path, name: str) -> Path:
    s = get_settings()
    frame = pd.read_csv(s.dataset_path, dtype=str, keep_default_na=False).drop(
        columns=[s.target_column]
    )
    frame.iloc[10, 0] = "unknown"  # a few bad rows, so that every step has work
    frame.iloc[20, -1] = "-5"
    path = folder / name
    frame.to_csv(path, index=False)
    return path


def dag_run(env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run([str(AIRFLOW_PY), "-m", "pipelines.run_dag", "ingest_data"], env=env,
                         cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    last = [line for line in out.stdout.splitlines() if line.startswith("{")]
    state = json.loads(last[-1])["state"] if last else f"no outcome: {out.stderr[-500:]}"
    return time.perf_counter() - started, state


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        base = Path(tmp)
        data = base / "data"
        for sub in ("raw-data", "good_data", "bad_data", "reports"):
            (data / sub).mkdir(parents=True)
        sample = write_file(base, "sample.csv")
        out = subprocess.run([str(TFDV_PY), "-m", "bench.ingest_timing", str(sample), str(data / "good_data")],
                             cwd=ROOT, capture_output=True, text=True)  # fmt: skip
        if out.returncode != 0:
            print(out.stderr[-3000:])
            return 1
        t = json.loads(out.stdout.strip().splitlines()[-1])
        print("validation of a 1,000-row file inside the tfdv environment (seconds):")
        for key in ("tfdv_import", "read_csv", "row_checks", "statistics", "validate_statistics",
                    "drift_compare", "validate_file_first", "validate_file_warm"):  # fmt: skip
            print(f"  {key:<22} {t[key]:8.3f}")
        print(
            f"  -> a warm validation is {t['tfdv_import'] / t['validate_file_warm']:.0f}x shorter than the import alone"
        )

        server = pg.EmbeddedServer(base / "pg", port=pg.free_port())
        pg.start(server)
        try:
            pg.ensure_database(server.dsn(), "app")
            pg.ensure_database(server.dsn(), "airflow")
            migrate(server.url("app"))
            env = os.environ | airflow_environment(get_settings(), home=base / "airflow",
                                                   metadata_url=server.url("airflow")) | {
                "DATA_DIR": str(data), "DATABASE_URL": server.url("app"), "TEAMS_WEBHOOK_URL": "",
            }  # fmt: skip
            subprocess.run([str(AIRFLOW_PY.parent / "airflow"), "db", "migrate"], env=env,
                           capture_output=True, check=True)  # fmt: skip
            write_file(data / "raw-data", "cold.csv")
            cold, cold_state = dag_run(
                env | {"TFDV_WORKER_URL": f"http://127.0.0.1:{pg.free_port()}"}
            )
            port = pg.free_port()
            worker = subprocess.Popen([str(TFDV_PY), "-m", "pipelines.ingestion.tfdv_worker", "--port", str(port)],
                                      cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
            try:
                for _ in range(240):
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                        break
                    except OSError:
                        time.sleep(0.5)
                write_file(data / "raw-data", "warm.csv")
                warm, warm_state = dag_run(env | {"TFDV_WORKER_URL": f"http://127.0.0.1:{port}"})
            finally:
                worker.terminate()
                worker.wait()
        finally:
            pg.stop(server)
        print(
            "one dag.test() run of ingest_data on a 1,000-row file (wall seconds, incl. Airflow start-up):"
        )
        print(f"  cold (TFDV imported in the task)   {cold:7.1f}  [{cold_state}]")
        print(
            f"  warm (TFDV worker)                 {warm:7.1f}  [{warm_state}]  reference: cold run above"
        )
        print(f"  -> the worker saves {cold - warm:.1f} s per run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
