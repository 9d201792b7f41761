"""Which Airflow executor runs the tasks (AIRFLOW_EXECUTOR=local|celery), and, for Celery, its
broker, queues and workers. One home for these settings: `make up` (pipelines/launch.py), the
environment of every Airflow process (pipelines/airflow_env.py), the DAGs (queue names) and the
tests read them here. docs/scaling.md says when to choose which and how to add worker machines.

Standard library only: imported by the DAG files at parse time.

- `local` (the default): Airflow's LocalExecutor; tasks run as processes of the scheduler's
  machine, exactly as before Celery was supported.
- `celery`: the CeleryExecutor. The scheduler puts each task on a Redis queue and
  `airflow celery worker` processes, on this machine or others, run them. `validate_data`
  (and the schema loop's `propose` and `record_decision`) goes to the queue TFDV_QUEUE,
  served only by workers that have the `tfdv` environment; every other task to `default`. Natively `make up` starts our own Redis (ops/redis.py) and
  AIRFLOW_CELERY_WORKERS workers; task states come back through the Celery result backend,
  Airflow's metadata database (the provider's default: `db+` its SQLAlchemy URL).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import quote

from mlsys.config import ConfigError, env_int

EXECUTORS = {"local": "LocalExecutor", "celery": "CeleryExecutor"}
# Airflow's `[operators] default_queue`: every task without a queue of its own.
DEFAULT_QUEUE = "default"
REDIS_SECRET = "REDIS_PASSWORD"


@dataclass(frozen=True)
class ExecutorSettings:
    kind: str  # a key of EXECUTORS
    # The queue of the tasks that need the tfdv environment or write the schema (validate_data,
    # propose, record_decision).
    tfdv_queue: str
    # Native workers `make up` starts (celery), each with this many task slots, serving these
    # queues. Two workers: one dying leaves the other to finish its work (docs/scaling.md).
    workers: int
    worker_concurrency: int
    worker_queues: tuple[str, ...]
    # Our own Redis (ops/redis.py) on 127.0.0.1:redis_port, unless CELERY_BROKER_URL names one.
    redis_port: int
    broker_url_override: str | None = field(repr=False)
    # Seconds without a heartbeat after which the scheduler fails a running task (and retries
    # it): how long the work of a worker that died waits before another worker takes it over.
    task_heartbeat_timeout_s: int

    @property
    def celery(self) -> bool:
        return self.kind == "celery"

    @property
    def airflow_executor(self) -> str:
        return EXECUTORS[self.kind]

    @property
    def embedded_redis(self) -> bool:
        """True when `make up` runs the broker itself (celery, no CELERY_BROKER_URL)."""
        return self.celery and self.broker_url_override is None


def redis_url(password: str, port: int, host: str = "127.0.0.1", db: int = 0) -> str:
    """The broker URL of a Redis with a password (no user: Redis's `default` user)."""
    return f"redis://:{quote(password, safe='')}@{host}:{port}/{db}"


def _queues(raw: str, name: str) -> tuple[str, ...]:
    queues = tuple(q.strip() for q in raw.split(",") if q.strip())
    if not queues:
        raise ConfigError(f"{name} names no queue")
    for queue in queues:
        if not queue.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(f"{name}: {queue!r} is not a queue name (letters, digits, -_.)")
    return queues


def load_executor_settings(env: dict[str, str] | None = None) -> ExecutorSettings:
    env = dict(os.environ if env is None else env)
    kind = env.get("AIRFLOW_EXECUTOR", "").strip().lower() or "local"
    if kind not in EXECUTORS:
        raise ConfigError(f"AIRFLOW_EXECUTOR={kind!r} must be one of {', '.join(EXECUTORS)}")
    tfdv_queues = _queues(env.get("TFDV_QUEUE", "").strip() or "tfdv", "TFDV_QUEUE")
    if len(tfdv_queues) != 1:
        raise ConfigError(f"TFDV_QUEUE names {len(tfdv_queues)} queues: name one")
    tfdv_queue = tfdv_queues[0]
    worker_queues = _queues(
        env.get("AIRFLOW_CELERY_QUEUES", "").strip() or f"{DEFAULT_QUEUE},{tfdv_queue}",
        "AIRFLOW_CELERY_QUEUES",
    )
    return ExecutorSettings(
        kind=kind,
        tfdv_queue=tfdv_queue,
        workers=env_int(env, "AIRFLOW_CELERY_WORKERS", 2, low=1, high=64),
        worker_concurrency=env_int(env, "AIRFLOW_CELERY_CONCURRENCY", 3, low=1, high=256),
        worker_queues=worker_queues,
        redis_port=env_int(env, "REDIS_PORT", 6379, low=1, high=65535),
        broker_url_override=env.get("CELERY_BROKER_URL", "").strip() or None,
        task_heartbeat_timeout_s=env_int(
            env, "AIRFLOW_TASK_HEARTBEAT_TIMEOUT_S", 90, low=30, high=24 * 3600
        ),
    )
