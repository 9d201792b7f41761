"""Signed, expiring links to data-quality reports (the "Open the report" button of an alert).

A person opening the link from Teams has a browser and no API token, yet a report lists the
values of bad rows. So the ingestion DAG signs each link: `?expires=<unix s>&sig=<HMAC>`, the
HMAC-SHA256 of the report name and the expiry under the secret REPORT_LINK_KEY, which only the
DAG and the service know. The service serves a report to a valid, unexpired signature or to an
API token (docs/api.md). Standard library only: imported by the service and by the DAG.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

KEY_NAME = "REPORT_LINK_KEY"
# A week: an alert is read within days; an old link in a channel's history stops working.
DEFAULT_TTL_S = 7 * 24 * 3600
# Longer than this is refused even if signed, so that no link is valid for ever.
MAX_TTL_S = 366 * 24 * 3600


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
