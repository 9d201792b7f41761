"""A running API picks up a newly written schema at its next request, and says which version
judged each request (issue 16). A real uvicorn process on a copy of the schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from mlsys.api_auth import Role
from mlsys.config import ROOT
from mlsys.db import migrate
from mlsys.schema_versions import read_snapshot, write_schema
from ops import pg
from service import launch
from service.openapi_docs import example_record
from tests.conftest import auth_headers, fresh_database
from tests.service.conftest import service_env, start_api

pytestmark = pytest.mark.timeout(300)


def test_a_new_schema_applies_from_the_next_request_without_a_restart(
    pg_server: pg.EmbeddedServer, trained_model_dir: Path, tmp_path: Path, spec
):
    schema_path = tmp_path / "schema.pbtxt"
    shutil.copy(ROOT / "schema" / "schema.pbtxt", schema_path)
    first = read_snapshot(schema_path)
    url = fresh_database(pg_server, "schema_reload")
    migrate(url)
    (tmp_path / "data" / "reports").mkdir(parents=True)
    env = service_env(url, trained_model_dir, tmp_path / "data", pg.free_port(),
                      SCHEMA_PATH=str(schema_path))  # fmt: skip
    proc, base = start_api(tmp_path, env)
    try:
        with httpx.Client(base_url=base, timeout=30, headers=auth_headers(Role.WEBAPP)) as api:
            record = example_record(spec) | {"age": 70}
            before = api.post("/predict", json={"source": "webapp", "records": [record]})
            assert before.status_code == 200, before.text
            assert before.json()["schema_version"] == first.version.short
            info = api.get("/model-info").json()
            assert info["schema"]["sha256"] == first.version.sha256
            assert next(f for f in info["features"] if f["name"] == "age")["maximum"] == 100

            # A curator narrows the range (the model's features and codes are unchanged).
            narrowed = first.text.replace("min: 18\n    max: 100", "min: 18\n    max: 65", 1)
            assert narrowed != first.text
            second = write_schema(schema_path, narrowed, base=first.version,
                                  change_comment="applicants up to 65 only", author="test")  # fmt: skip
            assert second.version == str(int(first.version.version) + 1)

            after = api.post("/predict", json={"source": "webapp", "records": [record]})
            assert after.status_code == 422, after.text
            body = after.json()
            assert body["schema_version"] == second.short
            (error,) = body["errors"]
            assert (error["field"], error["rule"]) == ("age", "out_of_range")
            assert "above the maximum 65" in error["message"]
            info = api.get("/model-info").json()
            assert info["schema"] == second.to_dict() | {"short": second.short}
            assert next(f for f in info["features"] if f["name"] == "age")["maximum"] == 65
            # The OpenAPI document follows too (the request body's ranges).
            document = api.get("/openapi.json").json()
            body_schema = document["paths"]["/predict"]["post"]["requestBody"]["content"]
            ages = [
                variant["properties"]["records"]["items"]["properties"]["age"]["maximum"]
                for variant in body_schema["application/json"]["schema"]["oneOf"]
            ]
            assert ages and set(ages) == {65}

            # A schema that does not parse keeps the last good version serving.
            schema_path.write_text("feature { this is not a schema", encoding="utf-8")
            kept = api.post("/predict", json={"source": "webapp", "records": [record]})
            assert kept.status_code == 422 and kept.json()["schema_version"] == second.short
    finally:
        launch.stop(proc)
    shutil.rmtree(tmp_path / "data", ignore_errors=True)
