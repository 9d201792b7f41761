"""The cost of the CeleryExecutor against the LocalExecutor on one machine (issue 17, point 1).

For each executor a live system (`make up`'s code path, bench/live.py) ingests and predicts the
files `make up` generates (20 files of 50 rows, half with errors) until raw-data is empty and
every good file is predicted. Figures, from Airflow's metadata database, for the tasks of those
runs: the wait from queued to started (what the executor adds: Redis and a worker's pickup for
Celery, the scheduler's own worker processes for Local), task durations, the wall time to
drain, and the CPU seconds of every process of the system per file (robust to a shared
machine, unlike wall times).

Goal: both executors drain every file, with nothing lost (every good row predicted once); the
figures are for docs/scaling.md. `make bench BENCH=executors` (BENCH_EXECUTORS=local,celery).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import psutil

from bench.live import free_port, live_system, load_average, pct


def _system_cpu_s(var_dir: str) -> float:
    """CPU seconds (user + system, children included where reaped) of the processes whose
    environment names this VAR_DIR: the whole live system."""
    total = 0.0
    for proc in psutil.process_iter():
        try:
            if proc.environ().get("VAR_DIR") != var_dir:
                continue
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return total


def _airflow_query(live, sql: str) -> list[tuple]:
    import psycopg2

    from mlsys.config import libpq_url

    conn = psycopg2.connect(libpq_url(live.settings().airflow_database_url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def measure(executor: str) -> dict[str, float]:
    extra = {"AIRFLOW_EXECUTOR": executor, "REDIS_PORT": str(free_port()), "CELERY_BROKER_URL": ""}
    with live_system(f"bench-executor-{executor}", extra) as live:
        cpu_start = _system_cpu_s(live.env["VAR_DIR"])
        drained_s = live.wait_idle(timeout_s=1800)
        cpu = _system_cpu_s(live.env["VAR_DIR"]) - cpu_start
        waits = _airflow_query(
            live,
            """SELECT extract(epoch FROM start_date - queued_dttm),
                      extract(epoch FROM end_date - start_date)
               FROM task_instance WHERE state = 'success' AND queued_dttm IS NOT NULL""",
        )
        files = len(list((live.data / "good_data").glob("*.csv"))) + len(
            list((live.data / "bad_data").glob("*.csv"))
        )
        lost = live.query(
            """SELECT count(*) FROM predicted_files f WHERE status = 'done' AND rows <> (
                   SELECT count(*) FROM predictions p WHERE p.source_file = f.file_name)"""
        )[0][0]
        twice = live.query(
            """SELECT count(*) FROM (SELECT 1 FROM predictions WHERE source_file IS NOT NULL
                   GROUP BY source_file, source_row HAVING count(*) > 1) AS d"""
        )[0][0]
    queued = [float(w) for w, _ in waits]
    ran = [float(d) for _, d in waits]
    return {
        "tasks": len(waits),
        "queued_to_start_median_s": statistics.median(queued),
        "queued_to_start_p95_s": pct(queued, 95),
        "task_median_s": statistics.median(ran),
        "drain_s": drained_s,
        "files": files,
        "cpu_s_per_file": cpu / max(files, 1),
        "files_lost_rows": lost,
        "rows_twice": twice,
    }


def main() -> int:
    wanted = os.environ.get("BENCH_EXECUTORS", "local,celery").split(",")
    results = {}
    for executor in wanted:
        started = time.monotonic()
        results[executor] = measure(executor.strip())
        print(f"{executor}: {results[executor]} ({time.monotonic() - started:.0f} s, "
              f"load {load_average()})", flush=True)  # fmt: skip
    print("\nexecutor  tasks  queued->start median/p95  task median  CPU s/file  drain")
    for name, r in results.items():
        print(
            f"{name:<9} {r['tasks']:>5}  {r['queued_to_start_median_s']:6.2f} / "
            f"{r['queued_to_start_p95_s']:6.2f} s     {r['task_median_s']:6.2f} s   "
            f"{r['cpu_s_per_file']:7.1f}   {r['drain_s']:5.0f} s ({r['files']} files)"
        )
    ok = all(r["files_lost_rows"] == 0 and r["rows_twice"] == 0 and r["files"] > 0
             for r in results.values())  # fmt: skip
    print(f"load {load_average()}")
    print("PASS: every file drained, no row lost or stored twice" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
