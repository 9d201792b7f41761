"""GET /reports/{name}: the data-quality reports written by the ingestion DAG."""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures.

import re
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response

from mlsys import api_auth
from service.auth import Credentials
from service.responses import AUTH_ERRORS, json_response

router = APIRouter()

# A report is a plain file name written by the ingestion DAG; anything else is a 404.
REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.html$")
# Reports are HTML written from data files: whatever a bad row holds, the browser runs no
# script, loads nothing, submits nothing and shows the page in no frame.
REPORT_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a signed link must not leak to another site
    "Cache-Control": "private, no-store",
}


@router.get(
    "/reports/{name}",
    response_class=FileResponse,
    responses={**AUTH_ERRORS, 404: {"description": "no such report"}},
)
async def report(
    request: Request,
    name: str,
    credentials: Credentials,
    expires: Annotated[str | None, Query(description="signed link: expiry, Unix seconds")] = None,
    sig: Annotated[str | None, Query(description="signed link: HMAC of name and expiry")] = None,
) -> Response:
    """A data-quality report of the ingestion DAG (DATA_DIR/reports/NAME.html), to a bearer
    token of any role or to the signed, expiring link of a Teams alert (docs/api.md)."""
    state = request.app.state
    state.auth.report_allowed(credentials, name, expires, sig, api_auth.REPORTS)
    folder = state.settings.reports_dir.resolve()
    path = (folder / name).resolve() if REPORT_NAME.match(name) else None
    if path is None or path.parent != folder or not path.is_file():
        return json_response({"detail": f"no report named {name[:100]!r}"}, 404)
    return FileResponse(path, media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)
