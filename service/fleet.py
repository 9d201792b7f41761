"""Several API processes behind haproxy, natively: `python -m service.fleet` (and `restart`).

With `API_WORKERS` >= 2, `make up` starts this instead of one process (service/launch.py). It
renders service/templates/haproxy.cfg.j2, starts haproxy on API_HOST:API_PORT and one
`service.serve` process per worker on 127.0.0.1:API_BACKEND_PORT+i, and supervises them:

- SIGHUP: rolling restart, one process after the other. Each is sent SIGTERM (it drains:
  /readyz 503 while still serving, API_DRAIN_S), haproxy is seen to take it out (its stats
  socket), the process finishes its requests in flight and exits, a new one is started on the
  same port and haproxy is seen to put it back, before the next. The others serve meanwhile.
- a process that dies is started again; haproxy dying stops everything (exit 1).
- SIGTERM or SIGINT: haproxy stops accepting and finishes what it forwarded, then the
  processes stop gracefully.

Its state (pids, ports, restarts done) is written to VAR_DIR/run/api-fleet-<port>.json;
`python -m service.fleet restart` sends SIGHUP and waits until that file says it is done.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from mlsys.config import ROOT, Settings, get_settings
from service.config import ServiceSettings, allowed_hosts, get_service_settings

TEMPLATES = Path(__file__).resolve().parent / "templates"
READY_TIMEOUT_S = 120.0
# A process that keeps dying (a missing token, a broken model folder) is started again at
# most this often, so that its log stays readable.
RESPAWN_PAUSE_S = 5.0


class FleetError(RuntimeError):
    """haproxy missing or refusing its configuration, or a process that does not come up."""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found is None:
        raise FleetError(
            "haproxy is not installed (API_WORKERS >= 2 runs the processes behind it): "
            "`make setup` installs Debian's package, or set API_WORKERS=1"
        )
    return found


def render_config(
    settings: Settings, conf: ServiceSettings, stats_socket: Path, backend_ports: list[int]
) -> str:
    """haproxy's configuration: frontend on API_HOST:API_PORT, one server per process."""
    hosts = [h for h in allowed_hosts(conf, settings.api_host) if "*" not in h]
    env = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined)
    return env.get_template("haproxy.cfg.j2").render(
        host=settings.api_host,
        port=settings.api_port,
        stats_socket=stats_socket,
        check_host=hosts[0] if hosts else "localhost",
        backend_ports=backend_ports,
    )


def server_states(stats_socket: Path) -> dict[str, str]:
    """{server name: status} as haproxy sees them ("UP", "DOWN", "MAINT", "UP 1/2", ...)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect(str(stats_socket))
        sock.sendall(b"show stat -1 4 -1\n")  # servers of every backend
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode().lstrip("# ")
    return {row["svname"]: row["status"] for row in csv.DictReader(io.StringIO(text))}


def state_file(settings: Settings) -> Path:
    return settings.var_dir / "run" / f"api-fleet-{settings.api_port}.json"


@dataclass
class FleetState:
    """What `state_file` holds: read by `restart` and by the tests and benchmarks."""

    haproxy_pid: int = 0
    backends: dict[str, int] = field(default_factory=dict)  # server name -> pid
    ready: bool = False
    restarts_requested: int = 0
    restarts_done: int = 0
    last_restart_s: float = 0.0  # how long the last rolling restart took
    last_error: str = ""


class Fleet:
    def __init__(self, settings: Settings, conf: ServiceSettings) -> None:
        self.settings, self.conf = settings, conf
        self.ports = {f"api-{i}": conf.backend_port + i for i in range(conf.workers)}
        self.procs: dict[str, subprocess.Popen] = {}
        self.spawned_at: dict[str, float] = {}
        self.haproxy: subprocess.Popen | None = None
        self.state = FleetState()
        # A short private folder: a unix socket path must stay under 108 bytes.
        self.tmp = Path(tempfile.mkdtemp(prefix="api-fleet-"))
        self.stats_socket = self.tmp / "haproxy.sock"
        self.hup = False
        self.stop = False

    # -- processes --------------------------------------------------------------------
    def _spawn_backend(self, name: str) -> None:
        cmd = [
            sys.executable, "-m", "service.serve",
            "--host", "127.0.0.1", "--port", str(self.ports[name]),
        ]  # fmt: skip
        # Same process group and log as the fleet: `make down` stops the group as a whole.
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL)
        self.spawned_at[name] = time.monotonic()
        self.state.backends[name] = self.procs[name].pid

    def _wait_until(self, name: str, up: bool, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            proc = self.procs.get(name)
            if up and proc is not None and proc.poll() is not None:
                raise FleetError(f"{name} exited with {proc.returncode} (its log is above)")
            with contextlib.suppress(OSError):
                status = server_states(self.stats_socket).get(name, "")
                if status.startswith("UP") if up else not status.startswith("UP"):
                    return
            if time.monotonic() > deadline:
                raise FleetError(f"haproxy did not see {name} {'up' if up else 'down'}")
            time.sleep(0.1)

    def _stop_backend(self, name: str, sig: int) -> None:
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(self.conf.drain_s + self.conf.graceful_shutdown_s + 5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def start(self) -> None:
        cfg = self.tmp / "haproxy.cfg"
        cfg.write_text(
            render_config(self.settings, self.conf, self.stats_socket, list(self.ports.values()))
            + "\n"
        )
        binary = haproxy_binary()
        check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise FleetError(f"haproxy refuses {cfg}: {check.stdout}{check.stderr}")
        for name in self.ports:
            self._spawn_backend(name)
        self.haproxy = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdin=subprocess.DEVNULL)
        self.state.haproxy_pid = self.haproxy.pid
        for name in self.ports:
            self._wait_until(name, up=True, timeout_s=READY_TIMEOUT_S)
        self.state.ready = True
        self._save()

    def rolling_restart(self) -> None:
        """Replace every process, one at a time; the others serve meanwhile."""
        started = time.monotonic()
        for name in self.ports:
            # Never take out a process while another is not serving (one that died meanwhile
            # and is being started again): that could leave haproxy with none.
            for other in self.ports:
                if other != name:
                    self._wait_until(other, up=True, timeout_s=READY_TIMEOUT_S)
            # SIGTERM: the process drains (readiness false) and keeps serving until haproxy
            # has taken it out; only then does it stop accepting.
            self.procs[name].send_signal(signal.SIGTERM)
            self._wait_until(name, up=False, timeout_s=self.conf.drain_s + 5)
            self._stop_backend(name, signal.SIGTERM)
            self._spawn_backend(name)
            self._save()
            self._wait_until(name, up=True, timeout_s=READY_TIMEOUT_S)
        self.state.last_restart_s = time.monotonic() - started

    def shutdown(self) -> None:
        if self.haproxy is not None and self.haproxy.poll() is None:
            # Soft stop: no new connections, what was forwarded is finished.
            self.haproxy.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.haproxy.wait(self.conf.graceful_shutdown_s)
            if self.haproxy.poll() is None:
                self.haproxy.kill()
        for name, proc in self.procs.items():
            if proc.poll() is None:
                # Nothing routes to it any more: SIGTERM once drains, twice stops at once
                # (gracefully); `make down` has sent it one already.
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                self._stop_backend(name, signal.SIGTERM)
        shutil.rmtree(self.tmp, ignore_errors=True)
        state_file(self.settings).unlink(missing_ok=True)

    def _save(self) -> None:
        path = state_file(self.settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self.state)))
        tmp.replace(path)

    def run(self) -> int:
        signal.signal(signal.SIGHUP, lambda *_: setattr(self, "hup", True))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: setattr(self, "stop", True))
        try:
            self.start()
            while not self.stop:
                if self.haproxy is not None and self.haproxy.poll() is not None:
                    print(f"haproxy exited with {self.haproxy.returncode}", file=sys.stderr)
                    return 1
                if self.hup:
                    self.hup = False
                    self.state.restarts_requested += 1
                    self._save()
                    try:
                        self.rolling_restart()
                        self.state.last_error = ""
                    except FleetError as exc:
                        self.state.last_error = str(exc)
                        print(f"rolling restart stopped: {exc}", file=sys.stderr)
                    self.state.restarts_done += 1
                    self._save()
                for name, proc in self.procs.items():
                    if (
                        proc.poll() is not None
                        and not self.stop
                        and time.monotonic() - self.spawned_at[name] >= RESPAWN_PAUSE_S
                    ):
                        print(
                            f"{name} exited with {proc.returncode}; starting it again",
                            file=sys.stderr,
                        )
                        self._spawn_backend(name)
                        self._save()
                time.sleep(0.2)
            return 0
        except FleetError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            self.shutdown()


def read_state(settings: Settings) -> FleetState | None:
    """The fleet's state file, or None while there is none (starting, stopped)."""
    try:
        return FleetState(**json.loads(state_file(settings).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def wait_ready(settings: Settings, *, timeout_s: float = READY_TIMEOUT_S) -> FleetState:
    """Wait until every process of the fleet on API_PORT serves behind haproxy."""
    deadline = time.monotonic() + timeout_s
    while (state := read_state(settings)) is None or not state.ready:
        if time.monotonic() > deadline:
            raise FleetError(f"the API processes were not all up within {timeout_s:.0f} s")
        time.sleep(0.2)
    return state


def request_restart(settings: Settings, fleet_pid: int, *, timeout_s: float = 600.0) -> FleetState:
    """SIGHUP the fleet and wait until its rolling restart is done; returns its state."""
    before = wait_ready(settings)
    os.kill(fleet_pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        now = read_state(settings)
        if now is not None and now.restarts_done > before.restarts_done:
            return now
        time.sleep(0.2)
    raise FleetError(f"the rolling restart did not finish within {timeout_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.fleet", description=__doc__)
    parser.add_argument("command", nargs="?", default="run", choices=["run", "restart"])
    args = parser.parse_args(argv)
    settings, conf = get_settings(), get_service_settings()
    if args.command == "restart":
        from ops.supervisor import service_pid

        pid = service_pid(settings, "api")
        if pid is None:
            print("the API is not running (make up)", file=sys.stderr)
            return 1
        if conf.workers < 2:
            print(
                "one API process (API_WORKERS=1): restart it with `make down && make up`",
                file=sys.stderr,
            )
            return 1
        state = request_restart(settings, pid)
        print(
            f"rolling restart of {len(state.backends)} API processes in {state.last_restart_s:.1f} s"
            + (f"; stopped: {state.last_error}" if state.last_error else "")
        )
        return 1 if state.last_error else 0
    return Fleet(settings, conf).run()


if __name__ == "__main__":
    sys.exit(main())
