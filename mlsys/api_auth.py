"""The model API's credentials: one bearer token per role, and who may do what (docs/api.md).

One home for the roles and the names of their secrets, shared by the service (which checks
the tokens, service/auth.py), the UI and the prediction DAG (which send theirs) and `make up`
(which generates them). Standard library only: imported in the app and airflow environments.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from mlsys import report_links
from mlsys.credentials import ensure_secret, resolve_secret


class Role(StrEnum):
    WEBAPP = "webapp"  # the Streamlit UI
    SCHEDULER = "scheduler"  # the prediction DAG
    READER = "reader"  # read-only: dashboards, scripts, a person looking


# The secret of each role, by resolve_secret's name (env NAME, NAME_FILE, VAR_DIR/secrets/name).
TOKEN_NAMES: dict[Role, str] = {
    Role.WEBAPP: "API_TOKEN_WEBAPP",
    Role.SCHEDULER: "API_TOKEN_SCHEDULER",
    Role.READER: "API_TOKEN_READER",
}
# The `source` each role may store through POST /predict: the UI cannot store scheduled rows
# (they would block the DAG's later call for that file), the DAG cannot pose as the UI.
PREDICT_SOURCES: dict[Role, frozenset[str]] = {
    Role.WEBAPP: frozenset({"webapp"}),
    Role.SCHEDULER: frozenset({"scheduled"}),
    Role.READER: frozenset(),
}
# Routes by who may call them (POST /predict is narrowed further by PREDICT_SOURCES).
PREDICT = (Role.WEBAPP, Role.SCHEDULER)
PAST_PREDICTIONS = (Role.WEBAPP, Role.READER)
MODEL_INFO = (Role.WEBAPP, Role.SCHEDULER, Role.READER)
REPORTS = (Role.WEBAPP, Role.SCHEDULER, Role.READER)  # or a signed link, see report_links
SCHEMA_PROPOSALS = (Role.WEBAPP, Role.READER)  # read only: decisions go through make or Airflow


def ensure_local_credentials(var_dir: Path) -> str:
    """Generate every API secret under VAR_DIR/secrets (0600) unless it exists; a status line.

    Called by `make up` before the services start. A secret given by the environment (NAME or
    NAME_FILE) is left to the environment; the generated file is then simply not used.
    """
    names = [*TOKEN_NAMES.values(), report_links.KEY_NAME]
    for name in names:
        ensure_secret(var_dir, name)
    return f"API credentials: {var_dir / 'secrets'} ({', '.join(n.lower() for n in names)})"


def bearer_headers(role: Role, var_dir: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The Authorization header of `role`, its token read now (so a rotated token is used at
    once). Raises `SecretError` naming the variable when the token is nowhere to be found."""
    token = resolve_secret(TOKEN_NAMES[role], var_dir, env)
    return {"Authorization": f"Bearer {token}"}
