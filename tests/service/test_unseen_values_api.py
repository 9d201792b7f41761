"""The model knows its schema: the versions on /model-info, the unseen-value flag per prediction.

A real model trained on a sample of the data without one category (`ABSENT`), the real service
serving it, and a schema approved while it runs that adds a category (listed first, so that
every other category's code in the schema moves); the service picks it up without a restart.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import psycopg2
import pytest

from mlsys import model
from mlsys.api_auth import Role
from mlsys.db import migrate, psycopg2_dsn
from mlsys.features import FeatureSpec
from mlsys.schema_versions import SchemaVersion, read_snapshot, write_schema
from ops import pg
from service import launch
from service.openapi_docs import example_record
from tests.conftest import auth_headers, fresh_database
from tests.service.conftest import service_env, start_api

ABSENT = "vacation/others"  # in the schema, absent from the training rows
APPROVED = "solar panels"  # approved after training


@dataclass
class Served:
    url: str
    database_url: str
    client: httpx.Client
    scheduler: httpx.Client
    metadata: dict
    trained: SchemaVersion
    serving: SchemaVersion
    training_spec: FeatureSpec
    model_dir: Path
    before: dict  # /model-info before the approval

    def stored(self, ids: list[int]) -> dict[int, list[str]]:
        with psycopg2.connect(psycopg2_dsn(self.database_url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT id, unseen_features FROM predictions WHERE id = ANY(%s)", (ids,))
            return dict(cur.fetchall())


@pytest.fixture(scope="module")
def served(pg_server: pg.EmbeddedServer, settings, tmp_path_factory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("unseen")
    schema = tmp / "schema.pbtxt"
    shutil.copy(settings.schema_path, schema)
    snapshot = read_snapshot(schema)
    spec = snapshot.feature_spec(settings.target_column)
    frame = pd.read_csv(settings.dataset_path)
    sample = frame[frame["purpose"] != ABSENT].sample(400, random_state=3)
    result = model.train(
        sample, spec, target=settings.target_column, positive_class=settings.positive_class,
        dataset="sample", schema_version=snapshot.version,
    )  # fmt: skip
    metadata = model.save(result, tmp / "models")
    url = fresh_database(pg_server, "unseen_values")
    migrate(url)
    (tmp / "data" / "reports").mkdir(parents=True)
    env = service_env(url, tmp / "models", tmp / "data", pg.free_port(), SCHEMA_PATH=str(schema))
    proc, base = start_api(tmp, env)
    try:
        with (
            httpx.Client(base_url=base, timeout=30, headers=auth_headers(Role.WEBAPP)) as client,
            httpx.Client(
                base_url=base, timeout=30, headers=auth_headers(Role.SCHEDULER)
            ) as scheduler,
        ):
            before = client.get("/model-info").json()
            head = 'string_domain {\n  name: "purpose"\n'
            assert head in snapshot.text
            serving = write_schema(
                schema,
                snapshot.text.replace(head, head + f'  value: "{APPROVED}"\n'),
                base=snapshot.version,
                change_comment=f"purpose gains {APPROVED!r} (test)",
            )
            yield Served(
                base, url, client, scheduler, metadata, snapshot.version, serving, spec,
                tmp / "models", before,
            )  # fmt: skip
    finally:
        launch.stop(proc)


def _cases(served: Served) -> list[tuple[dict, list[str]]]:
    """(record, the features the service must flag)."""
    seen = served.metadata["seen_in_training"]
    normal = example_record(served.training_spec) | {"purpose": seen["purpose"]["categories"][0]}
    for name, values in seen.items():  # the example holds values seen in training
        if "minimum" in values:
            normal[name] = int(values["minimum"])
    too_old = int(seen["age"]["maximum"]) + 1
    assert too_old <= served.training_spec["age"].maximum  # valid for the schema
    return [
        (normal, []),
        (normal | {"purpose": ABSENT}, ["purpose"]),
        (normal | {"purpose": APPROVED}, ["purpose"]),
        (normal | {"age": too_old}, ["age"]),
        (normal | {"purpose": APPROVED, "age": too_old}, ["purpose", "age"]),
    ]


def test_model_info_shows_the_trained_and_the_serving_schema_versions(served: Served):
    trained = served.trained.to_dict() | {"short": served.trained.short}
    assert served.before["trained_schema"] == served.before["schema"] == trained
    info = served.client.get("/model-info")  # after the approval, without a restart
    assert info.status_code == 200, info.text
    body = info.json()
    assert body["version"] == served.metadata["version"]
    assert body["trained_schema"] == trained
    assert APPROVED in next(f for f in body["features"] if f["name"] == "purpose")["values"]
    assert body["schema"] == served.serving.to_dict() | {"short": served.serving.short}
    assert served.serving.version == str(int(served.trained.version) + 1)
    # The model's row in model_versions (written by the service when it loaded the model).
    with psycopg2.connect(psycopg2_dsn(served.database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT schema_version, schema_sha256 FROM model_versions WHERE version = %s",
            (body["version"],),
        )
        assert cur.fetchone() == (served.trained.version, served.trained.sha256)


def test_single_predictions_carry_the_unseen_flag_and_store_it(served: Served):
    for record, expected in _cases(served):
        answer = served.client.post("/predict", json={"source": "webapp", "records": [record]})
        assert answer.status_code == 200, answer.text
        prediction = answer.json()["predictions"][0]
        assert prediction["unseen_features"] == expected, record
        assert served.stored([prediction["id"]]) == {prediction["id"]: expected}
    past = served.client.get("/past-predictions", params={"limit": 5}).json()["items"]
    assert [p["unseen_features"] for p in reversed(past)] == [e for _, e in _cases(served)]


@pytest.mark.parametrize("copies", [2, 15])  # 10 rows: one INSERT each; 75: COPY, numpy check
def test_scheduled_batches_carry_the_unseen_flag_and_store_it(served: Served, copies: int):
    cases = _cases(served) * copies
    body = {
        "source": "scheduled",
        "source_file": f"unseen-{copies}.csv",
        "source_rows": list(range(len(cases))),
        "records": [r for r, _ in cases],
    }
    answer = served.scheduler.post("/predict", json=body)
    assert answer.status_code == 200, answer.text
    predictions = answer.json()["predictions"]
    assert [p["unseen_features"] for p in predictions] == [e for _, e in cases]
    stored = served.stored([p["id"] for p in predictions])
    assert [stored[p["id"]] for p in predictions] == [e for _, e in cases]
    # Sent again: the stored rows come back with their flags.
    again = served.scheduler.post("/predict", json=body).json()
    assert again["already_stored"] == len(cases)
    assert [p["unseen_features"] for p in again["predictions"]] == [e for _, e in cases]


def test_known_categories_predict_as_the_model_does_under_the_new_schema(served: Served):
    """The new category moved every purpose's code in the schema; the model keeps its own."""
    loaded = model.load(served.model_dir)
    records = [r for r, flags in _cases(served) if "purpose" not in flags]
    expected = loaded.predict_proba(model.encode_records(records, served.training_spec))
    answer = served.client.post("/predict", json={"source": "webapp", "records": records})
    assert answer.status_code == 200, answer.text
    got = [p["probability"] for p in answer.json()["predictions"]]
    assert got == pytest.approx(expected.tolist(), abs=1e-12)
