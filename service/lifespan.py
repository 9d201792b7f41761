"""What each worker creates when it starts and closes when it stops.

It runs inside each uvicorn worker after the worker started, never before a fork (LightGBM +
OpenMP can hang in a forked child). It reads `settings`, `conf`, `spec`, `schema` and `auth` from
`app.state` (set by `service.main.create_app`) and adds `models`, `db` and `predictor`.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import predictions
from service.auth import load_report_key, load_tokens
from service.db import Database
from service.group_commit import GroupWriter
from service.model_store import ModelStore
from service.validation import CurrentRules


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state = app.state
    settings, conf = state.settings, state.conf
    # Refuses to start without every role's token (SecretError names the variable).
    state.auth.load(load_tokens(settings.var_dir), load_report_key(settings.var_dir))
    models = ModelStore(
        settings.model_dir,
        state.spec,
        retry_s=conf.model_retry_s,
        database_url=settings.database_url,
    )
    models.load()
    db = Database(
        settings.database_url,
        pool_size=conf.db_pool_size,
        connect_timeout_s=conf.db_connect_timeout_s,
        statement_timeout_ms=conf.db_statement_timeout_ms,
        synchronous_commit=conf.db_synchronous_commit,
        request_timeout_s=conf.db_request_timeout_s,
    )
    writer = GroupWriter(
        settings.database_url,
        max_group_rows=conf.group_max_rows,
        connect_timeout_s=conf.db_connect_timeout_s,
        statement_timeout_ms=conf.db_statement_timeout_ms,
        synchronous_commit=conf.db_synchronous_commit,
        request_timeout_s=conf.db_request_timeout_s,
    )
    limits = predictions.Limits(
        max_records=conf.max_batch_records,
        batch_threads=conf.batch_predict_threads,
        inline_max_body_bytes=conf.inline_max_body_bytes,
    )
    state.models, state.db = models, db
    state.predictor = predictions.Predictor(
        rules=CurrentRules(state.schema), models=models, db=db, writer=writer, limits=limits
    )
    # Everything loaded so far (FastAPI, LightGBM, pandas pulled in by it) lives as long as
    # the process: keep it out of the cyclic GC, whose full passes over it would show up as
    # latency spikes.
    gc.freeze()
    try:
        yield
    finally:
        await writer.close()
        db.close()
