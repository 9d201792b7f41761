"""Airflow imports this module (by its name, from PYTHONPATH) in each of its processes; our
launcher puts this folder on PYTHONPATH (pipelines/airflow_env.py). In the scheduler (and a
Celery worker) it preloads the modules of the task bodies, which every forked task process then inherits
(pipelines/preload.py). Nothing else: Airflow treats every public name here as a setting or
a cluster policy, hence the empty `__all__`.
"""

from pipelines import preload as _preload

__all__: list[str] = []

if _preload.forks_tasks():
    _preload.preload()
