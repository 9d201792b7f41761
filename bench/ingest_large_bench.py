"""Benchmark of the ingestion at size: a 1,000,000-row file (10% bad rows) through one run.

    make bench BENCH=ingest_large          (INGEST_BENCH_ROWS=200000 for a shorter run)

One whole `ingest_data` run with `dag.test()` (as the tests run it) and the warm TFDV worker,
on a throw-away PostgreSQL and Airflow metadata database. Figures: wall time of the run and of
each task (from Airflow's metadata), the peak RSS of every process involved (the Airflow
process, the `validate_data` task's tfdv interpreter, the TFDV worker), and whether the rows
are conserved exactly (good + bad rows = rows in, in the files and in `ingestion_files`).
Goal on 2 cores (issue 13): <= 30 s for the run, no process above 1.5 GB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import psycopg2

from bench.ingest_data_gen import write_large_file
from mlsys.config import ROOT, get_settings
from mlsys.db import migrate, psycopg2_dsn
from ops import pg
from pipelines.airflow_env import airflow_environment

TFDV_PY, AIRFLOW_PY = get_settings().venv_python("tfdv"), get_settings().venv_python("airflow")
ROWS = int(os.environ.get("INGEST_BENCH_ROWS", "") or 1_000_000)
BAD_SHARE = 0.10
GOAL_S, GOAL_RSS_MB = 30.0, 1536.0
KEEP_LOG = os.environ.get("INGEST_BENCH_KEEP_LOG") == "1"  # the run's output, for profiling


class PeakMemory:
    """Samples the RSS of some processes and all their descendants every 50 ms."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self.peaks: dict[int, tuple[str, float]] = {}  # pid -> (label, peak MB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _label(self, root: str, proc: psutil.Process) -> str:
        if proc.pid == self.roots[root]:
            return root
        cmd = " ".join(proc.cmdline())
        if str(TFDV_PY.parent) in cmd or "tfdv" in cmd:
            return f"{root} > validate_data (tfdv interpreter)"
        return f"{root} > {proc.name()}"

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for root, pid in self.roots.items():
                try:
                    top = psutil.Process(pid)
                    procs = [top, *top.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                for proc in procs:
                    try:
                        mb = proc.memory_info().rss / 2**20
                        label = self.peaks.get(proc.pid, (None, 0.0))[0] or self._label(root, proc)
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
                    if mb > self.peaks.get(proc.pid, ("", 0.0))[1]:
                        self.peaks[proc.pid] = (label, mb)


def data_rows(path: Path) -> int:
    import pandas as pd

    return 0 if not path.exists() else len(pd.read_csv(path, dtype=str, usecols=[0]))


def task_times(metadata_url: str, run_id: str) -> dict[str, float]:
    with psycopg2.connect(psycopg2_dsn(metadata_url)) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT task_id, EXTRACT(EPOCH FROM end_date - start_date) FROM task_instance
               WHERE dag_id = 'ingest_data' AND run_id = %s ORDER BY start_date""",
            (run_id,),
        )
        return {t: float(s or 0) for t, s in cur.fetchall()}


def ingestion_row(url: str, stem: str) -> tuple[int, int, int, str] | None:
    with psycopg2.connect(psycopg2_dsn(url)) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT rows_total, rows_valid, rows_invalid, criticality FROM ingestion_files
               WHERE file_name LIKE %s""",
            (f"{stem}--%",),
        )
        return cur.fetchone()


def run_dag(env: dict[str, str], worker_pid: int, metadata_url: str, log: Path | None):
    """One dag.test() run: (wall seconds, outcome, seconds per task, peak MB per process)."""
    started = time.perf_counter()
    dag = subprocess.Popen([str(AIRFLOW_PY), "-m", "pipelines.run_dag", "ingest_data"], env=env,
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)  # fmt: skip
    with PeakMemory({"airflow (dag.test)": dag.pid, "tfdv worker": worker_pid}) as mem:
        out, _ = dag.communicate()
    wall = time.perf_counter() - started
    if log is not None:
        log.write_text(out)
    last = [line for line in out.splitlines() if line.startswith("{")]
    outcome = json.loads(last[-1]) if last else {"state": "no outcome", "log": out[-5000:]}
    tasks = task_times(metadata_url, outcome["run_id"]) if "run_id" in outcome else {}
    return wall, outcome, tasks, mem.peaks


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="ingest-large-bench-") as tmp:
        base = Path(tmp)
        data = base / "data"
        for sub in ("raw-data", "good_data", "bad_data", "reports"):
            (data / sub).mkdir(parents=True)
        started = time.perf_counter()
        expected = write_large_file(data / "raw-data" / "large.csv", ROWS, BAD_SHARE)
        size_mb = (data / "raw-data" / "large.csv").stat().st_size / 2**20
        print(
            f"generated {ROWS:,} rows ({size_mb:.0f} MB), {expected['bad_rows']:,} of them bad, "
            f"in {time.perf_counter() - started:.1f} s"
        )

        server = pg.EmbeddedServer(base / "pg", port=pg.free_port())
        pg.start(server)
        worker = None
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
            port = pg.free_port()
            worker_log = open(base / "worker.log", "wb")  # noqa: SIM115 (closed below)
            worker = subprocess.Popen([str(TFDV_PY), "-m", "pipelines.ingestion.tfdv_worker",
                                       "--port", str(port)], cwd=ROOT, env=env,
                                      stdout=worker_log, stderr=subprocess.STDOUT)  # fmt: skip
            for _ in range(360):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.5)
            idle_mb = psutil.Process(worker.pid).memory_info().rss / 2**20

            run_env = env | {"TFDV_WORKER_URL": f"http://127.0.0.1:{port}"}
            log = base.parent / "ingest-large-bench-dag.log" if KEEP_LOG else None
            wall, outcome, tasks, peaks = run_dag(run_env, worker.pid, server.url("airflow"), log)
            stored = ingestion_row(server.url("app"), "large")
            good = sum(data_rows(p) for p in (data / "good_data").glob("large--*.csv"))
            bad = sum(data_rows(p) for p in (data / "bad_data").glob("large--*.csv"))
            left = sorted(p.name for p in (data / "processing").glob("*"))
            # The reference: the same run on 1,000 rows, to tell Airflow's fixed cost from ours.
            write_large_file(data / "raw-data" / "small.csv", 1_000, BAD_SHARE)
            ref_wall, ref_outcome, ref_tasks, _ = run_dag(
                run_env, worker.pid, server.url("airflow"), None
            )
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait()
            pg.stop(server)

        print(f"\none dag.test() run of ingest_data on {ROWS:,} rows: {wall:.1f} s wall "
              f"(goal <= {GOAL_S:.0f} s) [{outcome['state']}]")  # fmt: skip
        print(f"reference: the same run on 1,000 rows: {ref_wall:.1f} s [{ref_outcome['state']}]")
        if outcome["state"] != "success":
            print(outcome.get("log", ""))
        print(f"  task                   {ROWS:>9,} rows  1,000 rows (seconds)")
        for task, seconds in tasks.items():
            print(f"  {task:<22} {seconds:14.2f}  {ref_tasks.get(task, float('nan')):10.2f}")
        other = wall - sum(tasks.values())
        ref_other = ref_wall - sum(ref_tasks.values())
        print(f"  {'(outside the tasks)':<22} {other:14.2f}  {ref_other:10.2f}"
              "   Airflow start-up, DAG parsing, dag.test()'s set-up")  # fmt: skip
        validated = [
            line.split(" in ")[-1]
            for line in (base / "worker.log").read_text().splitlines()
            if "validated large" in line
        ]
        if validated:
            print(f"  (inside the worker, validate_file took {validated[-1]})")

        print(f"\npeak RSS per process during the {ROWS:,}-row run (goal <= {GOAL_RSS_MB:.0f} MB):")
        for pid, (label, mb) in sorted(peaks.items(), key=lambda kv: -kv[1][1]):
            print(f"  {label:<52} {mb:7.0f} MB  (pid {pid})")
        print(f"  (the tfdv worker idles at {idle_mb:.0f} MB with TFDV imported)")

        conserved = (
            good + bad == ROWS and bad == expected["bad_rows"] and not left
            and stored is not None and stored[:3] == (ROWS, good, bad)
        )  # fmt: skip
        print(f"\nrows: {ROWS:,} in = {good:,} good + {bad:,} bad; expected bad "
              f"{expected['bad_rows']:,}; ingestion_files {stored}; left in processing: {left}"
              f" -> {'conserved' if conserved else 'NOT CONSERVED'}")  # fmt: skip
        peak = max((mb for _, mb in peaks.values()), default=0.0)
        print(f"goal: run {wall:.1f} s {'<=' if wall <= GOAL_S else '>'} {GOAL_S:.0f} s, "
              f"largest process {peak:.0f} MB {'<=' if peak <= GOAL_RSS_MB else '>'} "
              f"{GOAL_RSS_MB:.0f} MB")  # fmt: skip
    return 0 if outcome["state"] == "success" and conserved else 1


if __name__ == "__main__":
    sys.exit(main())
