"""The preload of the processes that fork tasks (pipelines/preload.py, through airflow_local_settings): in the
scheduler the task libraries are loaded when Airflow starts, in other Airflow processes
nothing is, and never a module of ours (it would freeze our code at the scheduler's start)."""

from __future__ import annotations

import json
import subprocess

import pytest

from mlsys.config import ROOT
from tests.conftest import AIRFLOW_PYTHON

pytestmark = pytest.mark.timeout(300)

PROBE = r"""
import json, sys
sys.argv = [sys.argv[1], *sys.argv[2:]]
import airflow  # imports airflow_local_settings from PYTHONPATH
from pipelines.preload import TASK_MODULES
print(json.dumps({
    "loaded": [m for m in TASK_MODULES if m in sys.modules],
    "ours": sorted(m for m in sys.modules
                   if m.split(".")[0] in ("mlsys", "pipelines") and m != "pipelines.preload"
                   and m != "pipelines"),
}))
"""


def probe(airflow_env: dict[str, str], *argv: str) -> dict:
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", PROBE, *argv], cwd=ROOT, env=airflow_env,
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("command", [["scheduler"], ["celery", "worker"]])
def test_the_task_forking_processes_preload_the_task_libraries_and_none_of_our_modules(
    airflow_env, command
):
    """The scheduler (LocalExecutor) and a Celery worker (CeleryExecutor) fork the tasks."""
    from pipelines.preload import TASK_MODULES

    found = probe(airflow_env, str(AIRFLOW_PYTHON.parent / "airflow"), *command)
    assert found["loaded"] == list(TASK_MODULES)
    assert found["ours"] == []


def test_other_airflow_processes_preload_nothing(airflow_env):
    for command in (["api-server"], ["celery", "flower"]):
        found = probe(airflow_env, str(AIRFLOW_PYTHON.parent / "airflow"), *command)
        assert "pandas" not in found["loaded"], command


def test_task_processes_cache_our_bytecode_under_airflow_home_not_in_the_tree(airflow_env):
    """Each task imports our modules afresh: their bytecode is cached (under AIRFLOW_HOME, even
    where the environment turned bytecode writing off), so they are compiled once per edit, not
    once per task."""
    from pathlib import Path

    result = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", "import pipelines.ingestion.result"], cwd=ROOT, env=airflow_env,
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    cache = Path(airflow_env["AIRFLOW_HOME"]) / "pycache"
    mirrored = cache / str(ROOT).lstrip("/") / "pipelines" / "ingestion"
    assert any(p.name.startswith("result.") for p in mirrored.glob("*.pyc"))
