"""GET /readyz: may a load balancer send this process new requests? (no credentials)"""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures.

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service import readiness
from service.model_store import ModelUnavailable
from service.responses import json_response

router = APIRouter()


@router.get(
    "/readyz",
    summary="Ready for new requests: 200; draining before a stop, or no model: 503",
    responses={503: {"description": "draining (the process is stopping) or no usable model"}},
)
async def readyz(request: Request) -> Response:
    """The balancer's health check (haproxy, docs/scaling.md). The database is left out on
    purpose: when it is down every process is equally unable, and taking them all out of the
    balancer would replace the service's own 503 (which says why) by the balancer's."""
    if readiness.is_draining():
        return json_response({"status": "draining"}, 503)
    try:
        request.app.state.models.get()
    except ModelUnavailable as exc:
        return json_response({"status": f"unavailable: {exc}"}, 503)
    return json_response({"status": "ready"})
