"""A throw-away database for the benchmarks that need one (frontend, report_index)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlsys.db import migrate
from ops import pg


@contextmanager
def scratch_database(folder: Path, name: str = "mlsys") -> Iterator[str]:
    """An embedded PostgreSQL in `folder`/pg on a free port, database `name` migrated; yields
    its SQLAlchemy URL and stops the server on exit. Raises PostgresError if it cannot start."""
    server = pg.EmbeddedServer(data_dir=folder / "pg", port=pg.free_port())
    pg.start(server)
    try:
        pg.wait_until_ready(server.dsn())
        pg.ensure_database(server.dsn(), name)
        url = server.url(name)
        migrate(url)
        yield url
    finally:
        pg.stop(server)
