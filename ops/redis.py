"""Our own Redis server, the Celery broker when AIRFLOW_EXECUTOR=celery (Debian's `redis-server`,
installed by `make setup`, scripts/system_deps.sh).

Started by `make up` as one of the supervised processes (pipelines/launch.py), with its data
(append-only file) under VAR_DIR/redis and a configuration file written there at each start:
the loopback only, protected mode, and a password, the secret REDIS_PASSWORD
(mlsys/credentials.py: the environment, REDIS_PASSWORD_FILE, or VAR_DIR/secrets/redis_password,
generated once, mode 0600). The password is in the configuration file (0600), never on the
command line, which every user of the machine can read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mlsys.credentials import ensure_secret, resolve_secret
from pipelines.executor import REDIS_SECRET

REDIS_SERVER = "redis-server"


class RedisError(RuntimeError):
    """redis-server is missing or cannot be configured."""


def server_binary() -> str:
    found = shutil.which(REDIS_SERVER) or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise RedisError(
            "redis-server is not installed: AIRFLOW_EXECUTOR=celery needs it as the Celery "
            "broker. `make setup` installs Debian's package (scripts/system_deps.sh); or set "
            "CELERY_BROKER_URL to a Redis of yours."
        )
    return found


def data_dir(var_dir: Path) -> Path:
    return var_dir / "redis"


def config_text(*, port: int, password: str, folder: Path, host: str = "127.0.0.1") -> str:
    """redis.conf of our server: loopback, password, append-only persistence, log to stdout
    (the supervisor keeps it in VAR_DIR/log/redis.log)."""
    if any(c in password for c in "\n\r \"'"):
        raise RedisError("REDIS_PASSWORD must not contain spaces, quotes or line breaks")
    return "\n".join([
        "# Written by `make up` (ops/redis.py) at each start: edits are overwritten.",
        f"bind {host}",
        "protected-mode yes",
        f"port {port}",
        f"requirepass {password}",
        "daemonize no",
        'logfile ""',
        f'dir "{folder}"',  # quoted: VAR_DIR may hold spaces
        # The broker's queues survive a restart of Redis: an fsync every second at most.
        "appendonly yes",
        "appendfsync everysec",
        'save ""',
        "",
    ])  # fmt: skip


def prepare(var_dir: Path, port: int, env: dict[str, str] | None = None) -> Path:
    """Write VAR_DIR/redis/redis.conf (0600) with the password; its path."""
    folder = data_dir(var_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    if resolve_secret(REDIS_SECRET, var_dir, env, required=False) is None:
        ensure_secret(var_dir, REDIS_SECRET)
    secret = str(resolve_secret(REDIS_SECRET, var_dir, env))
    path = folder / "redis.conf"
    tmp = folder / ".redis.conf.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(config_text(port=port, password=secret, folder=folder))
    tmp.replace(path)
    return path


def command(var_dir: Path, port: int, env: dict[str, str] | None = None) -> list[str]:
    """The command that runs our Redis (after writing its configuration)."""
    return [server_binary(), str(prepare(var_dir, port, env))]
