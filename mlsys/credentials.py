"""Local secrets: generated once under VAR_DIR/secrets (mode 0600), or given by the environment.

One home for every secret of the system (API tokens, database passwords, Airflow's admin
password): a component asks `resolve_secret(name)`, which takes, in order,
  1. the environment variable NAME (for containers and deployments),
  2. the file named by NAME_FILE (Docker/Kubernetes secrets),
  3. the file VAR_DIR/secrets/<name lower-cased>, which `make up` creates with
     `ensure_secret` (random, URL-safe, mode 0600, never printed).
Standard library only: imported in all three Python environments.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRETS_SUBDIR = "secrets"
# Values that mean "not set": refused rather than used as a credential.
PLACEHOLDERS = frozenset({"", "changeme", "change-me", "secret", "password", "xxx", "todo"})


class SecretError(RuntimeError):
    """A secret is missing, a placeholder, or its file is readable by others."""


def secrets_dir(var_dir: Path) -> Path:
    return var_dir / SECRETS_SUBDIR


def secret_path(var_dir: Path, name: str) -> Path:
    return secrets_dir(var_dir) / name.lower()


def ensure_secret(var_dir: Path, name: str, *, nbytes: int = 32) -> Path:
    """Create VAR_DIR/secrets/<name> with a random URL-safe value unless it exists; its path.

    Created with O_EXCL and mode 0600 from the start (never world-readable, even briefly), in
    a folder of mode 0700. An existing file is kept as it is (restarts keep their credentials)
    but its mode is checked.
    """
    folder = secrets_dir(var_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    path = secret_path(var_dir, name)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _check_mode(path)
        return path
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_urlsafe(nbytes))
    return path


def _check_mode(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise SecretError(f"{path} is readable by others (mode {mode:o}): chmod 600 it")


def read_secret_file(path: Path, *, private: bool = True) -> str:
    """The stripped value of a secret file; `private` also requires mode 0600 or stricter
    (our own files; mounted Docker secrets are often 0444 inside their container)."""
    if private:
        _check_mode(path)
    value = path.read_text(encoding="utf-8").strip()
    if value.lower() in PLACEHOLDERS:
        raise SecretError(f"{path} holds no usable secret")
    return value


def resolve_secret(
    name: str, var_dir: Path, env: dict[str, str] | None = None, *, required: bool = True
) -> str | None:
    """The secret NAME from the environment, a NAME_FILE, or VAR_DIR/secrets (see module doc).

    Raises SecretError naming the variable (never the value) when it is required and absent,
    or when a given value is a placeholder.
    """
    env = dict(os.environ if env is None else env)
    direct = env.get(name)
    if direct is not None and direct.strip():
        if direct.strip().lower() in PLACEHOLDERS:
            raise SecretError(f"{name} is set to a placeholder: give it a real secret")
        return direct.strip()
    file_var = env.get(f"{name}_FILE", "").strip()
    if file_var:
        path = Path(file_var).expanduser()
        if not path.is_file():
            raise SecretError(f"{name}_FILE={file_var} is not a file")
        return read_secret_file(path, private=False)
    path = secret_path(var_dir, name)
    if path.is_file():
        return read_secret_file(path)
    if required:
        raise SecretError(
            f"{name} is not set: set {name} or {name}_FILE, or run `make up`, which generates "
            f"{path}"
        )
    return None
