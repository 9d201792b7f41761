"""Bring the local system up and down: `python -m ops up|down|status|db`.

`make up`, `make down` and `make status` call this. Each long-running part is started in its
own process group with its pid file and log file under VAR_DIR/run and VAR_DIR/log, so that
`down` stops exactly what `up` started and nothing else. A pid file holds the pid, the boot it
belongs to, the start in clock ticks since that boot and a hash of the command line
(`PidRecord`): a pid reused by another process after a reboot is neither reported as running
nor signalled, and a step of the wall clock (NTP, a virtual machine resumed) does not make our
own processes look like strangers. Starting twice is harmless.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlsys import history
from mlsys.api_auth import ensure_local_credentials
from mlsys.config import DB_ROLES, ROOT, ConfigError, Settings, get_settings
from mlsys.credentials import SecretError, ensure_secret, resolve_secret, secrets_dir
from mlsys.db import RolePlan, apply_grants, migrate, provision
from ops import pg


@dataclass
class Service:
    """A long-running process that `up` starts and `down` stops."""

    name: str
    command: Callable[[Settings], list[str]]
    url: Callable[[Settings], str]
    # The port it listens on: it is ready when the port answers. None for a process without
    # one (a Celery worker): it is then ready when `ready_text` appears in its log.
    port: Callable[[Settings], int] | None
    env: Callable[[Settings], dict[str, str]] = field(default=lambda s: {})
    ready_timeout_s: float = 60.0
    # The database role it connects as (a key of mlsys.config.DB_ROLES: MLSYS_DB_ROLE), or
    # None when it does not use the database.
    db_role: str | None = None
    # How a person logs in, for `make status`: where the credential is, never its value.
    login: Callable[[Settings], str] | None = None
    # Whether `up` starts it with these settings (Redis and the Celery workers only with
    # AIRFLOW_EXECUTOR=celery). `down` stops every service that runs, enabled or not.
    enabled: Callable[[Settings], bool] = field(default=lambda s: True)
    ready_text: str | None = None


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
    return pg.EmbeddedServer(
        settings.pg_data_dir, settings.pg_host, settings.pg_port, state_dir=settings.var_dir
    )


def ensure_db_secrets(settings: Settings) -> None:
    """Generate (once, 0600 under VAR_DIR/secrets) the password of every component's role that
    the environment does not give."""
    for _, secret in DB_ROLES.values():
        if resolve_secret(secret, settings.var_dir, settings.env, required=False) is None:
            ensure_secret(settings.var_dir, secret)


def database_up(settings: Settings) -> str:
    """Start the embedded server if it is ours, make sure of the roles and both databases,
    migrate as the owner, apply the grants. Returns a line for the user."""
    admin_dsn = None
    if settings.embedded_postgres:
        server = embedded_server(settings)
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        ensure_db_secrets(settings)
        upgrading = pg.needs_upgrade(server)
        started = pg.start(server)
        pg.wait_until_ready(server.dsn())
        admin_dsn = server.dsn()
        state = "started" if started else "already running"
        where = (
            f"embedded PostgreSQL {state} on {server.host}:{server.port} (log {server.log_file})"
        )
        if upgrading:
            where += (
                "; upgraded from password-less logins to SCRAM passwords and one role per component"
            )
    elif settings.database_admin_url:
        admin_dsn = settings.database_admin_dsn
        where = "PostgreSQL from DATABASE_URL (not started by us; roles from DATABASE_ADMIN_URL)"
    else:
        where = "PostgreSQL from DATABASE_URL (not started by us; roles and grants are yours)"
    if admin_dsn is not None:
        provision(admin_dsn, RolePlan.from_settings(settings))
    applied = migrate(settings.owner_database_url)
    # The months of predictions: old ones dropped when a retention is set, the ones ahead
    # created (mlsys/history.py, as `make prune-predictions`); never left to the request path.
    keep = history.load_history_settings()
    dropped = []
    if keep.retention_months:
        dropped = history.prune(settings.owner_database_dsn, keep.retention_months).dropped
    created = history.ensure_partitions(settings.owner_database_dsn, keep.months_ahead)
    if admin_dsn is not None:
        apply_grants(
            settings.owner_database_url,
            service=settings.db_role("service"),
            pipelines=settings.db_role("pipelines"),
            reader=settings.db_role("reader"),
        )
    months = f"; months of predictions created: {', '.join(created)}" if created else ""
    months += f"; months of predictions dropped: {', '.join(dropped)}" if dropped else ""
    return (
        f"{where}; migrations applied: {', '.join(applied) if applied else 'none pending'}{months}"
    )


def _pid_file(settings: Settings, name: str) -> Path:
    return run_dir(settings) / f"{name}.pid"


@dataclass(frozen=True)
class PidRecord:
    """What a pid file holds: enough to tell our process from another one given the same pid
    later (after a reboot, pids are reused).

    The identity is (boot_id, pid, start_ticks, cmdline_sha256). `start_ticks` is field 22 of
    /proc/PID/stat, the start in clock ticks since boot (proc(5)): unlike a start time in
    seconds since the epoch (psutil's `create_time`, boot time + ticks), it does not move when
    the wall clock is stepped, which would otherwise make `down` leave every process running.
    `create_time` is kept for people reading the file, and for pid files written before
    `start_ticks` existed, which are still compared by it.
    """

    pid: int
    create_time: float  # seconds since the epoch, as psutil reports it (informative)
    cmdline_sha256: str
    start_ticks: int | None = None  # clock ticks since boot; None in older pid files
    boot_id: str | None = None  # /proc/sys/kernel/random/boot_id; None in older pid files

    @classmethod
    def of(cls, pid: int) -> PidRecord:
        """Raises psutil.NoSuchProcess when `pid` is gone."""
        import psutil

        proc = psutil.Process(pid)
        try:
            ticks = _start_ticks(pid)
        except OSError:
            raise psutil.NoSuchProcess(pid) from None
        return cls(pid, proc.create_time(), _fingerprint(proc.cmdline()), ticks, _boot_id())

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> PidRecord | None:
        """None for anything else (an older plain pid, a damaged file)."""
        try:
            data = json.loads(text)
            ticks = data.get("start_ticks")
            boot = data.get("boot_id")
            return cls(
                int(data["pid"]),
                float(data["create_time"]),
                str(data["cmdline_sha256"]),
                int(ticks) if ticks is not None else None,
                str(boot) if boot is not None else None,
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def names(self, proc) -> bool:
        """Whether the live psutil.Process `proc` (same pid) is the process recorded here.

        Raises psutil.NoSuchProcess / psutil.AccessDenied as psutil does.
        """
        if _fingerprint(proc.cmdline()) != self.cmdline_sha256:
            return False
        if self.start_ticks is None or self.boot_id is None:  # an older pid file
            return abs(proc.create_time() - self.create_time) <= 0.01
        try:
            return self.boot_id == _boot_id() and self.start_ticks == _start_ticks(self.pid)
        except OSError:
            import psutil

            raise psutil.NoSuchProcess(self.pid) from None


def _start_ticks(pid: int) -> int:
    """Field 22 of /proc/PID/stat, `starttime`: clock ticks from boot to the process's start
    (proc(5)). The command name (field 2) may hold spaces and parentheses, so the fields are
    counted after its last ')'. Raises OSError when the process is gone."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def _boot_id() -> str:
    """This boot's random id (/proc/sys/kernel/random/boot_id): a new one after each reboot."""
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _fingerprint(cmdline: list[str]) -> str:
    return hashlib.sha256("\0".join(cmdline).encode()).hexdigest()


def _write_pid_file(settings: Settings, name: str, record: PidRecord) -> None:
    path = _pid_file(settings, name)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(record.to_json())
    tmp.replace(path)


def our_process(settings: Settings, name: str):
    """The running process `up` started as `name` (a psutil.Process), or None.

    The pid alone proves nothing: the process must also have started at the recorded tick of
    the recorded boot and run the recorded command line, so a recycled pid is never taken for
    ours (`PidRecord.names`).
    """
    import psutil

    path = _pid_file(settings, name)
    try:
        record = PidRecord.from_json(path.read_text())
    except OSError:
        return None
    if record is None:
        return None
    try:
        proc = psutil.Process(record.pid)
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE or not record.names(proc):
                return None
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None
    return proc


def service_pid(settings: Settings, name: str) -> int | None:
    """The pid of our running `name` (see `our_process`), or None."""
    proc = our_process(settings, name)
    return proc.pid if proc is not None else None


# Every process `up` starts carries these in its environment, and its descendants inherit
# them: `down` finds by them what a pid file's tree no longer holds (a child re-parented to
# init after its parent died, a worker's orphan), and a stranger never carries them.
TAG_RUN_DIR = "MLSYS_SUPERVISED_BY"  # the run folder of the `up` that started it
TAG_SERVICE = "MLSYS_SUPERVISED_AS"  # the service's name


def _tag(settings: Settings, name: str) -> dict[str, str]:
    return {TAG_RUN_DIR: str(run_dir(settings).resolve()), TAG_SERVICE: name}


def tagged_processes(settings: Settings, name: str | None = None) -> list:
    """Live processes (psutil.Process) whose environment says `up` with these settings started
    them (or their ancestor) as `name`, or as any service when `name` is None.

    The calling process and its ancestors are never listed. A process that rewrote its own
    environment area (setproctitle with a long title) cannot be found this way; `down` reaches
    those through the pid file's process tree.
    """
    import psutil

    run = str(run_dir(settings).resolve())
    spared = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    found = []
    for proc in psutil.process_iter():
        if proc.pid in spared:
            continue
        try:
            env = proc.environ()
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        if env.get(TAG_RUN_DIR) == run and (name is None or env.get(TAG_SERVICE) == name):
            found.append(proc)
    return found


def _terminate(procs: list, grace_s: float) -> int:
    """SIGTERM to each of `procs` (psutil.Process), SIGKILL to those alive after `grace_s`
    seconds; the number that had to be killed."""
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return len(alive)


def _db_role_env(service: Service) -> dict[str, str]:
    return {"MLSYS_DB_ROLE": service.db_role} if service.db_role else {}


def _record(settings: Settings, name: str, proc: subprocess.Popen, log: Path) -> None:
    import psutil

    try:
        _write_pid_file(settings, name, PidRecord.of(proc.pid))
    except psutil.NoSuchProcess:
        raise SystemExit(f"{name} exited at once; see {log}") from None


def start_service(settings: Settings, service: Service) -> str:
    if service_pid(settings, service.name):
        return f"{service.name}: already running at {service.url(settings)}"
    port = service.port(settings) if service.port is not None else None
    if port is not None and pg.port_in_use("127.0.0.1", port):
        raise SystemExit(
            f"{service.name}: port {port} is already taken by another program; "
            "free it or choose another port in .env"
        )
    run_dir(settings).mkdir(parents=True, exist_ok=True)
    log_dir(settings).mkdir(parents=True, exist_ok=True)
    log = log_dir(settings) / f"{service.name}.log"
    log_start = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            service.command(settings),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=os.environ
            | _db_role_env(service)
            | service.env(settings)
            | _tag(settings, service.name),
            start_new_session=True,  # its own process group, stopped as a whole
        )
    _record(settings, service.name, proc, log)
    deadline = time.monotonic() + service.ready_timeout_s
    while not _ready(service, port, log, log_start):
        if proc.poll() is not None:
            raise SystemExit(f"{service.name} exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            waited = f"port {port}" if port is not None else repr(service.ready_text)
            raise SystemExit(f"{service.name} not ready ({waited}); see {log}")
        time.sleep(0.5)
    # Record the command line it runs now that it serves: a launcher that `exec`s another
    # program (`bash -c "... && exec x"`) or renames itself has replaced its own by then.
    _record(settings, service.name, proc, log)
    return f"{service.name}: {service.url(settings)} (log {log})"


def _ready(service: Service, port: int | None, log: Path, log_start: int) -> bool:
    """The port answers, or (no port) the ready text appeared in the log since the start."""
    if port is not None:
        return pg.port_in_use("127.0.0.1", port)
    if service.ready_text is None:
        return True
    with open(log, "rb") as f:
        f.seek(log_start)
        return service.ready_text.encode() in f.read()


def stop_service(settings: Settings, name: str, *, grace_s: float = 30.0) -> str | None:
    """Stop our `name`: its whole process tree, and every process that carries its tag
    (`tagged_processes`) though no longer in that tree. None when there was neither a pid file
    nor a tagged process."""
    import psutil

    path = _pid_file(settings, name)
    had_file = path.exists()
    ours = our_process(settings, name)
    path.unlink(missing_ok=True)
    procs: dict[int, psutil.Process] = {}
    if ours is not None:
        # Children may start sessions of their own (Airflow does): collect the whole tree first.
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.update({p.pid: p for p in (ours, *ours.children(recursive=True))})
    strays = [p for p in tagged_processes(settings, name) if p.pid not in procs]
    procs.update({p.pid: p for p in strays})
    if not procs:
        if had_file:
            return f"{name}: not running (stale pid file removed, nothing killed)"
        return None
    if ours is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(ours.pid, signal.SIGTERM)
    killed = _terminate(list(procs.values()), grace_s)
    said = "stopped" if ours is not None else "not running"
    if strays:
        said += f"; {len(strays)} processes of it outside its tree stopped too"
    if killed:
        said += f"; {killed} processes killed after {grace_s:.0f} s"
    return f"{name}: {said}"


# The folders that show a data folder has held data before (the ingestion's outputs, and the
# manifests `make raw-data` writes beside the files it generates).
_DATA_HISTORY = ("manifests", "good_data", "bad_data", "archive", "processing")


def _held_data(settings: Settings) -> bool:
    """Whether DATA_DIR ever held data: a visible entry in one of _DATA_HISTORY."""
    for name in _DATA_HISTORY:
        folder = settings.data_dir / name
        if folder.is_dir() and any(not p.name.startswith(".") for p in folder.iterdir()):
            return True
    return False


def raw_data_up(settings: Settings) -> str:
    """Fill an empty raw-data with demo files (20 of 50 rows, half with injected errors, seed
    42) so that data flows on a first `make up`; only into a data folder that never held data
    (`_held_data`), and never with DEMO_RAW_DATA=0, so a folder of real data is never mixed
    with demo rows. Raises SystemExit when the generation fails."""
    raw = settings.raw_data_dir
    waiting = sorted(raw.glob("*.csv")) if raw.exists() else []
    if waiting:
        return f"raw-data: {len(waiting)} files waiting in {raw}"
    if not settings.demo_raw_data:
        return f"raw-data: empty, waiting for files in {raw} (DEMO_RAW_DATA=0: no demo files)"
    if _held_data(settings):
        return (
            f"raw-data: empty, waiting for files in {raw} (demo files go only into a data "
            "folder that never held data; `make raw-data` writes a set on demand)"
        )
    seed = 42
    result = subprocess.run(
        [sys.executable, "-m", "error_injection", "generate", "--seed", str(seed), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"raw-data generation failed:\n{result.stderr[-2000:]}")
    count = len(list(raw.glob("*.csv")))
    return (
        f"raw-data: generated {count} demo files in {raw} (seed {seed}, half with injected "
        "errors; DEMO_RAW_DATA=0 turns this off)"
    )


def up(settings: Settings) -> list[str]:
    lines = [database_up(settings), raw_data_up(settings)]
    lines.append(ensure_local_credentials(settings.var_dir))
    for service in services():
        if service.enabled(settings):
            lines.append(start_service(settings, service))
    lines += [
        f"data folders: {settings.data_dir} (raw-data, good_data, bad_data, reports)",
        f"logs: {log_dir(settings)}",
        "stop everything with `make down`; see what runs with `make status`",
    ]
    return lines


def down(settings: Settings) -> list[str]:
    lines = [line for s in reversed(services()) if (line := stop_service(settings, s.name))]
    # A service no longer declared (a worker count lowered, a component removed) may have left
    # processes: everything still tagged with this run folder goes too.
    if left := tagged_processes(settings):
        killed = _terminate(left, 10.0)
        lines.append(
            f"{len(left)} other processes started by `make up` stopped"
            + (f" ({killed} killed)" if killed else "")
        )
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
        lines.append(
            f"  roles {', '.join(settings.db_role(c) for c in DB_ROLES)}; passwords (0600) in "
            f"{secrets_dir(settings.var_dir)}"
        )
    else:
        lines.append("PostgreSQL: external (DATABASE_URL)")
    for service in services():
        pid = service_pid(settings, service.name)
        if pid is None and not service.enabled(settings):
            continue
        lines.append(
            f"{service.name}: "
            + (f"running, pid {pid}, {service.url(settings)}" if pid else "stopped")
        )
        if service.login is not None:
            lines.append(f"  login: {service.login(settings)}")
    return lines


def not_running(settings: Settings) -> list[str]:
    """What `up` would start but does not run now: the embedded database (when ours) and each
    enabled service, by name."""
    down = []
    if settings.embedded_postgres and not pg.is_running(embedded_server(settings)):
        down.append("embedded PostgreSQL")
    down += [
        s.name for s in services() if s.enabled(settings) and service_pid(settings, s.name) is None
    ]
    return down


# `status` exits with this when a part is not running: LSB's "program is not running" (the
# code `systemctl status` uses), so that scripts can test `make status`.
STATUS_NOT_RUNNING = 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status", "db"])
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
        if args.command == "db":
            lines = [database_up(settings)]
        else:
            lines = {"up": up, "down": down, "status": status}[args.command](settings)
    except (pg.PostgresError, ConfigError, SecretError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    if args.command == "status" and (stopped := not_running(settings)):
        print(f"not running: {', '.join(stopped)}", file=sys.stderr)
        return STATUS_NOT_RUNNING
    return 0


if __name__ == "__main__":
    sys.exit(main())
