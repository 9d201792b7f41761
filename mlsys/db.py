"""Database set-up shared by the components: migrations, roles, grants (URL forms: mlsys.config)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlsys.config import DB_ROLES, ROOT, Settings, libpq_url

MIGRATIONS_DIR = ROOT / "sql" / "migrations"


def psycopg2_dsn(url: str) -> str:
    """What psycopg2.connect() takes, from any PostgreSQL URL: `mlsys.config.libpq_url` (the
    one conversion; `Settings.database_dsn` and its siblings give it ready-made)."""
    return libpq_url(url)


def migrate(url: str, migrations_dir: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply the pending migrations in `sql/migrations`; returns the ids applied (none: [])."""
    from yoyo import get_backend, read_migrations

    # yoyo picks its psycopg2 backend from libpq's `postgresql://` scheme.
    backend = get_backend(libpq_url(url))
    migrations = read_migrations(str(migrations_dir))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


GRANTS_FILE = ROOT / "sql" / "grants.sql"
READER_STATEMENT_TIMEOUT = "30s"  # a runaway dashboard query must not hold the server


@dataclass(frozen=True)
class RolePlan:
    """The roles and databases `provision` makes sure of (names and passwords)."""

    app_db: str
    airflow_db: str
    roles: dict[str, tuple[str, str]]  # component -> (role name, password); see DB_ROLES

    def name(self, component: str) -> str:
        return self.roles[component][0]

    @classmethod
    def from_settings(cls, settings: Settings) -> RolePlan:
        """The plan of `settings`; raises SecretError when a role's password is not set."""
        return cls(
            app_db=settings.app_db_name,
            airflow_db=settings.airflow_db_name,
            roles={c: (settings.db_role(c), settings.db_password(c)) for c in DB_ROLES},
        )


def provision(admin_dsn: str, plan: RolePlan) -> list[str]:
    """As a superuser: one login role per component (password set to the plan's), the two
    databases owned by their roles, CONNECT only where needed. Idempotent; returns what changed.

    A server set up before roles existed (everything owned by the superuser) is upgraded: the
    databases and every table, sequence and view in their `public` schema change owner.
    """
    import psycopg2
    from psycopg2 import sql

    done: list[str] = []
    conn = psycopg2.connect(admin_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name, password in plan.roles.values():
                cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
                verb = "ALTER" if cur.fetchone() else "CREATE"
                if verb == "CREATE":
                    done.append(f"role {name} created")
                cur.execute(
                    sql.SQL(
                        "{} ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                        "NOBYPASSRLS PASSWORD {}"
                    ).format(sql.SQL(verb), sql.Identifier(name), sql.Literal(password))
                )
            reader = sql.Identifier(plan.name("reader"))
            cur.execute(
                sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(
                    reader, sql.Literal(READER_STATEMENT_TIMEOUT)
                )
            )
            cur.execute(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(reader)
            )
            for database, owner in ((plan.app_db, "owner"), (plan.airflow_db, "airflow")):
                db, role = sql.Identifier(database), sql.Identifier(plan.name(owner))
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
                if cur.fetchone():
                    cur.execute(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(db, role))
                else:
                    cur.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role))
                    done.append(f"database {database} created")
                cur.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(db))
            cur.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(plan.app_db),
                    sql.SQL(", ").join(
                        sql.Identifier(plan.name(c)) for c in ("service", "pipelines", "reader")
                    ),
                )
            )
    finally:
        conn.close()
    for database, owner in ((plan.app_db, "owner"), (plan.airflow_db, "airflow")):
        moved = _hand_over(admin_dsn, database, plan.name(owner))
        if moved:
            done.append(f"{moved} objects of {database} handed to {plan.name(owner)}")
    return done


def _hand_over(admin_dsn: str, database: str, owner: str) -> int:
    """Make `owner` the owner of every relation and type in `database`'s public schema."""
    import psycopg2
    from psycopg2 import sql

    conn = psycopg2.connect(_with_dbname(admin_dsn, database))
    conn.autocommit = True
    count = 0
    try:
        with conn.cursor() as cur:
            # Tables first: their serial sequences follow them (and refuse to move alone).
            for kinds, keyword in ((("r", "p"), "TABLE"), (("v",), "VIEW"),
                                   (("m",), "MATERIALIZED VIEW"), (("S",), "SEQUENCE")):  # fmt: skip
                cur.execute(
                    """SELECT c.relname FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                       WHERE n.nspname = 'public' AND c.relkind = ANY(%s)
                         AND pg_get_userbyid(c.relowner) <> %s""",
                    (list(kinds), owner),
                )
                for (name,) in cur.fetchall():
                    cur.execute(
                        sql.SQL("ALTER {} public.{} OWNER TO {}").format(
                            sql.SQL(keyword), sql.Identifier(name), sql.Identifier(owner)
                        )
                    )
                    count += 1
            cur.execute(
                """SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = 'public' AND t.typtype IN ('e', 'd', 'c')
                     AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.reltype = t.oid)
                     AND pg_get_userbyid(t.typowner) <> %s""",
                (owner,),
            )
            for (name,) in cur.fetchall():
                cur.execute(
                    sql.SQL("ALTER TYPE public.{} OWNER TO {}").format(
                        sql.Identifier(name), sql.Identifier(owner)
                    )
                )
                count += 1
    finally:
        conn.close()
    return count


def _with_dbname(dsn: str, database: str) -> str:
    from psycopg2.extensions import make_dsn

    return make_dsn(dsn, dbname=database)


def apply_grants(owner_url: str, *, service: str, pipelines: str, reader: str) -> None:
    """Apply sql/grants.sql as the owner of the tables (one transaction)."""
    import psycopg2
    from psycopg2 import sql

    text = GRANTS_FILE.read_text(encoding="utf-8")
    statement = sql.SQL(text).format(
        service=sql.Identifier(service),
        pipelines=sql.Identifier(pipelines),
        reader=sql.Identifier(reader),
    )
    conn = psycopg2.connect(psycopg2_dsn(owner_url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()
