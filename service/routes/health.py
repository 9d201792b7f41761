"""GET /health (database and model) and GET /livez (the process alone), without credentials."""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures.

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service import schemas, store
from service.db import DatabaseUnavailable
from service.model_store import ModelUnavailable
from service.responses import json_response

router = APIRouter()


@router.get("/health", response_model=schemas.Health, responses={503: {"model": schemas.Health}})
async def health(request: Request) -> Response:
    """Database and model reachable: 200; otherwise 503 saying which is not."""
    state = request.app.state
    try:
        model = state.models.get().version
    except ModelUnavailable as exc:
        model = f"unavailable: {exc}"
    try:
        await state.db.call(state.db.transaction, store.ping, timeout_s=state.conf.health_timeout_s)
        database = "ok"
    except DatabaseUnavailable as exc:
        database = f"unavailable: {exc}"
    ok = database == "ok" and not model.startswith("unavailable")
    body = {"status": "ok" if ok else "unavailable", "database": database, "model": model}
    return json_response(body, 200 if ok else 503)


@router.get(
    "/livez", summary="The process answers (no database, no model): for benchmarks and probes"
)
async def livez() -> Response:
    return json_response({"status": "alive"})
