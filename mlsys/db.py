"""Database access shared by the components: URLs, engines and migrations."""

from __future__ import annotations

from pathlib import Path

from mlsys.config import ROOT

MIGRATIONS_DIR = ROOT / "sql" / "migrations"


def yoyo_url(sqlalchemy_url: str) -> str:
    """yoyo names the psycopg2 backend `postgresql://`."""
    return "postgresql://" + sqlalchemy_url.split("://", 1)[1]


def psycopg2_dsn(sqlalchemy_url: str) -> str:
    """A libpq URL that psycopg2.connect() accepts."""
    return yoyo_url(sqlalchemy_url)


def migrate(url: str, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations in `sql/migrations`; returns the ids applied (none: [])."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(yoyo_url(url))
    migrations = read_migrations(str(migrations_dir))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]
