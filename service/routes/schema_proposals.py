"""GET /schema-proposals: the proposed changes of schema.pbtxt with their evidence and diff,
newest first, for the UI's page and for people (docs/schema.md). Read only: a curator decides
with `make schema-approve/reject` or in Airflow's Required Actions."""

# No `from __future__ import annotations`: FastAPI evaluates the route's signature.

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from mlsys import api_auth
from pipelines.proposals.proposals import list_proposals
from service.auth import require
from service.responses import AUTH_ERRORS, ERRORS, json_response

router = APIRouter()


@router.get(
    "/schema-proposals",
    responses={**AUTH_ERRORS, 503: ERRORS[503]},
    dependencies=[Depends(require(api_auth.SCHEMA_PROPOSALS, "read the schema proposals"))],
)
async def schema_proposals(
    request: Request,
    status: Annotated[
        Literal["proposed", "approved", "rejected"] | None, Query(description="one status")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="proposals, newest first")] = 100,
) -> Response:
    """{"items": [proposal, ...]}: id, title, status, change, evidence (files, rows, shares),
    diff, base version, and who decided, when, why, through what."""
    db = request.app.state.db
    found = await db.call(
        db.transaction, lambda conn: list_proposals(conn, status=status, limit=limit)
    )
    return json_response({"items": [p.to_dict() for p in found]})
