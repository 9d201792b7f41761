"""POST /predict: one record or a batch, every prediction stored."""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures.

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mlsys import api_auth
from mlsys.api_auth import Role
from service import predictions, schemas
from service.auth import require
from service.request_body import read_body
from service.responses import AUTH_ERRORS, ERRORS, json_response

router = APIRouter()

IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "webapp only: the same key sent again with the same records returns the predictions "
        "stored the first time (`already_stored`), never storing them twice"
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}
CanPredict = Annotated[Role, Depends(require(api_auth.PREDICT, "store predictions"))]


# The request body's schema depends on the feature spec: `openapi_docs.complete` adds it.
@router.post(
    "/predict",
    response_model=schemas.PredictResponse,
    responses={**ERRORS, **AUTH_ERRORS,
               400: {"model": schemas.ErrorResponse, "description": "malformed JSON, a duplicate key, nesting over 200, invalid UTF-8 or a lone surrogate; an unknown Host"},
               409: {"model": schemas.ErrorResponse, "description": "scheduled rows stored with other features, or an Idempotency-Key used for other records"}},
    openapi_extra={"parameters": [IDEMPOTENCY_HEADER]},
    summary="Predict one record or a batch, and store every prediction",
)  # fmt: skip
async def predict(request: Request, role: CanPredict) -> Response:
    # The body is parsed by us, not by FastAPI: orjson is ~10x faster on a 10k batch, and
    # the 422 must list every record's problems in our own shape. The role's sources are
    # checked once the body's source is known (403, nothing stored).
    state = request.app.state
    key = predictions.check_idempotency_key(request.headers.get("idempotency-key"))
    body = await read_body(request, state.conf.max_body_bytes)
    result = await state.predictor.predict(
        body, sources=api_auth.PREDICT_SOURCES[role], idempotency_key=key
    )
    return json_response(result)
