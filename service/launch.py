"""How `make up` starts the model service (imported by ops.supervisor)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

from mlsys.config import ROOT, Settings, load_settings
from ops.supervisor import Service
from service.config import ServiceSettings, get_service_settings, load_service_settings


def command(settings: Settings, conf: ServiceSettings | None = None) -> list[str]:
    """One process on API_PORT, or with API_WORKERS >= 2 the fleet: haproxy on API_PORT in
    front of that many processes (service/fleet.py, docs/scaling.md)."""
    conf = conf or get_service_settings()
    python = str(settings.venv_python("app"))
    if conf.workers >= 2:
        return [python, "-m", "service.fleet"]
    # Each process imports the app and loads the model in its lifespan: nothing
    # LightGBM-related exists before it started (LightGBM + OpenMP hang after fork).
    # Alone, with no balancer to tell, it does not drain when stopped.
    return [
        python, "-m", "service.serve",
        "--host", settings.api_host, "--port", str(settings.api_port), "--drain-s", "0",
    ]  # fmt: skip


SERVICE = Service(
    name="api",
    command=command,
    url=lambda s: f"http://{s.api_host}:{s.api_port}",
    port=lambda s: s.api_port,
    ready_timeout_s=60.0,
    db_role="service",
)


def spawn(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start the service as `make up` does, with settings from `env` (tests, benchmarks).

    `env` overrides os.environ (DATABASE_URL, MODEL_DIR, API_PORT, ...); the process gets its
    own process group so that `stop` ends the fleet, haproxy and its processes together.
    """
    full_env = os.environ | env
    cmd = command(load_settings(full_env), load_service_settings(full_env))
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def log_tail(log_path: Path | None, lines: int = 40) -> str:
    """The last `lines` lines of a log, introduced by a newline; "" without one."""
    if log_path is None:
        return ""
    try:
        text = log_path.read_text(errors="replace")
    except OSError as exc:
        return f"\n(its log {log_path} cannot be read: {exc})"
    return f"\nthe last lines of {log_path}:\n" + "\n".join(text.splitlines()[-lines:])


def wait_until_serving(
    proc: subprocess.Popen, url: str, *, timeout_s: float = 60.0, log_path: Path | None = None
) -> None:
    """Wait until GET /livez answers; RuntimeError (with the tail of `log_path`, the log given
    to `spawn`) when the process died first or `timeout_s` passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the service exited with {proc.returncode} before answering" + log_tail(log_path)
            )
        try:
            with urllib.request.urlopen(f"{url}/livez", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"the service did not answer on {url} within {timeout_s:.0f} s" + log_tail(log_path)
            )
        time.sleep(0.2)


def stop(proc: subprocess.Popen, *, grace_s: float = 20.0) -> None:
    """Stop a process started by `spawn` and all its workers (its process group)."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
