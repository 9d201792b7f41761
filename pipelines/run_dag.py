"""Run one DAG with `dag.test()` and print its outcome as JSON (the last line of stdout).

    AIRFLOW_HOME=... AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=... .venvs/airflow/bin/python -m pipelines.run_dag ingest_data
    ... -m pipelines.run_dag review_schema_proposal '{"proposal_id": 3}'   # with a run conf

Used by the tests (real Airflow, real tasks, a migrated metadata database) and handy for
trying a DAG by hand without the scheduler.
"""

from __future__ import annotations

import json
import sys


def run(dag_id: str, conf: dict | None = None) -> dict:
    from airflow.dag_processing.dagbag import DagBag

    from pipelines.airflow_env import DAGS_FOLDER

    bag = DagBag(dag_folder=str(DAGS_FOLDER))
    if bag.import_errors:
        return {
            "state": "import_error",
            "errors": {k: str(v) for k, v in bag.import_errors.items()},
        }
    dag = bag.get_dag(dag_id)
    run = dag.test(run_conf=conf)
    tasks = {}
    for ti in run.get_task_instances():
        tasks[ti.task_id] = str(ti.state)
    return {"state": str(run.state), "run_id": run.run_id, "tasks": tasks}


def main() -> int:
    outcome = run(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else None)
    print(json.dumps(outcome))
    return 0 if outcome["state"] in ("success", "DagRunState.SUCCESS") else 1


if __name__ == "__main__":
    raise SystemExit(main())
