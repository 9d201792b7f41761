"""Index of reports benchmark: `python -m bench report_index` (part of `make bench`).

Starts the real service as `make up` does on its own embedded PostgreSQL in a temporary
folder, loads 100,000 ingested files (a month, one every 26 s, a quarter of them with one or
two issue types, one file type in a thousand rare) and times `GET /reports/` through a signed
link, each figure beside the same server's trivial endpoint `/livez`:

1. the newest page, no filter; 2. criticality high; 3. an issue type; 4. a rare issue type
(0.1% of the files: the walk reads far before it fills a page); 5. a file-name substring
matching nothing (the worst case: every row is read); 6. one day; 7. the 200th page (cursor).
Each query's plan is printed (EXPLAIN ANALYZE of the page's SQL) so that a regression shows
which index it lost.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx

from bench.scratch import scratch_database
from bench.service_bench import _pct, timed_requests, train_into
from mlsys import report_links
from mlsys.api_auth import ensure_local_credentials
from mlsys.config import get_settings
from mlsys.credentials import resolve_secret
from mlsys.db import psycopg2_dsn
from mlsys.features import load_feature_spec
from ops import pg

FILES = int(os.environ.get("BENCH_INDEX_FILES", 100_000))
REQUESTS = int(os.environ.get("BENCH_INDEX_REQUESTS", 100))
DAYS = 30
# p50 target for one page: a person clicking through filters should not wait.
TARGET_MS = 100.0


def bulk_load(dsn: str, files: int) -> None:
    """`files` ingested files over DAYS days and their issues, in three statements."""
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO ingestion_files (file_name, original_name, ingested_at, rows_total,
                                            rows_valid, rows_invalid, criticality, report_path)
               SELECT 'batch-' || i || '.csv', 'Batch ' || i || '.csv',
                      now() - i * (%(days)s * interval '1 day' / %(n)s), 50, 50 - i %% 4 * 5,
                      i %% 4 * 5, (ARRAY['none', 'low', 'medium', 'high'])[i %% 4 + 1],
                      'batch-' || i || '-0000000' || i %% 10 || '.html'
               FROM generate_series(1, %(n)s) AS i""",
            {"days": DAYS, "n": files},
        )
        cur.execute(
            """INSERT INTO data_quality_issues (file_id, error_type, column_name, level, row_count)
               SELECT id, t, 'age', 'row', 5 FROM ingestion_files,
                      unnest(CASE id % 4 WHEN 1 THEN ARRAY['out_of_range']
                                          WHEN 3 THEN ARRAY['out_of_range', 'missing_column']
                                          ELSE ARRAY[]::text[] END) AS t
               UNION ALL
               SELECT id, 'rare_type', '', 'file', 0 FROM ingestion_files WHERE id % 1000 = 0"""
        )
        cur.execute("ANALYZE ingestion_files; ANALYZE data_quality_issues")


def explain(dsn: str, params: dict) -> str:
    """The page query's plan, one line per node, with its actual time."""
    import psycopg2

    from service.routes.report_index import PAGE_SQL

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) " + PAGE_SQL, params)
        return "\n".join("      " + line for (line,) in cur.fetchall())


def main() -> int:
    from service import launch
    from service.routes.report_index import IndexQuery, sql_params

    settings = get_settings()
    spec = load_feature_spec(settings.schema_path, target=settings.target_column)
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp_name:
        tmp = Path(tmp_name)
        proc = None
        with scratch_database(tmp) as url:
            try:
                dsn = psycopg2_dsn(url)
                train_into(tmp / "models", spec)
                t = time.perf_counter()
                bulk_load(dsn, FILES)
                print(
                    f"{FILES:,} ingested files loaded in {time.perf_counter() - t:.1f} s",
                    flush=True,
                )
                ensure_local_credentials(tmp / "var")  # as `make up` does
                key = resolve_secret(report_links.KEY_NAME, tmp / "var", {}).encode()
                port = pg.free_port()
                env = {
                "DATABASE_URL": url, "MODEL_DIR": str(tmp / "models"), "DATA_DIR": str(tmp / "data"),
                "VAR_DIR": str(tmp / "var"), "API_HOST": "127.0.0.1", "API_PORT": str(port),
            }  # fmt: skip
                proc = launch.spawn(env, tmp / "api.log")
                base = f"http://127.0.0.1:{port}"
                launch.wait_until_serving(proc, base, timeout_s=120, log_path=tmp / "api.log")

                def link(**filters) -> str:
                    return report_links.index_url(f"{base}/reports", key, **filters).removeprefix(
                        base
                    )

                day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 10 * 86400))
                deep = link()
                for _ in range(199):  # follow the pager to the 200th page
                    page = httpx.get(base + deep).text
                    older = page.split('id="older"', 1)[0].rsplit('href="', 1)[1].split('"', 1)[0]
                    deep = urljoin(deep, older.replace("&amp;", "&"))
                cursor = parse_qs(urlsplit(deep).query)["cursor"][0]
                from service.predictions import decode_cursor

                cases = {
                    "newest page, no filter": (link(), IndexQuery()),
                    "criticality high": (link(criticality=["high"]), IndexQuery(levels=("high",))),
                    "issue type out_of_range": (
                        link(issue_type="out_of_range"),
                        IndexQuery(issue_type="out_of_range"),
                    ),
                    "rare issue type (0.1% of files)": (
                        link(issue_type="rare_type"),
                        IndexQuery(issue_type="rare_type"),
                    ),
                    "file name matching nothing": (link(file="zzz"), IndexQuery(file="zzz")),
                    "one day": (link(start=day, end=day), None),
                    "200th page": (deep, IndexQuery(after=decode_cursor(cursor))),
                }
                timed_requests("127.0.0.1", port, [p for p, _ in cases.values()] * 3)  # warm
                ref = timed_requests("127.0.0.1", port, ["/livez"] * REQUESTS)
                print(f"reference /livez p50 {statistics.median(ref):.2f} ms", flush=True)
                worst = 0.0
                for name, (path, query) in cases.items():
                    assert httpx.get(base + path).status_code == 200, path
                    times = timed_requests("127.0.0.1", port, [path] * REQUESTS)
                    p50 = statistics.median(times)
                    worst = max(worst, p50)
                    print(
                        f"{name:<34} p50 {p50:6.1f} ms  p95 {_pct(times, 95):6.1f} ms", flush=True
                    )
                    if query is not None:
                        print(explain(dsn, sql_params(query)), flush=True)
                verdict = "ok" if worst < TARGET_MS else "MISSED"
                print(
                    f"worst p50 {worst:.1f} ms over {FILES:,} files: target < {TARGET_MS:g} ms: {verdict}"
                )
            finally:
                if proc is not None:
                    launch.stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
