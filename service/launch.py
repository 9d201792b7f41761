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
    conf = conf or get_service_settings()
    cmd = [
        str(settings.venv_python("app")), "-m", "uvicorn", "service.main:app",
        "--host", settings.api_host,
        "--port", str(settings.api_port),
        # Each worker imports the app and loads the model in its lifespan, after the worker
        # process started: nothing LightGBM-related exists before the (spawned) workers.
        "--workers", str(conf.workers),
        "--loop", "uvloop",
        "--http", "httptools",
    ]  # fmt: skip
    if not conf.access_log:
        cmd.append("--no-access-log")
    return cmd


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
    own process group so that `stop` ends the uvicorn supervisor and its workers together.
    """
    full_env = os.environ | env
    cmd = command(load_settings(full_env), load_service_settings(full_env))
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            cmd, cwd=ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip


def wait_until_serving(proc: subprocess.Popen, url: str, *, timeout_s: float = 60.0) -> None:
    """Wait until GET /livez answers; fail early if the process died."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{url}/livez", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service did not answer on {url} within {timeout_s:.0f} s")
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
