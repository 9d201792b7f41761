"""A curator approves a schema proposal in Airflow, through Airflow's own mechanism: the review
DAG runs with `dag.test()`, its HITLOperator step parks in `awaiting_input` (dag.test() never
answers it), and the answer goes through the real api-server's HITL REST API (what the
Required Actions page calls), sharing the run's metadata database; the run then resumes and
`record_decision` writes the schema."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlsys import schema_versions as sv
from mlsys.config import ROOT, load_settings
from mlsys.credentials import secret_path
from mlsys.features import parse_schema
from pipelines.airflow_env import ADMIN_SECRET, airflow_environment, ensure_admin_password
from pipelines.proposals import proposals as core
from tests.conftest import AIRFLOW_PYTHON
from tests.pipelines.conftest import finish_dag
from tests.pipelines.test_airflow_auth import _api_server
from tests.pipelines.test_schema_proposals import (  # noqa: F401 (fixtures)
    SETTINGS,
    chunk,
    conn,
    drafter,
    dsn,
    ingest,
    rows,
    schema_path,
    with_category,
)

pytestmark = pytest.mark.timeout(900)
DAG = "review_schema_proposal"


@pytest.fixture(scope="module")
def var_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("hitl-var")


@pytest.fixture(scope="module")
def airflow_with_admin(airflow_env, var_dir) -> dict[str, str]:
    """The session's Airflow environment with the admin password `make up` would write."""
    settings = load_settings({"VAR_DIR": str(var_dir)})
    ensure_admin_password(settings)
    env = airflow_env | airflow_environment(
        settings, home=Path(airflow_env["AIRFLOW_HOME"]),
        metadata_url=airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
    )  # fmt: skip
    env.pop("AIRFLOW_DEV_ALL_ADMINS", None)
    return env


@pytest.fixture(scope="module")
def api_server(airflow_with_admin, tmp_path_factory) -> Iterator[str]:
    yield from _api_server(airflow_with_admin, tmp_path_factory.mktemp("hitl-api") / "api.log")


def _awaiting(api: httpx.Client, proc: subprocess.Popen, log: Path) -> dict:
    """The review run's HITL detail, once its step waits for an answer."""
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
        answer = api.get(f"/api/v2/dags/{DAG}/dagRuns/~/hitlDetails")
        assert answer.status_code == 200, answer.text
        waiting = [d for d in answer.json()["hitl_details"] if not d.get("response_received")]
        if waiting:
            return waiting[0]
        assert proc.poll() is None, log.read_text(errors="replace")[-5000:]
        time.sleep(2)
    pytest.fail(f"no HITL step waited:\n{log.read_text(errors='replace')[-5000:]}")


def test_a_curator_approves_a_proposal_in_airflows_required_actions(
    api_server, airflow_with_admin, var_dir, ingest, rows, conn, dsn, schema_path, drafter,  # noqa: F811
    data_dir, tfdv_worker, tmp_path,
):  # fmt: skip
    for i in range(5):
        ingest(with_category(chunk(rows, i), "crypto", 5))
    [made] = core.propose(conn, schema_path, SETTINGS, drafter)
    env = airflow_with_admin | {
        "DATABASE_URL": dsn, "SCHEMA_PATH": str(schema_path), "DATA_DIR": str(data_dir),
        "TFDV_WORKER_URL": tfdv_worker,
    }  # fmt: skip
    log = tmp_path / "review.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(AIRFLOW_PYTHON), "-m", "pipelines.run_dag", DAG,
             json.dumps({"proposal_id": made.id})],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    password = secret_path(var_dir, ADMIN_SECRET).read_text().strip()
    token = httpx.post(
        f"{api_server}/auth/token", json={"username": "admin", "password": password}, timeout=30
    ).json()["access_token"]
    try:
        with httpx.Client(
            base_url=api_server, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as api:
            detail = _awaiting(api, proc, log)
            assert detail["subject"] == f"Schema proposal #{made.id}: {made.title}"
            assert '+  value: "crypto"' in detail["body"]
            assert detail["options"] == ["Approve", "Reject"]
            ti = detail["task_instance"]
            answer = api.patch(
                f"/api/v2/dags/{DAG}/dagRuns/{ti['dag_run_id']}/taskInstances/decide/-1/hitlDetails",
                json={"chosen_options": ["Approve"], "params_input": {"reason": "new product"}},
            )
            assert answer.status_code == 200, answer.text
        run = finish_dag(proc, log, timeout_s=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert run.state == "success", run.log[-5000:]
    assert run.tasks == {"describe": "success", "decide": "success",
                         "record_decision": "success"}  # fmt: skip
    decided = core.get_proposal(conn, made.id)
    assert (decided.status, decided.decided_by, decided.decided_via) == (
        "approved", "admin", "airflow")  # fmt: skip
    assert decided.decided_reason == "new product"
    assert "crypto" in parse_schema(schema_path.read_text())["purpose"].values
    assert sv.read_snapshot(schema_path).version.version == decided.schema_version
