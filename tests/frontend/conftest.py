"""The real model service (a uvicorn process of service.main) on a database of the UI tests' own.

The UI tests count predictions, so they get their own migrated database on the session's
embedded server (other tests write predictions too); each test starts from an empty table.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pandas as pd
import psycopg2
import pytest

from frontend.api_client import ModelInfo, Prediction, parse_model_info
from mlsys.api_auth import Role
from mlsys.db import migrate, psycopg2_dsn
from mlsys.features import get_feature_spec
from ops import pg
from tests.conftest import auth_headers, fresh_database

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
MB = 1024 * 1024


@pytest.fixture(scope="session")
def ui_database_url(pg_server: pg.EmbeddedServer) -> str:
    url = fresh_database(pg_server, "mlsys_frontend_test")
    migrate(url)
    return url


@pytest.fixture(scope="session")
def api_url(
    ui_database_url: str, trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Base URL of a running service, started as `make up` starts it, on a free port."""
    from service.launch import spawn, stop, wait_until_serving

    port = pg.free_port()
    base = tmp_path_factory.mktemp("api")
    env = {
        "DATABASE_URL": ui_database_url,
        "MODEL_DIR": str(trained_model_dir),
        "DATA_DIR": str(base / "data"),
        "API_PORT": str(port),
        "API_WORKERS": "1",  # 2-core CI machine; one worker serves these tests
    }
    proc = spawn(env, base / "api.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, url)
        yield url
    finally:
        stop(proc)


@pytest.fixture
def ui_db(ui_database_url: str) -> Iterator[psycopg2.extensions.connection]:
    """A connection to the UI tests' database, whose predictions table starts empty."""
    conn = psycopg2.connect(psycopg2_dsn(ui_database_url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("TRUNCATE predictions")
    yield conn
    conn.close()


def count_predictions(conn, source: str | None = None) -> int:
    with conn.cursor() as cur:
        if source is None:
            cur.execute("SELECT count(*) FROM predictions")
        else:
            cur.execute("SELECT count(*) FROM predictions WHERE source = %s", (source,))
        return cur.fetchone()[0]


def post_scheduled(api_url: str, source_file: str, records: list[dict]) -> None:
    """Scheduled predictions, as the prediction DAG sends them (the UI never does)."""
    answer = httpx.post(
        f"{api_url}/predict",
        json={"source": "scheduled", "source_file": source_file,
              "source_rows": list(range(len(records))), "records": records},
        headers=auth_headers(Role.SCHEDULER),  # the DAG's credential: the UI's may not
        timeout=30,
    )  # fmt: skip
    answer.raise_for_status()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    """test-artifacts/<test name>/ (git-ignored), emptied first: screenshots of this test."""
    folder = ARTIFACTS / request.node.name.replace("[", "-").rstrip("]")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Mark a failed test, so that its fixtures can save what the screen showed."""
    report = yield
    if report.when == "call" and report.failed:
        item.failed = True  # type: ignore[attr-defined]
    return report


@pytest.fixture(scope="module")
def info() -> ModelInfo:
    """The model's description as the UI reads it from /model-info, from the curated schema."""
    spec = get_feature_spec()
    return parse_model_info(
        {"version": "test", "classes": {"positive": "1", "negative": "0"}, **spec.to_dict()}
    )


@pytest.fixture(scope="module")
def applications(settings) -> pd.DataFrame:
    """The real data set without its target: what an analyst would upload."""
    return pd.read_csv(settings.dataset_path).drop(columns=[settings.target_column])


def csv_of(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def prediction(
    label: str,
    probability: float,
    created_at: datetime | None = None,
    unseen: tuple[str, ...] = (),
    **features,
):
    return Prediction(
        id=1,
        prediction=label,
        probability=probability,
        source="webapp",
        created_at=created_at,
        model_version="v",
        features=features,
        unseen_features=unseen,
    )


# A file of 30 applications of which 11 rows are invalid (issue 14): row number (from 1, as the
# UI counts them) -> the cells made invalid there, as text. Row 17 has two invalid values.
INVALID_CELLS: dict[int, dict[str, str]] = {
    2: {"age": "forty"},  # not a number
    4: {"age": "5"},  # below the minimum
    5: {"job": "7"},  # above the maximum
    9: {"purpose": "yacht"},  # not in the domain
    12: {"sex": ""},  # missing
    15: {"duration": "12.5"},  # not an integer
    17: {"housing": "castle", "credit_amount": "0"},
    20: {"credit_amount": "lots"},
    23: {"checking_account": ""},
    27: {"age": "101"},
    30: {"saving_accounts": "very rich"},
}


def with_invalid_rows(applications: pd.DataFrame, rows: int = 30) -> pd.DataFrame:
    """The first `rows` applications as text, with INVALID_CELLS written into them."""
    frame = applications.iloc[:rows].astype(str).reset_index(drop=True)
    for row, cells in INVALID_CELLS.items():
        for column, value in cells.items():
            frame.loc[row - 1, column] = value
    return frame
