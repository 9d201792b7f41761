"""The index of data-quality reports: `GET /reports/`, an HTML page for people (docs/api.md).

Every ingested file (`ingestion_files`), newest first, with its criticality, row counts and
issue types, and a link to its report; filtered by criticality, issue type, a substring of the
file's name and a time range, 50 files a page (keyset pagination: the table may hold 100k).

Access is that of the reports: a signed, expiring link (mlsys/report_links.py, scope
`INDEX_SCOPE`, made by the alerts and stored by the pipeline for Grafana) or a bearer token of
any role. The page carries its signature on: the filter form (a plain GET form, no script) and
the pager keep `expires` and `sig`, and each report link is signed until the same moment, so
that a page never opens anything for longer than the link that opened it. A bad signature is
a 403 that says what to do, never a 500.
"""

# No `from __future__ import annotations`: FastAPI evaluates the route's signature.

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mlsys import api_auth, report_links
from mlsys.schema_versions import SchemaVersion
from service.auth import Authenticator, Credentials
from service.predictions import decode_cursor, encode_cursor, parse_instant
from service.validation import RequestError

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
# A filter value longer than any file name or error type we store is a mistake, not a search.
MAX_FILTER_CHARS = 200
# "10,000+ files match": past this the count stops (it would cost more than the page).
COUNT_CAP = 10_000
# Report names as the ingestion writes them (pipelines/ingestion/report.py); others get no link.
REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.html$")
# The headers of the reports (service/main.py), except that the page's own filter form may
# submit to the page itself ('self'): still no script, no frame, nothing loaded.
INDEX_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the page's links carry signatures
    "Cache-Control": "private, no-store",
}
BAD_LINK = (
    "This link to the index of reports is not valid or has expired. Open the index again from "
    "a newer Teams alert or from the Grafana dashboard, or send 'Authorization: Bearer <token>'."
)

router = APIRouter()
_templates = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class IndexQuery:
    """Checked filters of one page. `end_before` is exclusive; `after` is the keyset cursor
    (ingested_at, id) of the last file of the previous page."""

    levels: tuple[str, ...] = ()
    issue_type: str | None = None
    file: str | None = None
    start: datetime | None = None
    end_before: datetime | None = None
    limit: int = PAGE_SIZE
    after: tuple[datetime, int] | None = None


@dataclass(frozen=True)
class IndexRow:
    file: str  # the name it arrived under (the safe claimed name for files from before 0003)
    ingested_at: datetime
    criticality: str
    rows_total: int
    rows_valid: int
    rows_invalid: int
    issue_types: tuple[str, ...]
    parse_error: str | None
    report: str | None  # the report's file name under DATA_DIR/reports/, when it is there
    schema: str | None = None  # the schema version it was judged by, 'v3 (1a2b3c4d)' (0009)


@dataclass
class IndexPage:
    rows: list[IndexRow] = field(default_factory=list)
    matching: int = 0  # files matching the filters, counted up to COUNT_CAP + 1
    next_cursor: str | None = None
    levels: list[str] = field(default_factory=list)  # every criticality level, by rank
    issue_types: list[str] = field(default_factory=list)  # every error type ever recorded


class BadFilter(ValueError):
    """A filter value the page cannot use (422, shown on the page)."""


# --- the SQL: bound parameters only; each filter is off when its parameter is NULL ------------
# psycopg2 interpolates on the client, so the planner sees constants: an unused filter folds
# away. The newest-first walk uses ingestion_files_time (ingested_at) with the filters applied
# on the way; a rare issue type is found through data_quality_issues_type, a rare name through
# the trigram index of migration 0008 (same expression), whichever the planner finds cheaper.
WHERE = """
    (%(levels)s::text[] IS NULL OR f.criticality = ANY(%(levels)s::text[]))
    AND (%(issue_type)s::text IS NULL OR EXISTS (
        SELECT 1 FROM data_quality_issues q
        WHERE q.file_id = f.id AND q.error_type = %(issue_type)s::text))
    AND (%(pattern)s::text IS NULL
         OR (COALESCE(f.original_name, '') || E'\n' || f.file_name) ILIKE %(pattern)s::text)
    AND (%(start)s::timestamptz IS NULL OR f.ingested_at >= %(start)s::timestamptz)
    AND (%(end_before)s::timestamptz IS NULL OR f.ingested_at < %(end_before)s::timestamptz)
"""
PAGE_SQL = f"""
SELECT COALESCE(f.original_name, f.file_name), f.ingested_at, f.criticality,
       f.rows_total, f.rows_valid, f.rows_invalid, f.parse_error, f.report_path, f.id,
       ARRAY(SELECT DISTINCT q.error_type FROM data_quality_issues q
             WHERE q.file_id = f.id ORDER BY 1),
       f.schema_version, f.schema_sha256
FROM ingestion_files f
WHERE {WHERE}
  AND (%(after_at)s::timestamptz IS NULL
       OR (f.ingested_at, f.id) < (%(after_at)s::timestamptz, %(after_id)s::bigint))
ORDER BY f.ingested_at DESC, f.id DESC
LIMIT %(limit)s
"""
# Counted up to COUNT_CAP: an exact count of 100k rows under a filter costs more than the page.
COUNT_SQL = f"SELECT count(*) FROM (SELECT 1 FROM ingestion_files f WHERE {WHERE} LIMIT %(cap)s) c"
LEVELS_SQL = "SELECT level FROM criticality_levels ORDER BY rank"
# The distinct error types by a loose index scan of data_quality_issues_type: one index probe
# per type, however many issue rows there are.
ISSUE_TYPES_SQL = """
WITH RECURSIVE t(error_type) AS (
    (SELECT error_type FROM data_quality_issues ORDER BY error_type LIMIT 1)
    UNION ALL
    SELECT (SELECT q.error_type FROM data_quality_issues q
            WHERE q.error_type > t.error_type ORDER BY q.error_type LIMIT 1)
    FROM t WHERE t.error_type IS NOT NULL
)
SELECT error_type FROM t WHERE error_type IS NOT NULL LIMIT 1000
"""


def like_pattern(text: str) -> str:
    """`%text%` with LIKE's wildcards in `text` escaped (a file name may hold `%` or `_`)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def sql_params(q: IndexQuery) -> dict[str, Any]:
    return {
        "levels": list(q.levels) or None,
        "issue_type": q.issue_type,
        "pattern": like_pattern(q.file) if q.file else None,
        "start": q.start,
        "end_before": q.end_before,
        "after_at": q.after[0] if q.after else None,
        "after_id": q.after[1] if q.after else None,
        "limit": q.limit + 1,  # one more: is there a next page?
        "cap": COUNT_CAP + 1,
    }


def read_page(conn, q: IndexQuery, reports_dir: Path) -> IndexPage:
    """One page of the index, newest first, and the choices of the filter form.

    Raises BadFilter for a criticality that is not a level of `criticality_levels`.
    """
    with conn.cursor() as cur:
        cur.execute(LEVELS_SQL)
        levels = [level for (level,) in cur.fetchall()]
        unknown = [level for level in q.levels if level not in levels]
        if unknown:
            raise BadFilter(
                f"criticality {unknown[0][:50]!r} is not a level: use {', '.join(levels)}"
            )
        cur.execute(ISSUE_TYPES_SQL)
        issue_types = [t for (t,) in cur.fetchall()]
        params = sql_params(q)
        cur.execute(PAGE_SQL, params)
        found = cur.fetchall()
        cur.execute(COUNT_SQL, params)
        (matching,) = cur.fetchone()
    more = len(found) > q.limit
    found = found[: q.limit]
    rows = [
        IndexRow(
            file=name,
            ingested_at=at,
            criticality=level,
            rows_total=total,
            rows_valid=valid,
            rows_invalid=invalid,
            issue_types=tuple(types),
            parse_error=parse_error,
            report=_existing_report(report_path, reports_dir),
            schema=SchemaVersion(version, sha).short if sha else None,
        )  # fmt: skip
        for (
            name,
            at,
            level,
            total,
            valid,
            invalid,
            parse_error,
            report_path,
            _,
            types,
            version,
            sha,
        ) in found  # fmt: skip
    ]
    last = found[-1] if found else None
    return IndexPage(
        rows=rows,
        matching=matching,
        next_cursor=encode_cursor(last[1], last[8]) if more and last else None,
        levels=levels,
        issue_types=issue_types,
    )


def _existing_report(report_path: str | None, reports_dir: Path) -> str | None:
    # Older rows stored a path, newer ones the name (the Grafana table strips the folder too).
    name = (report_path or "").rsplit("/", 1)[-1]
    if not REPORT_NAME.match(name) or not (reports_dir / name).is_file():
        return None
    return name


def _text_filter(name: str, raw: str | None) -> str | None:
    text = (raw or "").strip()
    if not text:
        return None  # the form sends empty fields for "any"
    if len(text) > MAX_FILTER_CHARS:
        raise BadFilter(f"{name} is longer than {MAX_FILTER_CHARS} characters")
    if any(ord(c) < 32 for c in text):  # PostgreSQL text cannot even hold NUL
        raise BadFilter(f"{name} contains a control character")
    return text


def index_query(
    *,
    criticality: list[str],
    issue_type: str | None,
    file: str | None,
    start: str | None,
    end: str | None,
    limit: str | None,
    cursor: str | None,
) -> IndexQuery:
    """Check and convert the page's query parameters; raises BadFilter saying which is wrong."""
    levels = tuple(dict.fromkeys(c.strip() for c in criticality if c.strip()))
    size = PAGE_SIZE
    if limit:
        if not limit.isdigit() or not 1 <= int(limit) <= MAX_PAGE_SIZE:
            raise BadFilter(f"limit must be a whole number from 1 to {MAX_PAGE_SIZE}")
        size = int(limit)
    try:
        lower = parse_instant("start", start, end=False) if _text_filter("start", start) else None
        upper = parse_instant("end", end, end=True) if _text_filter("end", end) else None
        after = decode_cursor(cursor) if cursor else None
    except RequestError as exc:
        raise BadFilter(exc.detail) from None
    if lower is not None and upper is not None and lower >= upper:
        raise BadFilter(f"start ({start}) is after end ({end})")
    return IndexQuery(
        levels=levels,
        issue_type=_text_filter("issue_type", issue_type),
        file=_text_filter("file", file),
        start=lower,
        end_before=upper,
        limit=size,
        after=after,
    )


# --- access -----------------------------------------------------------------------------------
def page_expiry(
    auth: Authenticator,
    credentials,
    expires: str | None,
    sig: str | None,
    *,
    now: float | None = None,
) -> tuple[int | None, bytes | None]:
    """Until when the page's links may be signed (None: not signed), and the key to sign them.

    A token (any role) is checked first; otherwise a valid index signature is required.
    Raises AuthError 401 without either, 403 for a bad or expired signature.
    """
    key = auth.report_key
    current = int(now if now is not None else time.time())
    if credentials is not None:
        auth.check(credentials.credentials, frozenset(api_auth.REPORTS), "read reports")
        # A token holder may mint links anyway (it can read every report): a week, as alerts.
        return (current + report_links.DEFAULT_TTL_S, key) if key else (None, None)
    if not expires and not sig:
        auth.check(None, frozenset(api_auth.REPORTS), "read the index of reports")
    if key is None or not report_links.verify_index(expires, sig, key, now=now):
        raise SignatureRefused()
    return int(expires), key  # verify_index checked it is digits


class SignatureRefused(Exception):
    """An index link whose signature is not valid (forged, for another scope, or expired)."""


# --- the page ---------------------------------------------------------------------------------
def render(
    *,
    page: IndexPage | None,
    q: IndexQuery | None,
    form: dict[str, Any],
    error: str | None,
    expires: int | None,
    key: bytes | None,
    refused: bool = False,
) -> str:
    """The page's HTML (autoescaped: file names and issue types are data). Every link is
    relative to `/reports/`, so that the page works behind a proxy under another prefix."""
    sig = report_links.link_query(report_links.INDEX_SCOPE, expires, key) if expires and key else {}

    def report_href(name: str) -> str:
        signed = report_links.link_query(name, expires, key) if expires and key else {}
        return quote(name) + (f"?{urlencode(signed)}" if signed else "")

    def page_href(cursor: str | None, *, filters: bool = True) -> str:
        params: list[tuple[str, str]] = []
        if filters:
            params += [("criticality", c) for c in form["criticality"]]
            params += [
                (k, form[k]) for k in ("issue_type", "file", "start", "end", "limit") if form[k]
            ]
        if cursor:
            params.append(("cursor", cursor))
        return "?" + urlencode(params + list(sig.items()))

    return _templates.get_template("report_index.html.j2").render(
        page=page,
        q=q,
        form=form,
        error=error,
        show_form=not refused,
        cap=COUNT_CAP,
        hidden=sig,
        report_href=report_href,
        page_href=page_href,
        expires_at=(
            datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%d %H:%M UTC") if expires else None
        ),
    )


def html(body: str, status: int = 200) -> Response:
    return HTMLResponse(body, status_code=status, headers=INDEX_HEADERS)


@router.get(
    "/reports/",
    response_class=HTMLResponse,
    summary="Index of the data-quality reports (HTML), newest first, filtered",
    responses={
        401: {"description": "no signed link and no token"},
        403: {"description": "a signed link that is not valid or has expired"},
        422: {"description": "a filter the page cannot use (the page says which)"},
    },
)
async def report_index(
    request: Request,
    credentials: Credentials,
    criticality: Annotated[
        list[str], Query(description="levels (repeat for several): none, low, medium, high")
    ] = [],  # noqa: B006  (FastAPI copies a list default per request)
    issue_type: Annotated[str | None, Query(description="an error type")] = None,
    file: Annotated[str | None, Query(description="part of the file's name, any case")] = None,
    start: Annotated[str | None, Query(description="ISO date or datetime (UTC if no zone)")] = None,
    end: Annotated[str | None, Query(description="ISO date (whole day) or datetime")] = None,
    limit: Annotated[str | None, Query(description=f"files a page, 1-{MAX_PAGE_SIZE}")] = None,
    cursor: Annotated[str | None, Query(description="the next page's cursor")] = None,
    expires: Annotated[str | None, Query(description="signed link: expiry, Unix s")] = None,
    sig: Annotated[str | None, Query(description="signed link: HMAC of the index")] = None,
) -> Response:
    form = {
        "criticality": criticality, "issue_type": issue_type or "", "file": file or "",
        "start": start or "", "end": end or "", "limit": limit or "",
    }  # fmt: skip
    try:
        until, key = page_expiry(request.app.state.auth, credentials, expires, sig)
    except SignatureRefused:
        body = render(
            page=None, q=None, form=form, error=BAD_LINK, expires=None, key=None, refused=True
        )
        return html(body, 403)
    try:
        q = index_query(
            criticality=criticality, issue_type=issue_type, file=file, start=start, end=end,
            limit=limit, cursor=cursor,
        )  # fmt: skip
        db = request.app.state.db
        reports_dir = request.app.state.settings.reports_dir
        page = await db.call(db.transaction, lambda conn: read_page(conn, q, reports_dir))
    except BadFilter as exc:
        body = render(page=None, q=None, form=form, error=str(exc), expires=until, key=key)
        return html(body, 422)
    return html(render(page=page, q=q, form=form, error=None, expires=until, key=key))
