"""Exception handlers: every error leaves the service as JSON `{"detail", "errors"?}`."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from service.auth import AuthError
from service.db import DatabaseUnavailable
from service.model_store import ModelUnavailable
from service.responses import json_response
from service.validation import FieldError, RequestError, shown

log = logging.getLogger("service")


async def auth_error(request: Request, exc: AuthError) -> Response:
    answer = json_response({"detail": exc.detail}, exc.status)
    answer.headers.update(exc.headers)
    return answer


async def request_error(request: Request, exc: RequestError) -> Response:
    return json_response(exc.to_dict(), exc.status)


async def database_unavailable(request: Request, exc: DatabaseUnavailable) -> Response:
    log.warning("503: %s", exc)
    if request.method != "POST":
        after = "retry later"
    elif exc.maybe_stored:
        after = (
            "the predictions may or may not be stored: a scheduled call can simply be sent"
            " again (it is idempotent); check GET /past-predictions before resending others"
        )
    else:
        after = "nothing was stored, retry later"
    return json_response({"detail": f"{exc}; {after}"}, 503)


async def model_unavailable(request: Request, exc: ModelUnavailable) -> Response:
    return json_response({"detail": f"no model available: {exc}"}, 503)


async def bug(request: Request, exc: Exception) -> Response:
    # A bug, never the client's input: keep the JSON shape and log the traceback.
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return json_response(
        {"detail": f"internal error ({type(exc).__name__}), logged by the service"}, 500
    )


async def bad_params(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's own validation (query parameters) in our 422 shape."""
    errors = [
        FieldError(
            None, str(e["loc"][-1]) if e.get("loc") else None, shown(e.get("input")), e["msg"]
        )
        for e in exc.errors()
    ]
    fields = ", ".join(str(e.field) for e in errors)
    return json_response(
        RequestError(422, f"invalid request parameters: {fields}", errors).to_dict(), 422
    )


HANDLERS = {
    AuthError: auth_error,
    RequestError: request_error,
    DatabaseUnavailable: database_unavailable,
    ModelUnavailable: model_unavailable,
    Exception: bug,
    RequestValidationError: bad_params,
}


def add_exception_handlers(app: FastAPI) -> None:
    for exc_class, handler in HANDLERS.items():
        app.add_exception_handler(exc_class, handler)  # type: ignore[arg-type]
