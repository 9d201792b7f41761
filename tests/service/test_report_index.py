"""The index of reports (service/report_index.py): its signed links, filters, pages, headers.

Route tests run against the real uvicorn service and PostgreSQL of tests/service/conftest.py.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from mlsys import report_links

KEY = b"k" * 32


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_an_index_link_signs_its_scope_and_expiry_not_its_filters():
    url = report_links.index_url(
        "http://h/reports/", KEY, criticality=["high", "medium"], issue_type="out_of_range",
        file="a&b c", start="2026-11-30", end="2026-12-01T10:00:00+00:00", ttl_s=10, now=1000,
    )  # fmt: skip
    assert url.startswith("http://h/reports/?")
    q = _query(url)
    assert q["criticality"] == ["high", "medium"] and q["issue_type"] == ["out_of_range"]
    assert q["file"] == ["a&b c"] and q["end"] == ["2026-12-01T10:00:00+00:00"]
    expires, sig = q["expires"][0], q["sig"][0]
    assert expires == "1010"
    assert report_links.verify_index(expires, sig, KEY, now=1009)
    assert not report_links.verify_index(expires, sig, KEY, now=1011)  # expired
    assert not report_links.verify_index("1011", sig, KEY, now=1000)  # expiry changed
    assert not report_links.verify_index(expires, sig, b"other", now=1000)
    # The same signature with other filters: still the index (filters only narrow it).
    plain = _query(report_links.index_url("http://h/reports", KEY, ttl_s=10, now=1000))
    assert plain["sig"] == [sig] and set(plain) == {"expires", "sig"}


def test_an_index_signature_opens_no_report_and_a_report_signature_no_index():
    index = _query(report_links.index_url("http://h/reports", KEY, ttl_s=10, now=1000))
    for name in ["index", "index.html", "index/", ""]:
        if name != report_links.INDEX_SCOPE:
            assert not report_links.verify(
                name, index["expires"][0], index["sig"][0], KEY, now=1000
            )
    report = _query(
        report_links.signed_url("http://h/reports", "index.html", KEY, ttl_s=10, now=1000)
    )
    assert not report_links.verify_index(report["expires"][0], report["sig"][0], KEY, now=1000)


def test_an_index_link_refuses_a_ttl_out_of_bounds():
    for ttl in [0, -1, report_links.MAX_TTL_S + 1]:
        with pytest.raises(ValueError, match="index link"):
            report_links.index_url("http://h/reports", KEY, ttl_s=ttl)
