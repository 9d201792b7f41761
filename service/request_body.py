"""Reading a JSON request body within a byte limit, before anything parses it."""

from __future__ import annotations

from fastapi import Request
from starlette.requests import ClientDisconnect

from service.validation import RequestError


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refusing non-JSON content types and anything over `max_bytes` (counted).

    Raises `RequestError` 415 (no or another Content-Type) or 413 (over `max_bytes`, declared
    or counted), and `ClientDisconnect` when the client leaves mid-body.
    """
    ctype = request.headers.get("content-type")
    if ctype is None:
        # Required: a body without one is what a web page can post cross-site without a CORS
        # preflight (a "simple request"); with application/json the browser must ask first.
        raise RequestError(
            415,
            "the request has no Content-Type: send the records as JSON with "
            "Content-Type: application/json",
        )
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise RequestError(
            415,
            f"Content-Type {media[:100]!r} is not accepted: send the records as JSON "
            "(Content-Type: application/json), never a file upload or a form",
        )

    def too_big() -> RequestError:
        return RequestError(
            413,
            f"the body is over the limit of {max_bytes} bytes (MAX_BODY_BYTES): send smaller batches",
        )

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big()
    # ASGI messages read directly (Request.stream() adds a generator per request).
    chunks, size, more = [], 0, True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise too_big()
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)
