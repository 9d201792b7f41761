"""/health, /model-info, /reports, and the service riding out a database that goes away."""

from __future__ import annotations

import time

import httpx

from mlsys import model as mlmodel
from mlsys.api_auth import Role
from mlsys.db import migrate
from ops import pg
from service import launch
from service.openapi_docs import example_record
from tests.conftest import auth_headers
from tests.service.conftest import Api, service_env, start_api


def test_health_says_ok_with_the_model_version(api: Api, trained_model_dir):
    answer = api.client.get("/health")
    assert answer.status_code == 200
    version = mlmodel.load(trained_model_dir).version
    assert answer.json() == {"status": "ok", "database": "ok", "model": version}


def test_model_info_serves_the_feature_spec_and_metrics(api: Api, spec, trained_model_dir):
    info = api.client.get("/model-info").json()
    meta = mlmodel.load(trained_model_dir).metadata
    assert info["features"] == spec.to_dict()["features"]
    assert info["version"] == meta["version"]
    assert info["metrics"] == meta["metrics"]
    assert info["classes"] == meta["classes"]
    assert info["target"] == spec.target


def test_reports_are_served_and_nothing_else(api: Api):
    reports = api.data_dir / "reports"
    (reports / "file-0001.html").write_text("<html><body>report</body></html>")
    (reports / "notes.txt").write_text("not a report")
    (api.data_dir / "secret.html").write_text("outside the reports folder")
    ok = api.client.get("/reports/file-0001.html")
    assert ok.status_code == 200
    assert ok.headers["content-type"].startswith("text/html")
    assert "report" in ok.text
    for name in [
        "notes.txt",
        "missing.html",
        "..%2Fsecret.html",
        "%2E%2E%2Fsecret.html",
        ".hidden.html",
    ]:
        answer = api.client.get(f"/reports/{name}")
        assert answer.status_code == 404, name
        assert "outside" not in answer.text


def _wait_for(client: httpx.Client, status: int, timeout_s: float = 20.0) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        answer = client.get("/health")
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_database_down_is_a_503_and_the_service_recovers_by_itself(
    tmp_path, trained_model_dir, spec
):
    server = pg.EmbeddedServer(data_dir=tmp_path / "pg", port=pg.free_port())
    pg.start(server)
    try:
        pg.wait_until_ready(server.dsn())
        pg.ensure_database(server.dsn(), "mlsys")
        url = server.url("mlsys")
        migrate(url)
        env = service_env(
            url, trained_model_dir, tmp_path / "data", pg.free_port(), API_DB_CONNECT_TIMEOUT_S="1"
        )
        proc, base = start_api(tmp_path, env)
        try:
            with httpx.Client(
                base_url=base, timeout=30, headers=auth_headers(Role.WEBAPP)
            ) as client:
                payload = {"source": "webapp", "records": [example_record(spec)]}
                assert (
                    client.post("/predict", json=payload).status_code == 200
                )  # connections opened
                assert _wait_for(client, 200).status_code == 200

                pg.stop(server)
                down = _wait_for(client, 503)
                assert down.status_code == 503
                assert down.json()["status"] == "unavailable"
                assert down.json()["database"].startswith("unavailable: ")
                assert down.json()["model"].startswith("lgbm-")
                refused = client.post("/predict", json=payload)
                assert refused.status_code == 503
                assert "nothing was stored" in refused.json()["detail"]
                assert client.get("/past-predictions").status_code == 503
                assert client.get("/model-info").status_code == 200  # needs no database

                pg.start(server)
                assert _wait_for(client, 200).status_code == 200
                again = client.post("/predict", json=payload)
                assert again.status_code == 200, again.text
                items = client.get("/past-predictions").json()["items"]
                assert len(items) == 2  # the refused prediction was not stored
        finally:
            launch.stop(proc)
    finally:
        pg.stop(server)


def test_no_model_is_a_503_until_one_is_trained(tmp_path, api: Api, trained_model_dir, spec):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    env = service_env(
        api.database_url, model_dir, tmp_path / "data", pg.free_port(), API_MODEL_RETRY_S="0"
    )
    proc, base = start_api(tmp_path, env)
    try:
        with httpx.Client(base_url=base, timeout=30, headers=auth_headers(Role.WEBAPP)) as client:
            health = client.get("/health")
            assert health.status_code == 503
            assert "make train" in health.json()["model"]
            payload = {"source": "webapp", "records": [example_record(spec)]}
            assert client.post("/predict", json=payload).status_code == 503
            for name in (mlmodel.MODEL_FILE, mlmodel.METADATA_FILE):
                (model_dir / name).write_bytes((trained_model_dir / name).read_bytes())
            assert client.post("/predict", json=payload).status_code == 200
            assert client.get("/health").status_code == 200
    finally:
        launch.stop(proc)
