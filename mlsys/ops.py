"""Bring the local system up and down: `python -m mlsys.ops up|down|status|db`.

`make up`, `make down` and `make status` call this. Each long-running part is started in its
own process group with its pid and log file under VAR_DIR/run and VAR_DIR/log, so that `down`
stops exactly what `up` started and nothing else. Starting twice is harmless.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mlsys import pg
from mlsys.api_auth import ensure_local_credentials
from mlsys.config import ROOT, Settings, get_settings
from mlsys.db import migrate


@dataclass
class Service:
    """A long-running process that `up` starts and `down` stops."""

    name: str
    command: Callable[[Settings], list[str]]
    url: Callable[[Settings], str]
    port: Callable[[Settings], int]
    env: Callable[[Settings], dict[str, str]] = field(default=lambda s: {})
    ready_timeout_s: float = 60.0


# Each component describes how it is launched in its own `launch.py` (a module-level
# `SERVICE`, or a list `SERVICES`), in the order they start: the API before the UI and
# Airflow, which call it.
LAUNCHERS = ("service.launch", "frontend.launch", "pipelines.launch")


def services() -> list[Service]:
    import importlib

    found = []
    for module in LAUNCHERS:
        try:
            launcher = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # the launcher exists but is broken: say so
                raise
            continue
        found.extend(getattr(launcher, "SERVICES", None) or [launcher.SERVICE])
    return found


def run_dir(settings: Settings) -> Path:
    return settings.var_dir / "run"


def log_dir(settings: Settings) -> Path:
    return settings.var_dir / "log"


def embedded_server(settings: Settings) -> pg.EmbeddedServer:
    return pg.EmbeddedServer(settings.pg_data_dir, settings.pg_host, settings.pg_port)


def database_up(settings: Settings) -> str:
    """Start the embedded server if it is ours, create both databases, migrate. Returns a line."""
    if settings.embedded_postgres:
        server = embedded_server(settings)
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        started = pg.start(server)
        pg.wait_until_ready(server.dsn())
        pg.ensure_database(server.dsn(), settings.app_db_name)
        pg.ensure_database(server.dsn(), settings.airflow_db_name)
        state = "started" if started else "already running"
        where = (
            f"embedded PostgreSQL {state} on {server.host}:{server.port} (log {server.log_file})"
        )
    else:
        where = "PostgreSQL from DATABASE_URL (not started by us)"
    applied = migrate(settings.database_url)
    return f"{where}; migrations applied: {', '.join(applied) if applied else 'none pending'}"


def _pid_file(settings: Settings, name: str) -> Path:
    return run_dir(settings) / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def service_pid(settings: Settings, name: str) -> int | None:
    path = _pid_file(settings, name)
    if not path.exists():
        return None
    try:
        pid = int(path.read_text().strip())
    except ValueError:
        return None
    return pid if _alive(pid) else None


def start_service(settings: Settings, service: Service) -> str:
    if service_pid(settings, service.name):
        return f"{service.name}: already running at {service.url(settings)}"
    port = service.port(settings)
    if pg.port_in_use("127.0.0.1", port):
        raise SystemExit(
            f"{service.name}: port {port} is already taken by another program; "
            "free it or choose another port in .env"
        )
    run_dir(settings).mkdir(parents=True, exist_ok=True)
    log_dir(settings).mkdir(parents=True, exist_ok=True)
    log = log_dir(settings) / f"{service.name}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            service.command(settings),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ | service.env(settings),
            start_new_session=True,  # its own process group, stopped as a whole
        )
    _pid_file(settings, service.name).write_text(str(proc.pid))
    deadline = time.monotonic() + service.ready_timeout_s
    while not pg.port_in_use("127.0.0.1", port):
        if proc.poll() is not None:
            raise SystemExit(f"{service.name} exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{service.name} not answering on port {port}; see {log}")
        time.sleep(0.5)
    return f"{service.name}: {service.url(settings)} (log {log})"


def stop_service(settings: Settings, name: str, *, grace_s: float = 30.0) -> str | None:
    pid = service_pid(settings, name)
    _pid_file(settings, name).unlink(missing_ok=True)
    if pid is None:
        return None
    import psutil

    # Children may start sessions of their own (Airflow does): collect the whole tree first.
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return f"{name}: was not running"
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(tree, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return (
        f"{name}: stopped"
        if not alive
        else f"{name}: {len(alive)} processes killed after {grace_s:.0f} s"
    )


def raw_data_up(settings: Settings) -> str:
    """Generate raw files (with injected errors) when raw-data is empty, so data flows."""
    raw = settings.raw_data_dir
    waiting = sorted(raw.glob("*.csv")) if raw.exists() else []
    if waiting:
        return f"raw-data: {len(waiting)} files waiting in {raw}"
    # The first set is reproducible; once a set was generated (and ingested), a new one.
    seed = 42 if not any((settings.data_dir / "manifests").glob("*.json")) else int(time.time())
    result = subprocess.run(
        [sys.executable, "-m", "error_injection", "generate", "--seed", str(seed), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"raw-data generation failed:\n{result.stderr[-2000:]}")
    count = len(list(raw.glob("*.csv")))
    return f"raw-data: generated {count} files in {raw} (seed {seed}, half with injected errors)"


def up(settings: Settings) -> list[str]:
    lines = [database_up(settings), raw_data_up(settings)]
    lines.append(ensure_local_credentials(settings.var_dir))
    for service in services():
        lines.append(start_service(settings, service))
    lines += [
        f"data folders: {settings.data_dir} (raw-data, good_data, bad_data, reports)",
        f"logs: {log_dir(settings)}",
        "stop everything with `make down`; see what runs with `make status`",
    ]
    return lines


def down(settings: Settings) -> list[str]:
    lines = [line for s in reversed(services()) if (line := stop_service(settings, s.name))]
    if settings.embedded_postgres:
        stopped = pg.stop(embedded_server(settings))
        lines.append(
            "embedded PostgreSQL: stopped" if stopped else "embedded PostgreSQL: not running"
        )
    return lines


def status(settings: Settings) -> list[str]:
    lines = []
    if settings.embedded_postgres:
        server = embedded_server(settings)
        state = "running" if pg.is_running(server) else "stopped"
        lines.append(
            f"embedded PostgreSQL: {state} ({server.host}:{server.port}, data {server.data_dir})"
        )
    else:
        lines.append("PostgreSQL: external (DATABASE_URL)")
    for service in services():
        pid = service_pid(settings, service.name)
        lines.append(
            f"{service.name}: "
            + (f"running, pid {pid}, {service.url(settings)}" if pid else "stopped")
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlsys.ops", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "db"])
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        if args.command == "db":
            lines = [database_up(settings)]
        else:
            lines = {"up": up, "down": down, "status": status}[args.command](settings)
    except pg.PostgresError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
