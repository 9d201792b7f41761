"""Secrets out of messages: URLs with credentials, webhook signatures, DSN passwords.

Every message, log line or exception text that may carry a URL or a connection string goes
through `redact` before it is shown. Standard library only (imported in all three
environments). What it removes:
  - the password of any `scheme://user:password@host` URL (the user name is kept),
  - the query string of any URL, and the path of URLs on known webhook hosts (Teams
    Workflows and connectors put their secret in `sig=` or in the path),
  - `password=...` in libpq key/value DSNs,
  - secret-looking query parameters anywhere (`sig=`, `token=`, `key=`, `password=`...).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# Hosts whose webhook URLs are secret in their path, not only in their query.
WEBHOOK_HOST_SUFFIXES = (
    ".logic.azure.com",  # Teams Workflows ("When a Teams webhook request is received")
    ".powerautomate.com",
    ".powerplatform.com",
    ".webhook.office.com",  # legacy Office 365 connectors
    "outlook.office.com",
    "hooks.slack.com",
)

_URL = re.compile(r"""[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'"<>]+""")
_DSN_PASSWORD = re.compile(r"""(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'"]+)""", re.IGNORECASE)
_SECRET_PARAM = re.compile(
    r"""((?:^|[?&;\s])(?:sig|signature|token|access_token|key|api_key|apikey|secret|password|code)=)"""
    r"""[^&\s'"<>]+""",
    re.IGNORECASE,
)


def _is_webhook_host(host: str) -> bool:
    host = host.lower()
    return any(host == s.lstrip(".") or host.endswith(s) for s in WEBHOOK_HOST_SUFFIXES)


def redact_url(url: str) -> str:
    """`url` without its password, its query string, and (webhook hosts) its path.

    >>> redact_url("postgresql://app:s3cret@db:5432/mlsys?sslmode=require")
    'postgresql://app:***@db:5432/mlsys?***'
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:  # a malformed URL (bad port, brackets): keep only its scheme
        return url.split("://", 1)[0] + "://" + MASK
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user, has_password, _ = userinfo.partition(":")
        netloc = f"{user}:{MASK}@{hostport}" if has_password else netloc
    path = parts.path
    if _is_webhook_host(host) and path not in ("", "/"):
        path = "/" + MASK
    query = MASK if parts.query else ""
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, path, query, fragment))


def redact(text: str) -> str:
    """`text` with every URL passed through `redact_url` and every DSN password masked."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    text = _DSN_PASSWORD.sub(lambda m: m.group(1) + MASK, text)
    return _SECRET_PARAM.sub(lambda m: m.group(1) + MASK, text)
