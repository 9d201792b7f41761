"""The `predict_new_data` DAG end to end with dag.test(): real Airflow, a real uvicorn process
of the service, the real database (ledger and predictions), files in a temporary DATA_DIR.

Every file name is unique to its test: the ledger and the predictions live in one database for
the module, as they do in production.
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import psycopg2
import pytest

from mlsys.api_auth import Role
from mlsys.db import migrate, psycopg2_dsn
from mlsys.features import Kind, get_feature_spec
from ops import pg
from pipelines.prediction import ledger
from service import launch
from tests.conftest import auth_headers, fresh_database
from tests.pipelines.conftest import finish_dag, run_dag, start_dag
from tests.service.conftest import service_env, start_api

pytestmark = pytest.mark.timeout(900)
DAG = "predict_new_data"


@pytest.fixture(scope="module")
def db_url(pg_server) -> str:
    url = fresh_database(pg_server, "predict_dag")
    migrate(url)
    return url


@pytest.fixture(scope="module")
def api_url(db_url, trained_model_dir, tmp_path_factory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("predict-dag-api")
    proc, url = start_api(tmp, service_env(db_url, trained_model_dir, tmp, pg.free_port()))
    yield url
    launch.stop(proc)


@pytest.fixture(scope="module")
def clean(settings) -> pd.DataFrame:
    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False)
    return frame.drop(columns=[settings.target_column])


def dag_env(airflow_env, data_dir: Path, db_url: str, api_url: str, batch: int) -> dict[str, str]:
    return airflow_env | {
        "DATA_DIR": str(data_dir), "DATABASE_URL": db_url, "API_URL": api_url,
        "PREDICT_BATCH_SIZE": str(batch),
        # No floor on a run's length here (test_prediction_units checks it): each run of these
        # tests would otherwise wait out 10 s.
        "PREDICT_MIN_RUN_SECONDS": "0",
    }  # fmt: skip


def query(db_url: str, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg2.connect(psycopg2_dsn(db_url)) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall()


def stored(db_url: str, file_name: str) -> list[tuple[int, dict]]:
    return query(
        db_url,
        "SELECT source_row, features FROM predictions WHERE source_file = %s ORDER BY source_row",
        (file_name,),
    )


def ledger_of(db_url: str, file_name: str) -> tuple | None:
    rows = query(
        db_url,
        "SELECT status, rows, reason FROM predicted_files WHERE file_name = %s",
        (file_name,),
    )
    return rows[0] if rows else None


def snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """Every entry of the folder with its content hash and modification time."""
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(folder.iterdir())
    }


def typed(frame: pd.DataFrame) -> list[dict]:
    """What the service must have stored for these text rows: numbers for numeric features."""
    spec = get_feature_spec()
    return [
        {f.name: (row[f.name] if f.kind is Kind.CATEGORICAL else int(row[f.name]))
         for f in spec.features}
        for _, row in frame.iterrows()
    ]  # fmt: skip


def write(frame: pd.DataFrame, path: Path, mtime: int | None = None) -> None:
    frame.to_csv(path, index=False)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_no_new_file_skips_the_whole_run(airflow_env, data_dir, db_url, api_url, clean, tmp_path):
    good = data_dir / "good_data"
    # A file the ledger already holds, and one the ingestion is still writing.
    write(clean.iloc[:5], good / "nothing-new-done.csv")
    ledger.record(psycopg2_dsn(db_url), file_name="nothing-new-done.csv", status="done", rows=5)
    (good / ".nothing-new-half.csv.tmp").write_text(",".join(clean.columns) + "\nfem")
    before = snapshot(good)

    run = run_dag(DAG, dag_env(airflow_env, data_dir, db_url, api_url, 50), tmp_path / "d.log")
    assert run.state == "success", run.log[-5000:]
    assert run.tasks == {"check_for_new_data": "skipped", "make_predictions": "skipped"}
    assert "good_data has no file that is not yet in the ledger" in run.log
    assert stored(db_url, "nothing-new-done.csv") == []
    assert snapshot(good) == before


def test_two_new_files_are_predicted_once_and_the_next_run_skips(
    airflow_env, data_dir, db_url, api_url, clean, tmp_path
):
    good = data_dir / "good_data"
    files = {"two-new-a.csv": clean.iloc[0:120], "two-new-b.csv": clean.iloc[500:575]}
    for i, (name, frame) in enumerate(files.items()):
        write(frame, good / name, mtime=1_700_000_000 + i)
    before = snapshot(good)
    env = dag_env(airflow_env, data_dir, db_url, api_url, 50)  # 3 + 2 batches

    started = time.monotonic()
    run = run_dag(DAG, env, tmp_path / "first.log")
    first_s = time.monotonic() - started
    assert run.state == "success", run.log[-5000:]
    assert set(run.tasks.values()) == {"success"}, run.tasks
    for name, frame in files.items():
        rows = stored(db_url, name)
        assert [r for r, _ in rows] == list(range(len(frame)))  # every row, once, in order
        assert [f for _, f in rows] == typed(frame)  # row n holds the file's row n
        assert ledger_of(db_url, name) == ("done", len(frame), None)
    # Visible where users look: /past-predictions, source scheduled.
    with httpx.Client(base_url=api_url, timeout=30, headers=auth_headers(Role.READER)) as client:
        page = client.get("/past-predictions", params={"source": "scheduled", "limit": 1000})
    seen = {(i["source_file"], i["source_row"]) for i in page.json()["items"]}
    assert {(n, r) for n, f in files.items() for r in range(len(f))} <= seen

    started = time.monotonic()
    again = run_dag(DAG, env, tmp_path / "second.log")
    second_s = time.monotonic() - started
    assert again.state == "success", again.log[-5000:]
    assert set(again.tasks.values()) == {"skipped"}, again.tasks
    assert [len(stored(db_url, n)) for n in files] == [120, 75]
    assert snapshot(good) == before  # never moved, renamed, rewritten or deleted
    print(f"dag.test(): two files (195 rows) {first_s:.1f} s, nothing new {second_s:.1f} s")


def test_a_rejected_file_is_recorded_as_failed_and_the_others_go_on(
    airflow_env, data_dir, db_url, api_url, clean, tmp_path
):
    good = data_dir / "good_data"
    bad = clean.iloc[200:240].reset_index(drop=True).copy()
    bad.loc[3, "housing"] = "castle"  # e.g. a domain curated after the file was ingested
    write(bad, good / "rejected-first.csv", mtime=1_700_000_000)  # the oldest: sent first
    write(clean.iloc[300:330], good / "rejected-then-fine.csv", mtime=1_700_000_001)
    env = dag_env(airflow_env, data_dir, db_url, api_url, 50)

    run = run_dag(DAG, env, tmp_path / "first.log")
    assert run.state == "success", run.log[-5000:]
    assert set(run.tasks.values()) == {"success"}, run.tasks
    status, rows, reason = ledger_of(db_url, "rejected-first.csv")
    assert (status, rows) == ("failed", 0)
    assert reason.startswith("the API answered 422 for rows 0-39 of 40 (no row was stored")
    assert "row 3 housing 'castle':" in reason
    assert stored(db_url, "rejected-first.csv") == []
    assert ledger_of(db_url, "rejected-then-fine.csv") == ("done", 30, None)
    assert len(stored(db_url, "rejected-then-fine.csv")) == 30

    # Recorded, so neither retried forever nor forgotten: the next run has nothing to do.
    again = run_dag(DAG, env, tmp_path / "second.log")
    assert set(again.tasks.values()) == {"skipped"}, again.tasks
    assert ledger_of(db_url, "rejected-first.csv")[0] == "failed"


def _wait(condition, what: str, timeout_s: float = 300, every_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(every_s)
    return value


def test_the_api_stopped_mid_file_and_restarted_loses_and_duplicates_no_row(
    airflow_env, data_dir, db_url, trained_model_dir, clean, tmp_path
):
    """The API dies after some batches of a 1,200-row file; the task fails, Airflow retries it
    after the API is back, and the file ends with each of its 1,200 rows stored exactly once.

    The DAG's process is frozen (SIGSTOP) while the API is stopped, so that the stop falls in
    the middle of the file however fast the batches go, then thawed to meet the dead API;
    frozen again while the API restarts, so that the retry (10 s later) meets it up.
    """
    name = "restart-1200.csv"
    frame = pd.concat([clean, clean.iloc[:200]], ignore_index=True)  # 1,200 rows
    write(frame, data_dir / "good_data" / name)
    api_env = service_env(db_url, trained_model_dir, tmp_path, pg.free_port())
    api_proc, api_url = start_api(tmp_path, api_env)
    env = dag_env(airflow_env, data_dir, db_url, api_url, 20)  # 60 batches
    meta_dsn = psycopg2_dsn(airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    log = tmp_path / "dag.log"
    dag_proc = start_dag(DAG, env, log)

    def count() -> int:
        return query(db_url, "SELECT count(*) FROM predictions WHERE source_file = %s", (name,))[0][
            0
        ]

    def waiting_for_retry() -> bool:
        rows = query(
            meta_dsn,
            """SELECT count(*) FROM task_instance
               WHERE dag_id = %s AND task_id = 'make_predictions' AND state = 'up_for_retry'""",
            (DAG,),
        )
        assert dag_proc.poll() is None, log.read_text()[-5000:]
        return rows[0][0] > 0

    try:
        _wait(lambda: count() >= 100 or dag_proc.poll() is not None, "the first batches")
        os.kill(dag_proc.pid, signal.SIGSTOP)
        launch.stop(api_proc)
        at_stop = count()
        os.kill(dag_proc.pid, signal.SIGCONT)
        assert 100 <= at_stop < 1200, f"the stop did not fall mid-file ({at_stop} rows)"

        _wait(waiting_for_retry, "the failed attempt", timeout_s=120, every_s=0.2)
        assert ledger_of(db_url, name) is None  # nothing recorded for a half-done file
        assert count() == at_stop
        # Frozen again while the API restarts on the same port: on a busy machine the start
        # can outlast the 10 s retry delay, and this test is about the retry meeting the API.
        os.kill(dag_proc.pid, signal.SIGSTOP)
        try:
            api_proc, _ = start_api(tmp_path, api_env)
        finally:
            os.kill(dag_proc.pid, signal.SIGCONT)
        run = finish_dag(dag_proc, log)
    finally:
        if dag_proc.poll() is None:
            os.kill(dag_proc.pid, signal.SIGCONT)
            dag_proc.kill()
        launch.stop(api_proc)

    assert run.state == "success", run.log[-5000:]
    assert run.tasks == {"check_for_new_data": "success", "make_predictions": "success"}
    assert "ApiUnavailable" in run.log  # the first attempt met the stopped API
    # The retry resent the file from row 0; the API answered the stored rows as stored.
    assert f"{name} done: 1200 rows ({1200 - at_stop} stored now, {at_stop} already stored)" in (
        run.log
    )
    rows = stored(db_url, name)
    assert [r for r, _ in rows] == list(range(1200))  # none missing, none twice
    assert [f for _, f in rows] == typed(frame)
    assert ledger_of(db_url, name) == ("done", 1200, None)
    tries = query(
        meta_dsn,
        """SELECT try_number FROM task_instance WHERE dag_id = %s AND task_id = 'make_predictions'
           ORDER BY start_date DESC LIMIT 1""",
        (DAG,),
    )
    assert tries[0][0] == 2
