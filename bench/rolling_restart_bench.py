"""Rolling restart under load: `make bench BENCH=rolling_restart`.

Starts the API as `make up` does with API_WORKERS=BENCH_API_PROCESSES (haproxy in front of
that many processes, service/fleet.py) on a throw-away embedded PostgreSQL, keeps
BENCH_RESTART_CLIENTS clients posting /predict (single records, and every 4th request a batch
of 20), each request with its own Idempotency-Key and resent with it up to
BENCH_RESTART_RESENDS times after a connection error or a 502/503/504 (what clients should do,
docs/api.md), and meanwhile replaces every API process one after the other, BENCH_RESTARTS
times (SIGHUP to the fleet, as `make restart-api`). Prints requests sent, answers by status,
connection errors, rows stored against rows answered, duplicates in `predictions`, p50/p99
latency during the restarts and outside them, and PASS when no request was lost and no row
stored twice (issue 17, point 4).

Knobs: BENCH_API_PROCESSES (2), BENCH_RESTART_CLIENTS (8), BENCH_RESTARTS (1),
BENCH_RESTART_RESENDS (3), BENCH_RESTART_WARM_S (3: load before the first restart and after
the last).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.restart_load import PredictLoad, latency_ms, tally
from bench.scratch import scratch_database
from bench.service_bench import dataset_records, train_into
from mlsys.api_auth import Role, bearer_headers, ensure_local_credentials
from mlsys.config import get_settings, load_settings
from mlsys.db import psycopg2_dsn
from mlsys.features import load_feature_spec
from ops import pg

PROCESSES = int(os.environ.get("BENCH_API_PROCESSES", 2))
CLIENTS = int(os.environ.get("BENCH_RESTART_CLIENTS", 8))
RESTARTS = int(os.environ.get("BENCH_RESTARTS", 1))
RESENDS = int(os.environ.get("BENCH_RESTART_RESENDS", 3))
WARM_S = float(os.environ.get("BENCH_RESTART_WARM_S", 3))
BATCH_SIZE, BATCH_EVERY = 20, 4


def _uptime() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    from service import fleet, launch

    if PROCESSES < 2:
        print("BENCH_API_PROCESSES must be at least 2: one process cannot be restarted while "
              "another serves", file=sys.stderr)  # fmt: skip
        return 2
    settings = get_settings()
    spec = load_feature_spec(settings.schema_path, target=settings.target_column)
    records = dataset_records(spec)
    with tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp_name:
        tmp = Path(tmp_name)
        with scratch_database(tmp) as url:
            train_into(tmp / "models", spec)
            ensure_local_credentials(tmp / "var")
            port = pg.free_port()
            env = {
                "DATABASE_URL": url, "MODEL_DIR": str(tmp / "models"), "DATA_DIR": str(tmp / "data"),
                "VAR_DIR": str(tmp / "var"), "API_HOST": "127.0.0.1", "API_PORT": str(port),
                "API_WORKERS": str(PROCESSES), "API_BACKEND_PORT": str(pg.free_port_run(PROCESSES)),
            }  # fmt: skip
            proc = launch.spawn(env, tmp / "api.log")
            base = f"http://127.0.0.1:{port}"
            try:
                launch.wait_until_serving(proc, base, timeout_s=180, log_path=tmp / "api.log")
                fleet_settings = load_settings(os.environ | env)
                fleet.wait_ready(fleet_settings)
                haproxy = subprocess.run(
                    [fleet.haproxy_binary(), "-v"], capture_output=True, text=True
                ).stdout.split()[2]
                print(
                    f"rolling restart: {PROCESSES} API processes behind haproxy {haproxy} on "
                    f"{os.cpu_count()} cores, {CLIENTS} clients (single records, every "
                    f"{BATCH_EVERY}th request a batch of {BATCH_SIZE}), an Idempotency-Key on "
                    f"every request, resent up to {RESENDS} times; {RESTARTS} restart(s) of every process",
                    flush=True,
                )  # fmt: skip
                load = PredictLoad(
                    base, bearer_headers(Role.WEBAPP, tmp / "var"), records,
                    clients=CLIENTS, batch_every=BATCH_EVERY, batch_size=BATCH_SIZE,
                    resends=RESENDS,
                ).start()  # fmt: skip
                started = time.monotonic()
                time.sleep(WARM_S)
                windows, errors, replaced = [], [], True
                for n in range(RESTARTS):
                    before = fleet.wait_ready(fleet_settings)
                    t0 = time.monotonic()
                    after = fleet.request_restart(fleet_settings, proc.pid, timeout_s=600)
                    windows.append((t0, time.monotonic()))
                    errors += [after.last_error] if after.last_error else []
                    replaced &= not set(before.backends.values()) & set(after.backends.values())
                    print(
                        f"restart {n + 1}: {len(after.backends)} processes replaced one after "
                        f"the other in {after.last_restart_s:.1f} s ({_uptime()})",
                        flush=True,
                    )
                time.sleep(WARM_S)
                outcomes = load.stop()
                ended = time.monotonic()
            finally:
                launch.stop(proc)
            counts = tally(outcomes, psycopg2_dsn(url))

    in_window = [any(a <= o.started <= b for a, b in windows) for o in outcomes]
    during = [o for o, inside in zip(outcomes, in_window, strict=True) if inside]
    outside = [o for o, inside in zip(outcomes, in_window, strict=True) if not inside]
    p50_in, p99_in, n_in = latency_ms(during, 0, float("inf"))
    p50_out, p99_out, n_out = latency_ms(outside, 0, float("inf"))
    in_s = sum(b - a for a, b in windows)
    first_ok = sum(1 for o in outcomes if o.statuses[:1] == [200] and o.connection_errors == 0)
    ok = counts.ok and not errors and replaced
    lines = [
        f"requests sent: {counts.requests:,} ({counts.attempts:,} HTTP requests with resends) "
        f"in {ended - started:.1f} s",
        f"answered (final status): {_fmt(counts.by_status)}; every attempt: "
        f"{_fmt(counts.attempt_statuses)}; answered 200 at the first attempt: {first_ok:,}",
        f"connection errors: {counts.connection_errors}",
        f"rows: {counts.rows_stored:,} stored, {counts.rows_answered:,} answered; "
        f"duplicates in predictions: {counts.duplicates}; requests lost: {counts.lost}",
        f"latency during the restarts ({n_in:,} requests in {in_s:.1f} s, "
        f"{n_in / max(in_s, 1e-9):,.0f} req/s): p50 {p50_in:.1f} ms, p99 {p99_in:.1f} ms | "
        f"outside them ({n_out:,} requests): p50 {p50_out:.1f} ms, p99 {p99_out:.1f} ms",
        f"{_uptime()} at the end",
    ]
    if errors:
        lines.append(f"restart errors: {errors}")
    if not replaced:
        lines.append("some process was not replaced")
    lines.append(
        f"target: 0 lost, 0 duplicates, every process replaced: {'PASS' if ok else 'FAIL'}"
    )
    print("--- rolling restart figures ---")
    print("\n".join(lines))
    return 0


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "none"


if __name__ == "__main__":
    sys.exit(main())
