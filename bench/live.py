"""A whole live system for the event benchmarks: `make up`'s code path (`python -m ops up`) on
distinct ports, VAR_DIR and DATA_DIR under a throw-away folder, stopped (`python -m ops down`) at
the end whatever happens. Helpers to drop files, read the database, call the API and Airflow.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mlsys.config import ROOT, load_settings
from ops import pg

PORT_NAMES = ("API_PORT", "UI_PORT", "AIRFLOW_PORT", "PGPORT_EMBEDDED", "TFDV_WORKER_PORT")


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Live:
    root: Path
    env: dict[str, str]

    @property
    def data(self) -> Path:
        return Path(self.env["DATA_DIR"])

    @property
    def raw(self) -> Path:
        return self.data / "raw-data"

    def settings(self):
        return load_settings(self.env)

    def dsn(self) -> str:
        from mlsys.db import psycopg2_dsn

        return psycopg2_dsn(self.settings().owner_database_url)

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        import psycopg2

        conn = psycopg2.connect(self.dsn())
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        finally:
            conn.close()

    def secret(self, name: str) -> str:
        return (Path(self.env["VAR_DIR"]) / "secrets" / name).read_text().strip()

    def api(self, path: str, body: bytes | None = None, token: str = "api_token_reader") -> dict:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.env['API_PORT']}{path}",
            data=body,
            headers={"Authorization": f"Bearer {self.secret(token)}",
                     "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as answer:
            return json.loads(answer.read())

    def airflow(self, path: str) -> dict:
        base = f"http://127.0.0.1:{self.env['AIRFLOW_PORT']}"
        with urllib.request.urlopen(f"{base}/auth/token", timeout=30) as answer:
            token = json.loads(answer.read())["access_token"]
        req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=60) as answer:
            return json.loads(answer.read())

    def drop(self, name: str, text: str) -> float:
        """Write a file into raw-data the safe way (temporary name, then rename); the
        monotonic time it appeared under its name."""
        tmp = self.raw / f".{name}.part"
        tmp.write_text(text, encoding="utf-8")
        os.rename(tmp, self.raw / name)
        return time.monotonic()

    def wait_idle(self, timeout_s: float = 900) -> float:
        """Until raw-data and processing are empty and every good_data file is predicted
        (the files `make up` generated); seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            waiting = [p for p in self.raw.iterdir() if not p.name.startswith(".")]
            processing = list((self.data / "processing").glob("*.csv"))
            good = {p.name for p in (self.data / "good_data").glob("*.csv")}
            done = {r[0] for r in self.query("SELECT file_name FROM predicted_files")}
            if not waiting and not processing and good <= done:
                return time.monotonic() - started
            time.sleep(2)
        raise TimeoutError("the live system did not drain its start-up files")


def dataset_rows() -> tuple[str, list[str]]:
    """The data set's feature columns as CSV: its header line and its data lines."""
    import csv
    import io

    settings = load_settings(dict(os.environ))
    with open(settings.dataset_path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    keep = [i for i, name in enumerate(rows[0]) if name != settings.target_column]
    out = []
    for row in rows:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow([row[i] for i in keep])
        out.append(buf.getvalue())
    return out[0], out[1:]


def file_text(header: str, lines: list[str], index: int, rows: int) -> str:
    """`rows` distinct data lines, a different slice of the data set for each index."""
    start = (index * rows) % len(lines)
    picked = (lines + lines)[start : start + rows]
    return header + "".join(picked)


@contextmanager
def live_system(prefix: str, extra: dict[str, str] | None = None) -> Iterator[Live]:
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    # mkdtemp makes it 0700; the embedded PostgreSQL runs as its own user (as root) and must
    # traverse it to reach VAR_DIR. Only this throw-away folder is opened, not its contents.
    root.chmod(0o711)
    env = (
        dict(os.environ)
        | {
            "VAR_DIR": str(root / "var"),
            "DATA_DIR": str(root / "data"),
            "MODEL_DIR": os.environ.get("BENCH_MODEL_DIR", str(root / "models")),
            "AIRFLOW_DEV_ALL_ADMINS": "1",  # the bench reads runs through Airflow's API
            "AIRFLOW_LOG_SERVER_PORT": str(pg.free_port_run(2)),  # and the next
            "TEAMS_WEBHOOK_URL": "",
        }
        | {name: str(pg.free_port()) for name in PORT_NAMES}
        | (extra or {})
    )
    for key in ("DATABASE_URL", "API_URL", "TFDV_WORKER_URL", "REPORT_BASE_URL"):
        env.pop(key, None)
    py = sys.executable
    started = time.monotonic()
    train = subprocess.run([py, "-m", "training.train", "--if-missing"], cwd=ROOT, env=env,
                           capture_output=True, text=True)  # fmt: skip
    if train.returncode != 0:
        raise RuntimeError(f"training failed: {train.stderr[-2000:]}")
    up = subprocess.run([py, "-m", "ops", "up"], cwd=ROOT, env=env, capture_output=True,
                        text=True)  # fmt: skip
    live = Live(root, env)
    try:
        if up.returncode != 0:
            raise RuntimeError(f"make up failed: {up.stdout[-2000:]} {up.stderr[-3000:]}")
        print(f"live system up in {time.monotonic() - started:.0f} s under {root}", flush=True)
        yield live
    finally:
        down = subprocess.run([py, "-m", "ops", "down"], cwd=ROOT, env=env,
                              capture_output=True, text=True)  # fmt: skip
        print(f"live system down: {down.stdout.strip().splitlines()[-1:]}", flush=True)


def task_timings(live: Live, dag_id: str, since_iso: str, limit: int = 1000) -> dict[str, list]:
    """Per task of `dag_id`'s runs after `since_iso`: durations (s), and per run the wait from
    the run's start to each task's start, from Airflow's REST API."""
    import urllib.parse
    from datetime import datetime

    runs: list[dict] = []
    while len(runs) < limit:  # the API serves at most 100 runs a page
        query = urllib.parse.urlencode({"run_after_gte": since_iso, "limit": 100,
                                        "offset": len(runs), "order_by": "run_after"})  # fmt: skip
        page = live.airflow(f"/api/v2/dags/{dag_id}/dagRuns?{query}")["dag_runs"]
        runs += page
        if len(page) < 100:
            break
    durations: dict[str, list[float]] = {}
    run_walls: list[float] = []
    for run in runs:
        if not run.get("end_date") or not run.get("start_date"):
            continue
        run_walls.append(
            (
                datetime.fromisoformat(run["end_date"]) - datetime.fromisoformat(run["start_date"])
            ).total_seconds()
        )
        tis = live.airflow(f"/api/v2/dags/{dag_id}/dagRuns/{run['dag_run_id']}/taskInstances")[
            "task_instances"
        ]
        for ti in tis:
            if ti.get("state") == "success" and ti.get("duration") is not None:
                durations.setdefault(ti["task_id"], []).append(float(ti["duration"]))
    return {"runs": [len(runs)], "run_wall": run_walls, **durations}


def summarize(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"median {statistics.median(values):.1f} s, p95 {pct(values, 95):.1f} s (n={len(values)})"
    )
