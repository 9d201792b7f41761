"""Model service benchmark: `python -m bench service` (part of `make bench`).

Starts the real service as `make up` does (uvicorn, API_WORKERS workers, from .venvs/app) on its
own embedded PostgreSQL in a temporary folder, loads 1,000,000 stored predictions, and
measures, each figure beside a reference taken in the same run (these machines are noisy):

1. past-predictions, one day, one source, first page of 100, over 1,000,000 rows: p50
   (reference: the trivial endpoint through the same client);
2. single predictions with 4 concurrent clients (wrk): throughput and p99 (reference: the
   same server's trivial endpoint /livez, no validation, no model, no database), and the
   same with 16 clients (the capacity); the rows written per transaction show the group commit;
3. a 10,000-row batch (validation, prediction, persistence, response): rows/s (reference: a
   naive baseline, one ORM insert and commit per row, on the same database).

Load comes from `wrk` (Debian package, installed here if missing and we are root); without
it, from a Python load generator, which the output says (its own CPU use lowers the figures).
"""

from __future__ import annotations

import http.client
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from sqlalchemy import create_engine
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from mlsys.api_auth import Role, bearer_headers, ensure_local_credentials
from mlsys.config import get_settings
from mlsys.db import migrate, psycopg2_dsn
from mlsys.features import load_feature_spec
from ops import pg

STORED_ROWS = int(os.environ.get("BENCH_STORED_ROWS", 1_000_000))
BATCH_ROWS = 10_000
BATCH_REPEATS = int(os.environ.get("BENCH_BATCH_REPEATS", 5))
BASELINE_ROWS = int(os.environ.get("BENCH_BASELINE_ROWS", 2_000))
LOAD_SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", 5))
CLIENTS = 4
# The server's capacity is also measured with more clients (both endpoints alike).
CAPACITY_CLIENTS = int(os.environ.get("BENCH_CAPACITY_CLIENTS", 16))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
# Which parts to run (all by default): past, single, workers, async, batch.
PARTS = set(os.environ.get("BENCH_PARTS", "past,single,workers,async,batch").split(","))
# The part `workers`: the other API_WORKERS to compare with the default, each number of API
# processes behind haproxy when 2 or more (docs/scaling.md); e.g. BENCH_API_PROCESSES=2,4.
API_PROCESSES = [int(n) for n in os.environ.get("BENCH_API_PROCESSES", "").split(",") if n.strip()]
PAST_REQUESTS = 300
# Every request carries the UI's bearer token, as in production (set by main()).
AUTH: dict[str, str] = {}
DAYS = 30


@dataclass
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    tool: str


class Base(DeclarativeBase):
    pass


class Prediction(Base):
    """The naive baseline's ORM mapping of the `predictions` table."""

    __tablename__ = "predictions"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str]
    features: Mapped[dict] = mapped_column(JSONB)
    prediction: Mapped[str]
    probability: Mapped[float]
    model_version: Mapped[str]


# --- setup -------------------------------------------------------------------------------
def dataset_records(spec) -> list[dict]:
    """Real applications (the training data's feature columns), as the API receives them."""
    import pandas as pd

    frame = pd.read_csv(get_settings().dataset_path)[spec.names]
    return orjson.loads(frame.to_json(orient="records"))


def train_into(model_dir: Path, spec) -> str:
    import pandas as pd

    from mlsys import model

    settings = get_settings()
    frame = pd.read_csv(settings.dataset_path)
    result = model.train(
        frame, spec, target=settings.target_column, positive_class=settings.positive_class,
        dataset=str(settings.dataset_path),
    )  # fmt: skip
    return model.save(result, model_dir)["version"]


def bulk_load(dsn: str, rows: int, record: dict) -> None:
    """`rows` predictions over the last DAYS days, alternating sources, in one statement."""
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            """INSERT INTO predictions (created_at, source, features, prediction, probability,
                                        model_version, source_file, source_row)
               SELECT now() - i * (%(days)s * interval '1 day' / %(rows)s),
                      CASE WHEN i %% 2 = 0 THEN 'webapp' ELSE 'scheduled' END,
                      %(features)s::jsonb, '1', 0.7, 'bench',
                      CASE WHEN i %% 2 = 0 THEN NULL ELSE 'bench-' || (i / 10000) || '.csv' END,
                      CASE WHEN i %% 2 = 0 THEN NULL ELSE i %% 10000 END
               FROM generate_series(1, %(rows)s) AS i""",
            {"days": DAYS, "rows": rows, "features": orjson.dumps(record).decode()},
        )
        cur.execute("ANALYZE predictions")
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        # Write the loaded pages out now, not as a checkpoint in the middle of a measurement.
        cur.execute("CHECKPOINT")


def commit_floor(dsn: str, record: dict, per_client: int = 200) -> tuple[float, float, float]:
    """What the disk allows: CLIENTS connections each doing INSERT ... RETURNING in autocommit,
    as a single prediction does, with nothing else. Returns (p50 ms, p99 ms, commits/s)."""
    import threading

    import psycopg2

    features = orjson.dumps(record).decode()
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        mine = []
        with conn.cursor() as cur:
            for _ in range(per_client):
                t = time.perf_counter()
                cur.execute(
                    """INSERT INTO predictions (source, features, prediction, probability, model_version)
                       VALUES ('webapp', %s, '1', 0.7, 'bench-floor') RETURNING id, created_at""",
                    (features,),
                )
                cur.fetchone()
                mine.append((time.perf_counter() - t) * 1e3)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    return statistics.median(latencies), _pct(latencies, 99), len(latencies) / elapsed


def count_rows(dsn: str) -> int:
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM predictions")
        return cur.fetchone()[0]


# --- load generation ---------------------------------------------------------------------
def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found or os.geteuid() != 0 or not shutil.which("apt-get"):
        return found
    print("installing wrk (apt-get install -y wrk) ...", flush=True)
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "install", "-y", "-qq", "wrk"], ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "wrk"]):  # fmt: skip
        subprocess.run(cmd, env=env, capture_output=True, check=False)
        if shutil.which("wrk"):
            break
    return shutil.which("wrk")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * _UNITS[unit]


def run_wrk(
    wrk: str, url: str, seconds: int, body: bytes | None, tmp: Path, clients: int = CLIENTS
) -> Load:
    cmd = [wrk, "-t2", f"-c{clients}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    cmd += ["-H", f"Authorization: {AUTH['Authorization']}"] if body is None else []
    if body is not None:
        script = tmp / "post.lua"
        script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "{AUTH["Authorization"]}"\n'
            f"wrk.body = [==[{body.decode()}]==]\n"
        )
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Load(
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_ms(pct["50"]),
        p99_ms=_ms(pct["99"]),
        requests=int(re.search(r"(\d+) requests in", out).group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        tool="wrk",
    )


def run_python_load(
    host: str, port: int, path: str, seconds: int, body: bytes | None, clients: int = CLIENTS
) -> Load:
    """Fallback load generator: `clients` threads, keep-alive connections, fixed duration."""
    import threading

    latencies: list[float] = []
    bad = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=5)
        mine, errors = [], 0
        headers = {"Content-Type": "application/json", **AUTH}
        while time.monotonic() < stop_at:
            t = time.perf_counter()
            conn.request("POST" if body else "GET", path, body=body, headers=headers)
            answer = conn.getresponse()
            answer.read()
            mine.append(time.perf_counter() - t)
            errors += answer.status >= 300
        with lock:
            latencies.extend(mine)
            bad[0] += errors

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return Load(
        rps=len(latencies) / seconds,
        p50_ms=latencies[len(latencies) // 2] * 1e3,
        p99_ms=latencies[int(len(latencies) * 0.99)] * 1e3,
        requests=len(latencies),
        non_2xx=bad[0],
        tool="python load generator",
    )


def timed_requests(host: str, port: int, paths: list[str]) -> list[float]:
    """Sequential GETs on one keep-alive connection; latencies in ms (all must be 200)."""
    conn = http.client.HTTPConnection(host, port, timeout=30)
    out = []
    for path in paths:
        t = time.perf_counter()
        conn.request("GET", path, headers=AUTH)
        answer = conn.getresponse()
        answer.read()
        out.append((time.perf_counter() - t) * 1e3)
        if answer.status != 200:
            raise RuntimeError(f"GET {path}: {answer.status}")
    return out


def post_batch(host: str, port: int, body: bytes) -> float:
    conn = http.client.HTTPConnection(host, port, timeout=120)
    t = time.perf_counter()
    conn.request(
        "POST", "/predict", body=body, headers={"Content-Type": "application/json", **AUTH}
    )
    answer = conn.getresponse()
    payload = answer.read()
    elapsed = time.perf_counter() - t
    if answer.status != 200:
        raise RuntimeError(f"batch answered {answer.status}: {payload[:300]!r}")
    if orjson.loads(payload)["stored"] != BATCH_ROWS:
        raise RuntimeError("the batch was not stored whole")
    conn.close()
    return elapsed


def naive_baseline(url: str, records: list[dict], version: str) -> float:
    """One ORM insert and one commit per row (the predictions are computed beforehand, so the
    baseline is only its persistence: a generous reference). Returns rows/s."""
    engine = create_engine(url)
    with Session(engine) as session:
        t = time.perf_counter()
        for record in records:
            session.add(
                Prediction(
                    source="webapp",
                    features=record,
                    prediction="1",
                    probability=0.7,
                    model_version=version,
                )
            )
            session.commit()
        elapsed = time.perf_counter() - t
    engine.dispose()
    return len(records) / elapsed


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        out.append(parent)
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            todo += [int(c) for c in task.read_text().split()]
    return out


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a process that ended meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return total


class CpuMeter:
    """CPU seconds used by the service's processes, PostgreSQL's and the load generator."""

    def __init__(self, service_pid: int, server: pg.EmbeddedServer):
        self.service_pid = service_pid
        self.postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])

    def sample(self) -> tuple[float, float, float]:
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (
            _cpu_seconds(_descendants(self.service_pid)),
            _cpu_seconds(_descendants(self.postmaster)),
            children.ru_utime + children.ru_stime,  # wrk, once it has exited
        )

    @staticmethod
    def per_request(before, after, requests: int) -> str:
        service, database, client = (
            1e3 * (a - b) / max(requests, 1) for a, b in zip(after, before, strict=True)
        )
        return f"CPU per request: service {service:.2f} ms, PostgreSQL {database:.2f} ms, load generator {client:.2f} ms"


def written_since(dsn: str, after_id: int) -> tuple[int, int]:
    """(rows, transactions) stored after `after_id`: rows of one transaction share `now()`."""
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*), count(DISTINCT created_at) FROM predictions WHERE id > %s",
            (after_id,),
        )
        rows, commits = cur.fetchone()
    return rows, commits


def max_id(dsn: str) -> int:
    import psycopg2

    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM predictions")
        return cur.fetchone()[0]


def _median_run(runs: list[Load]) -> Load:
    return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]


def single_predictions(
    report,
    wrk: str | None,
    base: str,
    port: int,
    dsn: str,
    one: bytes,
    tmp: Path,
    cpu: CpuMeter,
    clients: int,
) -> float:
    """Single predictions vs the trivial endpoint with `clients` connections, in ROUNDS
    alternating runs (medians: these machines are noisy); checks every answer was stored.
    Returns the throughput ratio."""

    def load(path: str, body: bytes | None) -> Load:
        if wrk:
            return run_wrk(wrk, f"{base}{path}", LOAD_SECONDS, body, tmp, clients)
        return run_python_load("127.0.0.1", port, path, LOAD_SECONDS, body, clients)

    load("/livez", None)  # warm-up
    load("/predict", one)
    before = max_id(dsn)
    trivial_runs, single_runs = [], []
    trivial_cpu = single_cpu = (0.0, 0.0, 0.0)
    for _ in range(ROUNDS):
        t0 = cpu.sample()
        trivial_runs.append(load("/livez", None))
        t1 = cpu.sample()
        single_runs.append(load("/predict", one))
        s1 = cpu.sample()
        trivial_cpu = tuple(a + (b - c) for a, b, c in zip(trivial_cpu, t1, t0, strict=True))
        single_cpu = tuple(a + (b - c) for a, b, c in zip(single_cpu, s1, t1, strict=True))
    written, commits = written_since(dsn, before)
    answers = sum(r.requests for r in single_runs)
    trivial, single = _median_run(trivial_runs), _median_run(single_runs)
    share = single.rps / trivial.rps
    zero = (0.0, 0.0, 0.0)
    report(
        f"single predictions, {clients} clients ({single.tool}, median of {ROUNDS} runs of "
        f"{LOAD_SECONDS} s): {single.rps:,.0f} req/s (runs: "
        f"{', '.join(f'{r.rps:,.0f}' for r in single_runs)}), p50 {single.p50_ms:.2f} ms, "
        f"p99 {single.p99_ms:.2f} ms, {sum(r.non_2xx for r in single_runs)} errors"
    )
    report(
        f"  {written:,} rows stored for {answers:,} answers, in {commits:,} transactions "
        f"({written / max(commits, 1):.1f} predictions per commit: group commit)"
    )
    report(f"  {CpuMeter.per_request(zero, single_cpu, answers)}")
    report(
        f"  reference /livez, {clients} clients: {trivial.rps:,.0f} req/s (runs: "
        f"{', '.join(f'{r.rps:,.0f}' for r in trivial_runs)}), p99 {trivial.p99_ms:.2f} ms, "
        f"{CpuMeter.per_request(zero, trivial_cpu, sum(r.requests for r in trivial_runs))}"
    )
    report(
        f"  throughput {share:.0%} of /livez with {clients} clients (target >= 40%: "
        f"{verdict(share >= 0.4)})"
        + (f", p99 target < 10 ms: {verdict(single.p99_ms < 10)}" if clients == CLIENTS else "")
    )
    if any(r.non_2xx for r in single_runs) or written < answers:
        report("  ERROR: some single predictions failed or were not stored")
    return share


# --- the run -----------------------------------------------------------------------------
def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def main() -> int:
    from service import launch

    settings = get_settings()
    spec = load_feature_spec(settings.schema_path, target=settings.target_column)
    wrk = ensure_wrk()
    lines: list[str] = []

    def report(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp_name:
        tmp = Path(tmp_name)
        server = pg.EmbeddedServer(data_dir=tmp / "pg", port=pg.free_port())
        pg.start(server)
        proc = None
        try:
            pg.wait_until_ready(server.dsn())
            pg.ensure_database(server.dsn(), "mlsys")
            url = server.url("mlsys")
            dsn = psycopg2_dsn(url)
            migrate(url)
            t = time.perf_counter()
            version = train_into(tmp / "models", spec)
            print(f"model {version} trained in {time.perf_counter() - t:.1f} s", flush=True)
            records = dataset_records(spec)

            t = time.perf_counter()
            bulk_load(dsn, STORED_ROWS, records[0])
            print(
                f"{STORED_ROWS:,} stored predictions loaded in {time.perf_counter() - t:.1f} s",
                flush=True,
            )

            ensure_local_credentials(tmp / "var")  # as `make up` does
            AUTH.update(bearer_headers(Role.WEBAPP, tmp / "var"))
            port = pg.free_port()
            env = {
                "DATABASE_URL": url, "MODEL_DIR": str(tmp / "models"), "DATA_DIR": str(tmp / "data"),
                "VAR_DIR": str(tmp / "var"), "API_HOST": "127.0.0.1", "API_PORT": str(port),
            }  # fmt: skip
            proc = launch.spawn(env, tmp / "api.log")
            base = f"http://127.0.0.1:{port}"
            launch.wait_until_serving(proc, base, timeout_s=120, log_path=tmp / "api.log")
            workers = launch.load_service_settings(os.environ | env).workers
            report(
                f"service: uvicorn, {workers} worker{'s' if workers != 1 else ''}, on {os.cpu_count()} cores; load: {wrk or 'python'}"
            )

            # 1. past-predictions over the stored rows
            if "past" in PARTS:
                day_paths = [
                    f"/past-predictions?start={d}&end={d}&source=webapp&limit=100"
                    for d in _days_back(i % (DAYS - 1) + 1 for i in range(PAST_REQUESTS))
                ]
                timed_requests("127.0.0.1", port, day_paths[:20])  # warm the caches
                past = timed_requests("127.0.0.1", port, day_paths)
                ref = timed_requests("127.0.0.1", port, ["/livez"] * PAST_REQUESTS)
                p50 = statistics.median(past)
                report(
                    f"past-predictions ({count_rows(dsn):,} rows, 1 day, 1 source, page of 100): "
                    f"p50 {p50:.1f} ms, p95 {_pct(past, 95):.1f} ms | reference /livez p50 "
                    f"{statistics.median(ref):.2f} ms | target p50 < 20 ms: {verdict(p50 < 20)}"
                )

            # 2. single predictions: 4 clients (the targets), and more (the capacity)
            one = orjson.dumps({"source": "webapp", "records": [records[1]]})

            def restart(extra: dict[str, str], log_name: str):
                nonlocal proc, port, base
                launch.stop(proc)
                port = pg.free_port()
                base = f"http://127.0.0.1:{port}"
                proc = launch.spawn(env | extra | {"API_PORT": str(port)}, tmp / log_name)
                launch.wait_until_serving(proc, base, timeout_s=120, log_path=tmp / log_name)
                if int(extra.get("API_WORKERS", 1)) >= 2:  # every process up behind haproxy
                    from mlsys.config import load_settings
                    from service import fleet

                    fleet.wait_ready(
                        load_settings(os.environ | env | extra | {"API_PORT": str(port)})
                    )

            def singles(clients_list: tuple[int, ...]) -> None:
                for clients in clients_list:
                    single_predictions(
                        report, wrk, base, port, dsn, one, tmp, CpuMeter(proc.pid, server), clients
                    )

            if "single" in PARTS:
                floor_p50, floor_p99, floor_rate = commit_floor(dsn, records[1])
                report(
                    f"disk floor: {CLIENTS} clients doing INSERT + COMMIT alone: {floor_rate:,.0f} commits/s, "
                    f"p50 {floor_p50:.2f} ms, p99 {floor_p99:.2f} ms"
                )
                singles((CLIENTS, CAPACITY_CLIENTS))
            if "workers" in PARTS:
                # Other process counts, for comparison (API_WORKERS is a setting); two or
                # more run behind haproxy, whose CPU counts as the service's.
                for other in API_PROCESSES or [2 if workers == 1 else 1]:
                    if other == workers:
                        continue
                    extra = {
                        "API_WORKERS": str(other),
                        "API_BACKEND_PORT": str(pg.free_port_run(other)),
                    }
                    restart(extra, f"api-workers-{other}.log")
                    behind = " behind haproxy" if other >= 2 else ""
                    report(
                        f"with API_WORKERS={other} (not the default: {other} processes{behind}; {_load()}):"
                    )
                    singles((CLIENTS, CAPACITY_CLIENTS))
            if "async" in PARTS:
                # COMMIT not waiting for the disk (not the default): what the service itself
                # can do once the disk is out of the way.
                restart({"API_DB_SYNCHRONOUS_COMMIT": "0"}, "api-async.log")
                report(
                    "with API_DB_SYNCHRONOUS_COMMIT=0 (not the default; a database crash can lose ~0.6 s):"
                )
                singles((CLIENTS,))
            if PARTS & {"workers", "async"}:
                restart({}, "api-again.log")

            # 3. 10,000-row batch vs the naive baseline
            if "batch" in PARTS:
                baseline = naive_baseline(
                    url, [records[i % len(records)] for i in range(BASELINE_ROWS)], version
                )
                batch = [records[i % len(records)] for i in range(BATCH_ROWS)]
                body = orjson.dumps({"source": "webapp", "records": batch})
                post_batch("127.0.0.1", port, body)  # warm-up
                times = [post_batch("127.0.0.1", port, body) for _ in range(BATCH_REPEATS)]
                rate = BATCH_ROWS / statistics.median(times)
                report(
                    f"10,000-row batch ({len(body) / 1e6:.1f} MB): median {statistics.median(times) * 1e3:.0f} ms, "
                    f"{rate:,.0f} rows/s (best {BATCH_ROWS / min(times):,.0f}) | reference naive ORM "
                    f"{baseline:,.0f} rows/s | {rate / baseline:.0f}x (target >= 20x: "
                    f"{verdict(rate >= 20 * baseline)}; aim 50,000 rows/s: {verdict(rate >= 50_000)})"
                )
        finally:
            if proc is not None:
                launch.stop(proc)
            pg.stop(server)
    print("--- service benchmark figures ---")
    print("\n".join(lines))
    return 0


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _days_back(offsets) -> list[str]:
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    return [(today - timedelta(days=o)).isoformat() for o in offsets]


def _pct(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, len(ordered) * q // 100)]


if __name__ == "__main__":
    sys.exit(main())
