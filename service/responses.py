"""JSON answers (serialised by orjson) and the error answers every route documents."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from service import schemas

ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": schemas.ErrorResponse, "description": "body over MAX_BODY_BYTES"},
    415: {"model": schemas.ErrorResponse, "description": "no Content-Type, or not JSON"},
    422: {"model": schemas.ErrorResponse, "description": "invalid request; nothing was stored"},
    503: {
        "model": schemas.ErrorResponse,
        "description": "database or model unavailable (unreachable, full, or not answering "
        "within API_DB_REQUEST_TIMEOUT_S)",
    },
}
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": schemas.ErrorResponse, "description": "no credential, or not a valid one"},
    403: {"model": schemas.ErrorResponse, "description": "the credential's role may not do this"},
}


def json_response(content: Any, status: int = 200) -> Response:
    """`content` as JSON; orjson is ~10x faster than FastAPI's encoder on a 10k batch."""
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")
