"""Settings of the model service, from environment variables (defaults in `.env.example`).

The core settings (database URL, model folder, host and port) come from `mlsys.config`; this
class holds only what the service alone needs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from mlsys.config import env_float, env_int


@dataclass(frozen=True)
class ServiceSettings:
    # API processes; each loads the model itself after it started. Two or more run behind
    # haproxy (`service.fleet`), one runs alone on API_PORT.
    workers: int
    # Threads doing database work in each worker, each holding its own connection, so the
    # "pool" can never be smaller than the thread pool (a psycopg2 pool smaller than FastAPI's
    # 40-thread pool was measured failing requests with "pool exhausted").
    db_pool_size: int
    # Seconds to wait for a connection: a database that is down must give a quick 503.
    db_connect_timeout_s: int
    # Server-side limit per statement, so that no request can hold a connection forever.
    db_statement_timeout_ms: int
    # False trades durability for latency: COMMIT returns before the WAL reaches the disk, so
    # a PostgreSQL crash (not a service crash) can lose the last ~0.6 s of answered
    # predictions. On by default; see docs/service.md for the measured difference.
    db_synchronous_commit: bool
    max_batch_records: int
    max_body_bytes: int
    past_predictions_max_limit: int
    # Threads LightGBM may use for a batch (single rows always use one: faster, fork-safe).
    batch_predict_threads: int
    # How long the model-loading retry waits after a failure before trying again.
    model_retry_s: float
    # Bodies up to this many bytes are handled on the event loop, and webapp ones stored by
    # group commit (one transaction for the concurrent requests of the moment).
    inline_max_body_bytes: int
    # At most this many rows in one group-commit statement.
    group_max_rows: int
    # uvicorn's access log: one line per request costs throughput (measured in bench/).
    access_log: bool
    # Host header values answered (anything else is a 400, against DNS rebinding); empty:
    # the local names and API_HOST (see `allowed_hosts`).
    allowed_hosts: tuple[str, ...] = ()
    # Longest wait for the database on behalf of one request, whatever it hangs on (a frozen
    # server or a partition never closes the socket): then 503. It also sets the TCP
    # keepalives and TCP_USER_TIMEOUT of the connections and asyncpg's command_timeout.
    db_request_timeout_s: float = 10.0
    # The same bound for GET /health, shorter: a probe must answer quickly.
    health_timeout_s: float = 3.0
    # Seconds a stopping process answers /readyz 503 while still serving, so that the
    # balancer (which checks every 0.5 s, service/templates/haproxy.cfg.j2) takes it out first.
    drain_s: float = 3.0
    # Addresses whose X-Forwarded-For/-Proto are believed: the balancer's only.
    forwarded_allow_ips: tuple[str, ...] = ("127.0.0.1",)
    # Idle keep-alive connections are closed after this (haproxy keeps its own shorter).
    keep_alive_s: int = 30
    # Longest wait for requests in flight when a process stops, then they are cancelled.
    graceful_shutdown_s: int = 30
    # With several processes: they listen on 127.0.0.1:API_BACKEND_PORT, +1, ...
    backend_port: int = 8100


LOCAL_HOSTS = ("localhost", "127.0.0.1")


def allowed_hosts(conf: ServiceSettings, api_host: str) -> list[str]:
    """The Host header values the service answers: API_ALLOWED_HOSTS, or by default the local
    names plus API_HOST when it names one address (not 0.0.0.0 or ::)."""
    if conf.allowed_hosts:
        return list(conf.allowed_hosts)
    extra = [] if api_host in ("0.0.0.0", "::", "") else [api_host]
    return list(dict.fromkeys([*LOCAL_HOSTS, *extra]))


def default_workers(cores: int | None = None) -> int:
    """One worker per core but one, which PostgreSQL and the rest of the stack need.

    Measured on the 2-core machines (bench/service_bench.py, docs/service.md): one worker
    answers about 50% more single predictions per second than two, with a lower p99 and about
    half the CPU per prediction, because two workers and the database then fight for the
    same two cores.
    """
    return max(1, (cores if cores is not None else os.cpu_count() or 2) - 1)


def load_service_settings(env: dict[str, str] | None = None) -> ServiceSettings:
    env = dict(os.environ if env is None else env)
    return ServiceSettings(
        workers=env_int(env, "API_WORKERS", default_workers(), low=1, high=64),
        db_pool_size=env_int(env, "API_DB_POOL_SIZE", 4, low=1, high=256),
        db_connect_timeout_s=env_int(env, "API_DB_CONNECT_TIMEOUT_S", 2, low=1, high=60),
        db_statement_timeout_ms=env_int(
            env, "API_DB_STATEMENT_TIMEOUT_MS", 30_000, low=0, high=3_600_000
        ),
        db_synchronous_commit=env_int(env, "API_DB_SYNCHRONOUS_COMMIT", 1, low=0, high=1) == 1,
        max_batch_records=env_int(env, "MAX_BATCH_RECORDS", 10_000, low=1, high=1_000_000),
        max_body_bytes=env_int(env, "MAX_BODY_BYTES", 8 * 1024 * 1024, low=1024, high=1 << 31),
        past_predictions_max_limit=env_int(
            env, "PAST_PREDICTIONS_MAX_LIMIT", 1000, low=1, high=100_000
        ),
        batch_predict_threads=env_int(env, "API_BATCH_PREDICT_THREADS", 1, low=1, high=64),
        model_retry_s=env_float(env, "API_MODEL_RETRY_S", 5.0, low=0.0, high=3600.0),
        inline_max_body_bytes=env_int(
            env, "API_INLINE_MAX_BODY_BYTES", 16_384, low=0, high=1 << 20
        ),
        group_max_rows=env_int(env, "API_GROUP_MAX_ROWS", 1000, low=1, high=100_000),
        access_log=env_int(env, "API_ACCESS_LOG", 0, low=0, high=1) == 1,
        allowed_hosts=tuple(
            h.strip() for h in env.get("API_ALLOWED_HOSTS", "").split(",") if h.strip()
        ),
        db_request_timeout_s=env_float(env, "API_DB_REQUEST_TIMEOUT_S", 10.0, low=0.5, high=3600.0),
        health_timeout_s=env_float(env, "API_HEALTH_TIMEOUT_S", 3.0, low=0.5, high=60.0),
        drain_s=env_float(env, "API_DRAIN_S", 3.0, low=0.0, high=600.0),
        forwarded_allow_ips=tuple(
            h.strip()
            for h in (env.get("API_FORWARDED_ALLOW_IPS") or "127.0.0.1").split(",")
            if h.strip()
        ),
        keep_alive_s=env_int(env, "API_KEEP_ALIVE_S", 30, low=1, high=3600),
        graceful_shutdown_s=env_int(env, "API_GRACEFUL_SHUTDOWN_S", 30, low=1, high=3600),
        backend_port=env_int(env, "API_BACKEND_PORT", 8100, low=1, high=65535),
    )


@lru_cache(maxsize=1)
def get_service_settings() -> ServiceSettings:
    return load_service_settings()
