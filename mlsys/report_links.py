"""Signed, expiring links to data-quality reports and to their index (docs/api.md).

A person opening the link from Teams or Grafana has a browser and no API token, yet a report
lists the values of bad rows. So the ingestion DAG signs each link: `?expires=<unix s>&sig=<HMAC>`,
the HMAC-SHA256 of the report name and the expiry under the secret REPORT_LINK_KEY, which only
the DAG and the service know. The service serves a report to a valid, unexpired signature or to
an API token. Standard library only: imported by the service and by the DAG.

The index of reports (`<REPORT_BASE_URL>/`) is signed the same way for the scope
`INDEX_SCOPE`, which no report name can be (it holds a `/`): a report's signature never opens
the index, nor the index's a report. Its filters are NOT signed: every filter only narrows the
same list, and the page's own form must be able to change them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable
from datetime import datetime
from urllib.parse import quote, urlencode

KEY_NAME = "REPORT_LINK_KEY"
# A week: an alert is read within days; an old link in a channel's history stops working.
DEFAULT_TTL_S = 7 * 24 * 3600
# Longer than this is refused even if signed, so that no link is valid for ever.
MAX_TTL_S = 366 * 24 * 3600
# What an index link signs instead of a report name (report names never contain "/").
INDEX_SCOPE = "index/"


def signature(name: str, expires: int, key: bytes) -> str:
    """URL-safe HMAC-SHA256 of `name` and `expires` (43 characters, no padding)."""
    mac = hmac.new(key, f"{name}\n{expires}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")


def signed_url(
    base_url: str, name: str, key: bytes, *, ttl_s: int = DEFAULT_TTL_S, now: float | None = None
) -> str:
    """`base_url/name?expires=...&sig=...`, valid for `ttl_s` seconds from `now`."""
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"a report link lives between 1 s and {MAX_TTL_S} s, not {ttl_s}")
    expires = int(now if now is not None else time.time()) + ttl_s
    query = urlencode({"expires": expires, "sig": signature(name, expires, key)})
    return f"{base_url.rstrip('/')}/{quote(name)}?{query}"


def verify(
    name: str, expires: str | None, sig: str | None, key: bytes, *, now: float | None = None
) -> bool:
    """True for a signature made with `key` for this name and expiry, not yet expired.

    Compared in constant time; a malformed expiry or signature is simply not valid.
    """
    if not expires or not sig or not expires.isdigit() or len(expires) > 12:
        return False
    moment = int(expires)
    current = now if now is not None else time.time()
    if moment < current or moment > current + MAX_TTL_S:
        return False
    return hmac.compare_digest(signature(name, moment, key).encode(), sig.encode("utf-8"))


def link_query(name: str, expires: int, key: bytes) -> dict[str, str]:
    """The signed-link parameters {"expires", "sig"} of `name` for an expiry in Unix seconds."""
    return {"expires": str(expires), "sig": signature(name, expires, key)}


def index_url(
    base_url: str,
    key: bytes,
    *,
    criticality: Iterable[str] = (),
    issue_type: str | None = None,
    file: str | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    ttl_s: int = DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    """`base_url/?<filters>&expires=...&sig=...`: the index of reports, newest first, signed
    for `ttl_s` seconds from `now` (a person opens it without a token; the reports it links to
    are signed by the page until the same moment).

    base_url: where the reports are served (REPORT_BASE_URL, e.g. http://host:8000/reports).
    Filters (all optional, combined with AND): criticality, exact levels (none, low, medium,
    high; several mean any of them; one string is one level); issue_type, an error type of data_quality_issues; file, a
    substring of the file's name (case-insensitive); start / end, ISO dates or datetimes (a
    datetime without a zone is UTC; an end date covers its whole day). The service checks the
    values when the page is opened (an unknown level is a 422 there). Raises ValueError for a
    TTL outside 1 s .. MAX_TTL_S.
    """
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"an index link lives between 1 s and {MAX_TTL_S} s, not {ttl_s}")
    expires = int(now if now is not None else time.time()) + ttl_s
    levels = [criticality] if isinstance(criticality, str) else criticality  # "high" is one level
    params: list[tuple[str, str]] = [("criticality", str(level)) for level in levels]
    if issue_type:
        params.append(("issue_type", issue_type))
    if file:
        params.append(("file", file))
    for name, moment in (("start", start), ("end", end)):
        if moment is not None:
            params.append((name, moment if isinstance(moment, str) else moment.isoformat()))
    params.extend(link_query(INDEX_SCOPE, expires, key).items())
    return f"{base_url.rstrip('/')}/?{urlencode(params)}"


def verify_index(
    expires: str | None, sig: str | None, key: bytes, *, now: float | None = None
) -> bool:
    """True for an unexpired signature of the index made with `key` (see `verify`)."""
    return verify(INDEX_SCOPE, expires, sig, key, now=now)
