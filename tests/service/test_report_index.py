"""The index of reports (service/routes/report_index.py): its signed links, filters, pages, headers.

Route tests run against the real uvicorn service and PostgreSQL of tests/service/conftest.py.
"""

from __future__ import annotations

import html as html_lib
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urljoin, urlsplit

import httpx
import psycopg2
import pytest

from mlsys import report_links
from mlsys.config import ROOT
from mlsys.db import psycopg2_dsn
from mlsys.schema_versions import read_schema_version
from pipelines.ingestion import report
from pipelines.ingestion.result import Criticality, Issue, ValidationResult
from pipelines.ingestion.store import save_statistics
from tests.conftest import REPORT_LINK_KEY
from tests.service.conftest import Api

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


def test_one_criticality_given_as_a_string_is_one_level():
    url = report_links.index_url("http://h/reports", KEY, criticality="medium")
    assert _query(url)["criticality"] == ["medium"]


def test_an_index_link_refuses_a_ttl_out_of_bounds():
    for ttl in [0, -1, report_links.MAX_TTL_S + 1]:
        with pytest.raises(ValueError, match="index link"):
            report_links.index_url("http://h/reports", KEY, ttl_s=ttl)


# --- the page, on the real service --------------------------------------------------------------
BASE = datetime(2026, 1, 1, tzinfo=UTC)
N_FILES = 120
SCHEMA_VERSION = read_schema_version(ROOT / "schema" / "schema.pbtxt")
LEVELS = ["none", "low", "medium", "high"]
HOSTILE = "<script>document.title='pwned'</script>\"><img src=x onerror=alert(1)>%_&amp;.csv"


def _issues(i: int) -> tuple[Issue, ...]:
    kinds = [(), ("out_of_range",), ("unknown_category",), ("out_of_range", "missing_column")]
    return tuple(Issue(t, "age", "row", 1, f"{t} in age", "-5") for t in kinds[i % 4])


@dataclass
class Files:
    """N_FILES files stored by the ingestion's own writers, one a minute from BASE."""

    tag: str  # in every file's name: filter on it to see only this module's files
    names: list[str]  # original names, by index i (ingested at BASE + i minutes)
    reports: dict[int, str]  # i -> report file name, for the files whose report was written


@pytest.fixture(scope="module")
def files(api: Api) -> Files:
    tag = f"idx{uuid.uuid4().hex[:8]}"
    dsn = psycopg2_dsn(api.database_url)
    names, reports = [], {}
    for i in range(N_FILES):
        claimed = f"{tag}-{i:03d}.csv"
        original = HOSTILE.replace(".csv", f"{tag}.csv") if i == 7 else f"Batch {tag} {i:03d}.csv"
        result = ValidationResult(
            file=claimed, rows_total=50, rows_invalid=i % 4 * 5,
            criticality=Criticality(LEVELS[i % 4]), issues=_issues(i),
            # Odd files judged by the schema (0009); even ones as if stored before versions.
            schema_version=SCHEMA_VERSION if i % 2 else None,
        )  # fmt: skip
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            # As the claim does: the name it arrived under, any characters.
            cur.execute(
                "INSERT INTO ingestion_claims (claimed_name, original_name, holder) "
                "VALUES (%s, %s, '{}')",
                (claimed, original),
            )
        conn.close()
        file_id = save_statistics(dsn, result, report_path=report.report_name(claimed))
        with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
            cur.execute(
                "UPDATE ingestion_files SET ingested_at = %s WHERE id = %s",
                (BASE + timedelta(minutes=i), file_id),
            )
        conn.close()
        if i % 10 != 9:  # some reports were never written (e.g. their alert task failed)
            path = report.write_report(result, api.data_dir / "reports", original_name=original)
            reports[i] = path.name
        names.append(original)
    return Files(tag, names, reports)


class Page(HTMLParser):
    """What a browser would build from the page: elements, the table's rows, links, inputs."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rows: list[list[str]] = []
        self.links: dict[str, str] = {}  # id or text -> href
        self._cell: list[str] | None = None
        self._in_body_row = False
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "tr":
            self.rows.append([])
        elif tag == "td":
            self._cell = []
        elif tag == "a":
            self._href = attributes.get("href") or ""
            self._link_id = attributes.get("id")
            self._text = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "a":
            self.links.setdefault(self._link_id or "".join(self._text).strip(), self._href)
            if self._cell is not None:
                self.rows[-1].append(f"href:{self._href}")

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        self._text.append(data)

    @property
    def table(self) -> list[list[str]]:
        return [r for r in self.rows if r]  # the header row has no td

    def hidden(self) -> dict[str, str]:
        return {
            a["name"]: a["value"]
            for t, a in self.tags
            if t == "input" and a.get("type") == "hidden"
        }


def _index(api: Api, ttl_s: int = 600, now: float | None = None, **filters) -> str:
    url = report_links.index_url(
        f"{api.url}/reports", REPORT_LINK_KEY.encode(), ttl_s=ttl_s, now=now, **filters
    )
    return url.removeprefix(api.url)


def _get(api: Api, url: str, client=None) -> tuple[httpx.Response, Page]:
    answer = (client or api.anon).get(url)
    return answer, Page(answer.text)


def _follow(url: str, href: str) -> str:
    """The href as the browser resolves it against the page's URL."""
    return urljoin(f"http://x{url}", href).removeprefix("http://x")


def test_the_index_lists_files_newest_first_with_counts_issue_types_and_reports(api, files):
    answer, page = _get(api, _index(api, file=files.tag))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    rows = page.table
    assert len(rows) == 50
    first = rows[0]  # i = 119: high, out_of_range + missing_column
    assert first[0] == files.names[119]
    assert first[1] == (BASE + timedelta(minutes=119)).strftime("%Y-%m-%d %H:%M:%S")
    assert first[2:6] == ["high", "50", "35", "15"]
    assert first[6] == "missing_column, out_of_range"
    assert first[7] == "none"  # its report was never written: no link to a 404
    assert first[-1] == SCHEMA_VERSION.short  # the schema version that judged it (last)
    times = [r[1] for r in rows]
    assert times == sorted(times, reverse=True)
    second = rows[1]  # i = 118, report written
    assert second[7].startswith(f"href:{quote(files.reports[118])}?expires=")
    assert second[-1] == "-"  # no version recorded
    assert f"{N_FILES} files match" in answer.text


def test_every_report_link_of_the_page_opens_its_report_without_a_token(api, files):
    url = _index(api, file=files.tag, ttl_s=900)
    _, page = _get(api, url)
    expires = _query(url)["expires"]
    hrefs = [r[7].removeprefix("href:") for r in page.table if r[7].startswith("href:")]
    assert len(hrefs) == 45
    for href in hrefs[:5]:
        assert _query(href)["expires"] == expires  # never longer than the index link
        opened = api.anon.get(_follow(url, href))
        assert opened.status_code == 200 and "Data quality report" in opened.text


def test_pages_follow_one_another_without_gap_or_repeat_and_keep_the_signature(api, files):
    url = _index(api, file=files.tag)
    seen: list[str] = []
    pages = 0
    while url:
        answer, page = _get(api, url)
        assert answer.status_code == 200, answer.text
        seen += [r[0] for r in page.table]
        pages += 1
        older = page.links.get("older")
        if older:
            assert _query(older)["sig"] == _query(url)["sig"] and "file" in _query(older)
        url = _follow(url, older) if older else None
    assert pages == 3
    assert seen == list(reversed(files.names))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"criticality": ["high"]}, lambda i: i % 4 == 3),
        ({"criticality": ["medium", "high"]}, lambda i: i % 4 >= 2),
        ({"issue_type": "out_of_range"}, lambda i: i % 4 in (1, 3)),
        ({"issue_type": "missing_column", "criticality": ["high"]}, lambda i: i % 4 == 3),
        ({"issue_type": "no_such_type"}, lambda i: False),
        # Minutes 10 to 19: a datetime start (inclusive) and a datetime end (inclusive).
        ({"start": "2026-01-01T00:10:00Z", "end": "2026-01-01T00:19:00"}, lambda i: 10 <= i <= 19),
        ({"start": "2026-01-01T01:00:00+01:00", "end": "2026-01-01"}, lambda i: True),
        ({"start": "2026-01-02"}, lambda i: False),
    ],
)
def test_filters_narrow_the_list(api, files, filters, expected):
    answer, page = _get(api, _index(api, file=files.tag, **filters) + "&limit=500")
    assert answer.status_code == 200, answer.text
    want = [files.names[i] for i in reversed(range(N_FILES)) if expected(i)]
    assert [r[0] for r in page.table] == want
    assert f"{len(want)} file" in answer.text


def test_the_file_filter_is_a_case_insensitive_substring_with_wildcards_taken_literally(api, files):
    def found(text: str) -> list[str]:
        answer, page = _get(api, _index(api, file=text, ttl_s=60) + "&limit=500")
        assert answer.status_code == 200, answer.text
        return [r[0] for r in page.table]

    assert found(f"BATCH {files.tag.upper()} 11") == [files.names[i] for i in range(119, 109, -1)]
    assert found(f"{files.tag}-007") == [files.names[7]]  # the claimed (safe) name works too
    assert found(f"%_&amp;{files.tag}") == [files.names[7]]
    assert found(f"{files.tag}_") == []  # "_" is not "any character"


def test_a_hostile_file_name_is_shown_as_text_and_never_becomes_markup(api, files):
    answer, page = _get(api, _index(api, file=f"{files.tag}-007"))
    assert answer.status_code == 200
    assert [r[0] for r in page.table] == [files.names[7]]  # the exact name, as text
    assert not [t for t, _ in page.tags if t in ("script", "img", "iframe", "object")]
    assert all(not k.startswith("on") for _, a in page.tags for k in a)
    # Typed into the filter form, it comes back as the input's value, still text.
    _, echoed = _get(api, _index(api, file=HOSTILE))
    values = [a.get("value") for t, a in echoed.tags if t == "input" and a.get("name") == "file"]
    assert values == [HOSTILE]
    assert not [t for t, _ in echoed.tags if t in ("script", "img")]


def test_the_page_has_the_reports_security_headers_and_a_form_that_keeps_the_signature(api, files):
    url = _index(api, file=files.tag, criticality=["low"])
    answer, page = _get(api, url)
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp  # so no script at all
    assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["cache-control"] == "private, no-store"
    q = _query(url)
    assert page.hidden() == {"expires": q["expires"][0], "sig": q["sig"][0]}
    forms = [a for t, a in page.tags if t == "form"]
    assert forms == [{"method": "get", "action": "", "id": "filters"}]
    checked = [a["value"] for t, a in page.tags if t == "input" and "checked" in a]
    assert checked == ["low"]


def test_a_link_that_is_expired_forged_or_for_a_report_is_a_403_that_says_what_to_do(api, files):
    good = _index(api)
    q = _query(good)
    report_sig = _query(report_links.signed_url("/reports", "x.html", REPORT_LINK_KEY.encode()))
    refused = {
        "expired": _index(api, ttl_s=60, now=time.time() - 120),
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "expiry moved": f"/reports/?expires={int(q['expires'][0]) + 1}&sig={q['sig'][0]}",
        "other key": report_links.index_url("/reports", b"not-the-key"),
        "a report's signature": f"/reports/?{urlencode({k: v[0] for k, v in report_sig.items()})}",
        "no signature": f"/reports/?expires={q['expires'][0]}",
        "garbage": "/reports/?expires=soon&sig=%00%ff",
    }
    for why, url in refused.items():
        answer = api.anon.get(url)
        assert answer.status_code == 403, why
        assert "not valid or has expired" in answer.text and "newer Teams alert" in answer.text, why
        assert "<table" not in answer.text and not Page(answer.text).hidden(), why
        assert answer.headers["content-security-policy"].startswith("default-src 'none'"), why


def test_without_a_link_a_token_is_needed(api, files):
    assert api.anon.get("/reports/").status_code == 401
    bad = api.anon.get("/reports/", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    for client in (api.reader, api.client, api.scheduler):
        answer, page = _get(api, f"/reports/?file={files.tag}", client)
        assert answer.status_code == 200 and len(page.table) == 50
        # Its links are signed, so that they open in a browser too.
        assert page.hidden().keys() == {"expires", "sig"}
    # Without the trailing slash: redirected to the index, the signature kept.
    plain = api.anon.get(_index(api).replace("/reports/?", "/reports?"), follow_redirects=True)
    assert plain.status_code == 200 and "files match" in plain.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("criticality=urgent", "criticality 'urgent' is not a level: use none, low, medium, high"),
        ("start=yesterday", "start must be an ISO date"),
        ("start=2026-01-02&end=2026-01-01", "start (2026-01-02) is after end (2026-01-01)"),
        ("file=a%00b", "file contains a control character"),
        (f"file={'x' * 201}", "file is longer than 200 characters"),
        ("limit=0", "limit must be a whole number from 1 to 500"),
        ("cursor=not-ours", "cursor is not one this service issued"),
    ],
)
def test_a_filter_the_page_cannot_use_is_a_422_page_saying_which(api, query, message):
    answer = api.anon.get(f"{_index(api)}&{query}")
    assert answer.status_code == 422, answer.text
    assert message in html_lib.unescape(answer.text)
    assert Page(answer.text).hidden().keys() == {"expires", "sig"}  # the form still works


# --- Grafana's table of files: the links the ingestion stores -----------------------------------
def _encode_uri_strict(value: str) -> str:
    """Grafana's default formatting of a variable in a data link (`encodeURIStrict`: the
    browser's encodeURI, plus ! ' ( ) *), applied to `${__data.fields.x}` and `${__value.raw}`."""
    return quote(value, safe=";,/?:@&=+$#")


def _grafana_links(panel: dict, column: str, row: dict[str, Any]) -> dict[str, str]:
    """The data links of a table column as Grafana builds them for one row (title -> href)."""
    links = {}
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"] != {"id": "byName", "options": column}:
            continue
        for prop in override["properties"]:
            for link in prop["value"] if prop["id"] == "links" else []:
                href = re.sub(
                    r"\$\{__data\.fields\.(\w+)\}",
                    lambda m: _encode_uri_strict(row[m.group(1)] or ""),
                    link["url"],
                )
                links[link["title"]] = href.replace(
                    "${__value.raw}", _encode_uri_strict(str(row[column]))
                )
    return links


def test_grafanas_table_links_open_the_report_and_the_index_without_a_token(api):
    from pipelines.config import load_pipeline_settings
    from pipelines.ingestion import tasks
    from tests.grafana import grafana_sql

    ps = load_pipeline_settings(
        dict(os.environ)
        | {"DATABASE_URL": api.database_url, "DATA_DIR": str(api.data_dir),
           "REPORT_BASE_URL": f"{api.url}/reports"}
    )  # fmt: skip
    claimed = f"grafana-{uuid.uuid4().hex[:8]}.csv"
    result = ValidationResult(
        file=claimed, rows_total=10, rows_invalid=6, criticality=Criticality.HIGH,
        issues=(Issue("out_of_range", "age", "row", 6, "out of range", "-5"),),
    )  # fmt: skip
    report.write_report(result, ps.core.reports_dir)
    tasks.save_statistics(ps, result.to_dict())  # what the ingest_data task calls

    dashboard = next(
        d for d in grafana_sql.load_dashboards().values() if d["uid"] == "mlsys-data-quality"
    )
    panel = next(p for p in grafana_sql.panels(dashboard) if p["id"] == 7)
    sql = grafana_sql.expand(
        panel["targets"][0]["rawSql"],
        grafana_sql.TimeRange.last("1h", now=datetime.now(UTC)),
        variables=grafana_sql.dashboard_variables(dashboard),
    )
    with psycopg2.connect(psycopg2_dsn(api.database_url)) as conn, conn.cursor() as cur:
        found = grafana_sql.run(cur, sql)
    conn.close()
    names = [c.name for c in found.columns]
    row = next(dict(zip(names, r, strict=True)) for r in found.rows if r[1] == claimed)
    hidden = {
        o["matcher"]["options"]
        for o in panel["fieldConfig"]["overrides"]
        if {"id": "custom.hidden", "value": True} in o["properties"]
    }
    assert hidden == {"report_link", "index_link"}  # carried, not shown

    opened = api.anon.get(_grafana_links(panel, "report", row)["Open the data-quality report"])
    assert opened.status_code == 200 and claimed in opened.text
    for column in ("file", "criticality"):
        index = api.anon.get(_grafana_links(panel, column, row)["Index of all reports"])
        assert index.status_code == 200 and claimed in index.text
    by_level = _grafana_links(panel, "criticality", row)[
        "Files of this criticality in the index of reports"
    ]
    answer, page = _get(api, by_level.removeprefix(api.url))
    assert answer.status_code == 200
    assert {r[2] for r in page.table} == {"high"} and claimed in answer.text


def test_in_a_real_browser_the_form_filters_without_script_and_a_hostile_name_stays_text(
    api, files
):
    """Headless Chromium: the page renders with its styles, a hostile file name runs nothing,
    the plain GET form filters under the policy (form-action 'self'), and a report link opens
    the report without a token."""
    from playwright.sync_api import sync_playwright

    from tests.frontend.test_browser import CHROMIUM, CHROMIUM_ARGS

    console: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: console.append(m.text))
            page.on("dialog", lambda d: console.append(f"dialog: {d.message}"))
            page.goto(f"{api.url}{_index(api, file=files.tag)}")
            assert page.title() == "Data-quality reports"  # the hostile name's script did not run
            assert page.locator("#reports tbody tr").count() == 50
            badge = page.locator("#reports .badge.high").first
            assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(198, 40, 40)"
            # The filter form, as a person uses it: tick "high", type part of a name, submit.
            page.check("input[name=criticality][value=high]")
            page.fill("input[name=file]", f"{files.tag} 1")
            page.click("button[type=submit]")
            page.wait_for_load_state()
            cells = page.locator("#reports tbody tr td:first-child").all_inner_texts()
            want = [files.names[i] for i in range(N_FILES - 1, 99, -1) if i % 4 == 3]
            assert cells == want
            # The hostile name, found through the form, is shown as the text it is.
            page.fill("input[name=file]", f"{files.tag}-007")
            page.uncheck("input[name=criticality][value=high]")
            page.click("button[type=submit]")
            page.wait_for_load_state()
            assert page.locator("#reports tbody td code").first.inner_text() == files.names[7]
            assert (
                page.locator("img, script").count() == 0 and page.title() == "Data-quality reports"
            )
            page.click("#reports a")  # its report, signed by the page
            page.wait_for_load_state()
            assert page.title().startswith("Data quality:")
        finally:
            browser.close()
    assert console == []  # no policy violation, no dialog, no error
