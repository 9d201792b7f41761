"""GET /past-predictions: stored predictions, newest first, one page at a time."""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures.

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from mlsys import api_auth
from service import predictions, schemas
from service.auth import require
from service.responses import AUTH_ERRORS, ERRORS, json_response

router = APIRouter()


# The bound of `limit` is a setting: `openapi_docs.complete` writes it into the document.
@router.get(
    "/past-predictions",
    response_model=schemas.PastPredictions,
    responses={**AUTH_ERRORS, 422: ERRORS[422], 503: ERRORS[503]},
    summary="Stored predictions, newest first, filtered by time and source",
    dependencies=[Depends(require(api_auth.PAST_PREDICTIONS, "read past predictions"))],
)
async def past_predictions(
    request: Request,
    start: Annotated[
        str | None,
        Query(
            description="ISO date or datetime, inclusive; no zone means UTC",
            examples=["2026-11-01"],
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            description="ISO date (the whole day is included) or datetime (inclusive)",
            examples=["2026-11-30"],
        ),
    ] = None,
    # The enum and the bounds are for the OpenAPI document (and the fuzzer that reads it);
    # past_query checks them, with the answers' {detail, errors} shape.
    source: Annotated[
        str,
        Query(
            description="webapp, scheduled or all",
            json_schema_extra={"enum": list(predictions.PAST_SOURCES)},
        ),
    ] = "all",
    limit: Annotated[int, Query(description="page size", json_schema_extra={"minimum": 1})] = 100,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> Response:
    state = request.app.state
    query = predictions.past_query(
        start=start, end=end, source=source, limit=limit, cursor=cursor,
        max_limit=state.conf.past_predictions_max_limit,
    )  # fmt: skip
    return json_response(await state.db.call(predictions.past_predictions, state.db, query))
