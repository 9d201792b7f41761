"""DAG integrity: the DagBag of pipelines/dags loads in the airflow environment without import
errors, and every DAG has the schedule, concurrency, retries, tags and task graph we rely on.

The DagBag is loaded in a subprocess of the `airflow` environment (the tests run in `app`),
which prints what it found as JSON; the assertions are made here.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest

from mlsys.config import ROOT
from tests.conftest import AIRFLOW_PYTHON

pytestmark = pytest.mark.timeout(300)

INSPECT = r"""
import json, sys
from airflow.dag_processing.dagbag import DagBag
from pipelines.airflow_env import DAGS_FOLDER

loaded_before = set(sys.modules)
bag = DagBag(dag_folder=str(DAGS_FOLDER))
dags = {}
for dag in bag.dags.values():
    dags[dag.dag_id] = {
        "timetable": type(dag.timetable).__name__,
        # AssetOrTimeSchedule: a cron timetable OR asset events.
        "time": {
            "timetable": type(getattr(dag.timetable, "timetable", None)).__name__,
            "cron": getattr(getattr(dag.timetable, "timetable", None), "expression", None),
        },
        "assets": [
            {
                "name": a.name,
                "watchers": [
                    {"name": w.name, "trigger": w.trigger.serialize()} for w in a.watchers
                ],
            }
            for a in ([dag.timetable.asset_condition]
                      if getattr(dag.timetable, "asset_condition", None) is not None else [])
        ],
        "cron": getattr(dag.timetable, "expression", None),
        "operators": {t.task_id: type(t).__name__ for t in dag.tasks},
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "tags": sorted(dag.tags),
        "has_doc": bool(dag.doc_md),
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "tasks": {
            t.task_id: {
                "downstream": sorted(t.downstream_task_ids),
                "retries": t.retries,
                "queue": t.queue,
                "outlets": [getattr(o, "name", repr(o)) for o in t.outlets],
                "retry_delay_s": t.retry_delay.total_seconds(),
                "on_failure": [
                    f"{c.__module__}.{c.__qualname__}"
                    for c in (t.on_failure_callback if isinstance(t.on_failure_callback, list)
                              else [t.on_failure_callback] if t.on_failure_callback else [])
                ],
            }
            for t in dag.tasks
        },
    }
heavy = ("pandas", "numpy", "requests", "psycopg2", "pyarrow", "tensorflow_data_validation")
print(json.dumps({
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dags": dags,
    # Modules that parsing the DAG files pulled in; the scheduler parses them constantly.
    "heavy_imports": sorted(m for m in heavy if m in sys.modules and m not in loaded_before),
    "parse_seconds": {s.file: s.duration.total_seconds() for s in bag.dagbag_stats},
}))
"""

EXPECTED = {
    "ingest_data": {
        "cron": "* * * * *",
        # ...and raw-data events from its watcher (a file landed), on top of the schedule.
        "assets": ["raw-data"],
        "outlets": {"split_and_save_data": ["good-data"]},
        # Claims are atomic (pipelines/ingestion/claim.py): two runs never take the same file;
        # the task slots (parallelism 10) bound the CPU, a few runs keep them busy in a backlog.
        "max_active_runs": 8,
        "tags": {"ingestion", "data-quality"},
        "graph": {
            "read_data": ["split_and_save_data", "validate_data"],
            "validate_data": ["save_statistics", "send_alerts", "split_and_save_data"],
            "save_statistics": [],
            "send_alerts": [],
            "split_and_save_data": [],
        },
    },
    "predict_new_data": {
        "cron": "*/2 * * * *",
        # ...and good-data events from ingest_data's split.
        "assets": ["good-data"],
        "outlets": {},
        # Overlapping runs would send the same files twice.
        "max_active_runs": 1,
        "tags": {"prediction"},
        "graph": {"check_for_new_data": ["make_predictions"], "make_predictions": []},
    },
}

# The curator's loop (docs/schema.md): hourly proposals, then one review run per proposal.
SCHEMA_DAGS = {
    "propose_schema_changes": {
        "timetable": "CronTriggerTimetable",
        "max_active_runs": 1,
        "graph": {"propose": ["start_reviews"], "start_reviews": []},
    },
    "review_schema_proposal": {
        "timetable": "NullTimetable",  # started by propose_schema_changes, conf proposal_id
        "max_active_runs": 64,
        "graph": {"describe": ["decide"], "decide": ["record_decision"], "record_decision": []},
    },
}
# A human-in-the-loop step is not retried: the question stays open until someone answers.
NOT_RETRIED = {("review_schema_proposal", "decide")}
ALL_DAGS = sorted(EXPECTED | SCHEMA_DAGS)


@pytest.fixture(scope="module")
def dagbag(airflow_env) -> dict:
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", INSPECT],
        cwd=ROOT, env=airflow_env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_no_import_errors_and_every_dag_is_known(dagbag):
    assert dagbag["import_errors"] == {}
    assert set(dagbag["dags"]) == set(EXPECTED) | set(SCHEMA_DAGS)


def test_parsing_the_dag_files_imports_nothing_heavy(dagbag):
    # pandas, TFDV, HTTP and database clients belong inside the task bodies.
    assert dagbag["heavy_imports"] == []
    assert all(seconds < 2 for seconds in dagbag["parse_seconds"].values()), dagbag["parse_seconds"]


@pytest.mark.parametrize("dag_id", sorted(EXPECTED))
def test_schedule_concurrency_tags_and_graph(dagbag, dag_id):
    dag, expected = dagbag["dags"][dag_id], EXPECTED[dag_id]
    # The cron contract OR asset events; the cron part is a trigger timetable (runs at the
    # tick, empty interval).
    assert dag["timetable"] == "AssetOrTimeSchedule"
    assert dag["time"] == {"timetable": "CronTriggerTimetable", "cron": expected["cron"]}
    assert [a["name"] for a in dag["assets"]] == expected["assets"]
    outlets = {t: v["outlets"] for t, v in dag["tasks"].items() if v["outlets"]}
    assert outlets == expected["outlets"]
    # Without catchup=False a paused or new DAG would start one run per missed tick.
    assert dag["catchup"] is False
    assert dag["max_active_runs"] == expected["max_active_runs"]
    assert expected["tags"] <= set(dag["tags"])
    assert dag["has_doc"]
    assert dag["start_date"] is not None
    assert {t: v["downstream"] for t, v in dag["tasks"].items()} == expected["graph"]


@pytest.mark.parametrize("dag_id", sorted(SCHEMA_DAGS))
def test_the_schema_dags_schedule_and_graph(dagbag, dag_id):
    dag, expected = dagbag["dags"][dag_id], SCHEMA_DAGS[dag_id]
    assert dag["timetable"] == expected["timetable"]
    if dag_id == "propose_schema_changes":
        assert dag["cron"] == "0 * * * *"
    else:  # Airflow's own human-in-the-loop operator: Required Actions page and REST API
        assert dag["operators"]["decide"] == "HITLOperator"
    assert dag["catchup"] is False and dag["has_doc"] and "schema" in dag["tags"]
    assert dag["max_active_runs"] == expected["max_active_runs"]
    assert {t: v["downstream"] for t, v in dag["tasks"].items()} == expected["graph"]


@pytest.mark.parametrize("dag_id", ALL_DAGS)
def test_every_task_retries_soon(dagbag, dag_id):
    for task_id, task in dagbag["dags"][dag_id]["tasks"].items():
        if (dag_id, task_id) in NOT_RETRIED:
            assert task["retries"] == 0, task_id
            continue
        assert task["retries"] >= 1, task_id
        # Well within the schedule: a retry must not outlast the next run's tick.
        delay = timedelta(seconds=task["retry_delay_s"])
        assert timedelta(seconds=1) <= delay <= timedelta(seconds=60), (task_id, delay)


@pytest.mark.parametrize("dag_id", ALL_DAGS)
def test_only_the_tasks_that_need_tfdv_or_the_schema_go_to_the_tfdv_queue(dagbag, dag_id):
    """With the CeleryExecutor, the tasks that ask TFDV (validate_data, propose) or write the
    schema the validations read (record_decision) run only on workers that have the tfdv
    environment (pipelines/executor.py); every other task on any worker."""
    queues = {t: v["queue"] for t, v in dagbag["dags"][dag_id]["tasks"].items()}
    tfdv_tasks = {"validate_data", "propose", "record_decision"}
    expected = {t: "tfdv" if t in tfdv_tasks else "default" for t in queues}
    assert queues == expected


@pytest.mark.parametrize("dag_id", ALL_DAGS)
def test_every_task_alerts_when_it_fails_after_its_retries(dagbag, dag_id):
    # A task-level callback runs in the failed task's own process (a DAG-level one would run
    # in the dag-processor): Teams hears that the pipeline is broken, not only that data is bad.
    for task_id, task in dagbag["dags"][dag_id]["tasks"].items():
        assert task["on_failure"] == ["pipelines.runtime.task_failed"], task_id


def test_raw_data_is_watched_by_our_trigger_with_the_settings(dagbag, airflow_env):
    # The triggerer imports the trigger by its class path: it must be ours and importable.
    (raw,) = dagbag["dags"]["ingest_data"]["assets"]
    (watcher,) = raw["watchers"]
    classpath, kwargs = watcher["trigger"]
    assert classpath == "pipelines.ingestion.trigger.RawDataTrigger"
    raw_dir = Path(kwargs["raw_dir"])
    assert raw_dir.name == "raw-data" and raw_dir.is_absolute()
    # The sightings are shared with read_data, in the folder of the claimed files.
    assert Path(kwargs["sightings_path"]).parent == raw_dir.parent / "processing"
    assert kwargs["settle_s"] == float(airflow_env.get("INGEST_SETTLE_SECONDS", 5))
    # The prediction DAG's good-data asset is the one the split emits.
    (good,) = dagbag["dags"]["predict_new_data"]["assets"]
    assert good["watchers"] == []
