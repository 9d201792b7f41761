"""Access control of the real service: every route with every role, tokens from every place.

Roles and what they may do: mlsys/api_auth.py and docs/api.md.
"""

from __future__ import annotations

import hmac
import stat
import time
import uuid
from pathlib import Path

import httpx
import pytest

from mlsys import report_links
from mlsys.api_auth import TOKEN_NAMES, Role, ensure_local_credentials
from mlsys.credentials import SecretError
from ops import pg
from service import auth, launch
from service.openapi_docs import example_record
from tests.conftest import API_TOKENS, REPORT_LINK_KEY, auth_headers
from tests.service.conftest import Api, service_env, start_api

W, S, R, NONE, BAD = Role.WEBAPP, Role.SCHEDULER, Role.READER, None, "bad"
REPORT = "auth-report.html"


def _scheduled(record: dict) -> dict:
    return {
        "source": "scheduled",
        "source_file": f"auth-{uuid.uuid4().hex}.csv",
        "source_rows": [0],
        "records": [record],
    }


def _headers(who) -> dict[str, str]:
    if who is NONE:
        return {}
    if who == BAD:
        return {"Authorization": f"Bearer {API_TOKENS[Role.WEBAPP]}x"}
    return auth_headers(who)


# (route, who) -> status. Every route of the service, every role, no credential and a wrong one.
TABLE = [
    *[(("POST", "/predict", "webapp"), who, code) for who, code in
      [(W, 200), (S, 403), (R, 403), (NONE, 401), (BAD, 401)]],
    *[(("POST", "/predict", "scheduled"), who, code) for who, code in
      [(W, 403), (S, 200), (R, 403), (NONE, 401), (BAD, 401)]],
    *[(("GET", "/past-predictions", None), who, code) for who, code in
      [(W, 200), (S, 403), (R, 200), (NONE, 401), (BAD, 401)]],
    *[(("GET", "/model-info", None), who, code) for who, code in
      [(W, 200), (S, 200), (R, 200), (NONE, 401), (BAD, 401)]],
    *[(("GET", f"/reports/{REPORT}", None), who, code) for who, code in
      [(W, 200), (S, 200), (R, 200), (NONE, 401), (BAD, 401)]],
    *[(("GET", "/schema-proposals", None), who, code) for who, code in
      [(W, 200), (S, 403), (R, 200), (NONE, 401), (BAD, 401)]],
    # Probes and the API's own documentation are open, and say nothing secret.
    *[(("GET", path, None), who, 200) for path in ["/health", "/livez", "/readyz", "/openapi.json", "/docs"]
      for who in (W, S, R, NONE, BAD)],
]  # fmt: skip


@pytest.mark.parametrize(("route", "who", "status"), TABLE, ids=lambda v: str(v))
def test_each_role_may_do_what_docs_api_md_says(api: Api, record, route, who, status):
    method, path, source = route
    (api.data_dir / "reports" / REPORT).write_text("<html><body>report</body></html>")
    before = api.count()
    if source is None:
        answer = api.anon.request(method, path, headers=_headers(who))
    else:
        body = (
            {"source": "webapp", "records": [record]} if source == "webapp" else _scheduled(record)
        )
        answer = api.anon.post(path, json=body, headers=_headers(who))
    assert answer.status_code == status, answer.text
    if status == 401:
        assert answer.headers["www-authenticate"].startswith("Bearer")
        assert answer.json()["detail"]
    if status == 403:
        assert "may not" in answer.json()["detail"]
    # Stored only by an allowed POST; a refused one stores nothing.
    assert api.count() == before + (1 if method == "POST" and status == 200 else 0)
    if answer.headers.get("content-type", "").startswith("application/json"):
        for token in API_TOKENS.values():
            assert token not in answer.text


def test_other_schemes_and_malformed_headers_are_401(api: Api):
    token = API_TOKENS[Role.READER]
    for value in [f"Basic {token}", token, "Bearer", f"Bearer {token[:-1]}", "Bearer é".encode()]:
        answer = api.anon.get("/model-info", headers={"Authorization": value})
        assert answer.status_code == 401, value


def test_the_openapi_document_shows_the_scheme(api: Api):
    doc = api.anon.get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": auth.SCHEME_DESCRIPTION,
    }
    for path, method in [
        ("/predict", "post"),
        ("/past-predictions", "get"),
        ("/model-info", "get"),
        ("/reports/{name}", "get"),
    ]:
        operation = doc["paths"][path][method]
        assert {"bearer": []} in operation["security"], path
        assert {"401", "403"} <= set(operation["responses"]), path
    for path in ["/health", "/livez", "/readyz"]:
        assert "security" not in doc["paths"][path]["get"]
    headers = [p["name"] for p in doc["paths"]["/predict"]["post"]["parameters"]]
    assert "Idempotency-Key" in headers


def test_tokens_are_compared_in_constant_time_against_every_role(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((type(a), type(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    checker = auth.Authenticator()
    checker.load(API_TOKENS)
    assert checker.role_of(API_TOKENS[Role.WEBAPP]) is Role.WEBAPP
    # every role's token compared (no early exit that would time which role matched), as bytes
    assert calls == [(bytes, bytes)] * len(Role)
    calls.clear()
    assert checker.role_of("wrong") is None
    assert len(calls) == len(Role)
    assert auth.Authenticator().role_of(API_TOKENS[Role.WEBAPP]) is None  # nothing loaded


# --- where the tokens come from --------------------------------------------------------------
def test_tokens_come_from_the_environment_a_file_or_var_dir(tmp_path: Path):
    var = tmp_path / "var"
    ensure_local_credentials(var)
    mounted = tmp_path / "webapp-token"
    mounted.write_text("from-a-mounted-file\n")
    env = {
        TOKEN_NAMES[Role.WEBAPP] + "_FILE": str(mounted),
        TOKEN_NAMES[Role.SCHEDULER]: "from-the-environment",
    }
    tokens = auth.load_tokens(var, env)
    assert tokens[Role.WEBAPP] == "from-a-mounted-file"
    assert tokens[Role.SCHEDULER] == "from-the-environment"
    generated = (var / "secrets" / "api_token_reader").read_text()
    assert tokens[Role.READER] == generated and len(generated) >= 40


def test_generated_credentials_are_private_and_kept(tmp_path: Path):
    var = tmp_path / "var"
    line = ensure_local_credentials(var)
    assert "api_token_webapp" in line
    files = sorted((var / "secrets").iterdir())
    assert {f.name for f in files} == {
        n.lower() for n in [*TOKEN_NAMES.values(), "REPORT_LINK_KEY"]
    }
    assert stat.S_IMODE((var / "secrets").stat().st_mode) == 0o700
    values = {}
    for f in files:
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        values[f.name] = f.read_text()
        assert values[f.name] not in line
    assert len(set(values.values())) == len(values)  # one secret per role
    ensure_local_credentials(var)  # `make up` again: the same credentials
    assert {f.name: f.read_text() for f in files} == values


def test_missing_shared_or_placeholder_tokens_are_refused(tmp_path: Path):
    with pytest.raises(SecretError, match="API_TOKEN_WEBAPP is not set"):
        auth.load_tokens(tmp_path, {})
    same = dict.fromkeys(TOKEN_NAMES.values(), "one-token-for-all-roles")
    with pytest.raises(SecretError, match="same token") as exc:
        auth.load_tokens(tmp_path, same)
    assert "one-token-for-all-roles" not in str(exc.value)
    with pytest.raises(SecretError, match="placeholder"):
        auth.load_tokens(tmp_path, {**same, TOKEN_NAMES[Role.WEBAPP]: "changeme"})


def test_the_service_reads_its_tokens_from_files(tmp_path: Path, trained_model_dir, api: Api, spec):
    """As `make up` hands them over: VAR_DIR/secrets (generated) and a NAME_FILE (compose)."""
    var = tmp_path / "var"
    ensure_local_credentials(var)
    mounted = tmp_path / "webapp-token"
    mounted.write_text("webapp-token-from-a-file")
    blank = dict.fromkeys(TOKEN_NAMES.values(), "")  # this session's env tokens unset
    env = service_env(
        api.database_url, trained_model_dir, tmp_path / "data", pg.free_port(),
        VAR_DIR=str(var), **blank, API_TOKEN_WEBAPP_FILE=str(mounted),
    )  # fmt: skip
    proc, base = start_api(tmp_path, env)
    try:
        reader = (var / "secrets" / "api_token_reader").read_text()
        with httpx.Client(base_url=base, timeout=30) as client:
            ok = client.post(
                "/predict",
                json={"source": "webapp", "records": [example_record(spec)]},
                headers={"Authorization": "Bearer webapp-token-from-a-file"},
            )
            assert ok.status_code == 200, ok.text
            headers = {"Authorization": f"Bearer {reader}"}
            assert client.get("/past-predictions", headers=headers).status_code == 200
            # the session's env tokens are not this service's
            assert client.get("/model-info", headers=auth_headers(Role.READER)).status_code == 401
    finally:
        launch.stop(proc)


def test_the_service_refuses_to_start_without_its_tokens(tmp_path: Path, trained_model_dir, api):
    env = service_env(
        api.database_url, trained_model_dir, tmp_path / "data", pg.free_port(),
        VAR_DIR=str(tmp_path / "empty-var"), **dict.fromkeys(TOKEN_NAMES.values(), ""),
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="API_TOKEN_WEBAPP is not set"):
        start_api(tmp_path, env)


# --- reports: headers, signed links ----------------------------------------------------------
def test_reports_forbid_scripts_and_sniffing(api: Api):
    (api.data_dir / "reports" / REPORT).write_text("<html><body>report</body></html>")
    answer = api.reader.get(f"/reports/{REPORT}")
    assert answer.status_code == 200
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp  # so no script at all
    assert "frame-ancestors 'none'" in csp and "form-action 'none'" in csp
    assert answer.headers["x-content-type-options"] == "nosniff"


def _link(api: Api, name: str, **kwargs) -> str:
    return report_links.signed_url(
        f"{api.url}/reports", name, REPORT_LINK_KEY.encode(), **kwargs
    ).removeprefix(api.url)


def test_a_signed_link_opens_a_report_without_a_token_until_it_expires(api: Api):
    reports = api.data_dir / "reports"
    (reports / REPORT).write_text("<html><body>report</body></html>")
    (reports / "other.html").write_text("<html><body>other</body></html>")
    link = _link(api, REPORT)
    ok = api.anon.get(link)
    assert ok.status_code == 200 and "report" in ok.text
    assert ok.headers["referrer-policy"] == "no-referrer"
    path, query = link.split("?")
    refused = {
        "expired": _link(api, REPORT, ttl_s=60, now=time.time() - 120),
        "for another report": f"/reports/other.html?{query}",
        "tampered": link[:-2] + ("AA" if not link.endswith("AA") else "BB"),
        "no signature": f"{path}?{query.split('&')[0]}",
        "other key": report_links.signed_url("/reports", REPORT, b"not-the-key"),
        "too far ahead": f"{path}?expires=99999999999&sig=x",
    }
    for why, url in refused.items():
        answer = api.anon.get(url)
        assert answer.status_code == 401, why
        assert "not valid or has expired" in answer.json()["detail"], why


def test_report_links_sign_name_and_expiry():
    key = b"k" * 32
    url = report_links.signed_url("http://h/reports/", "a b.html", key, ttl_s=10, now=1000)
    assert url.startswith("http://h/reports/a%20b.html?expires=1010&sig=")
    sig = url.rsplit("sig=", 1)[1]
    assert report_links.verify("a b.html", "1010", sig, key, now=1009)
    assert not report_links.verify("a b.html", "1010", sig, key, now=1011)  # expired
    assert not report_links.verify("a b.html", "1011", sig, key, now=1000)  # expiry changed
    assert not report_links.verify("a.html", "1010", sig, key, now=1000)
    assert not report_links.verify("a b.html", "1010", sig, b"other", now=1000)
    for bad in ["", "-5", "1e3", "1010 ", "9" * 20]:
        assert not report_links.verify("a b.html", bad, sig, key, now=1000)
    with pytest.raises(ValueError):
        report_links.signed_url("http://h", "a.html", key, ttl_s=0)


def test_a_report_with_the_policy_renders_with_its_styles_and_runs_no_script(api: Api):
    """A real browser: the template's inline styles apply, a script that slipped into the
    report (as a bad row's value would, were it not escaped) does not run."""
    from playwright.sync_api import sync_playwright

    from mlsys.rowchecks import Reason
    from pipelines.ingestion import report
    from pipelines.ingestion.result import Criticality, ValidationResult
    from tests.frontend.test_browser import CHROMIUM, CHROMIUM_ARGS

    result = ValidationResult(
        file="csp--1.csv",
        rows_total=2,
        rows_invalid=1,
        criticality=Criticality.HIGH,
        sample=(Reason(1, "unknown_category", "housing", "x"),),
    )
    html = report.render_report(result).replace(
        "</body>", "<script>document.title = 'script ran'</script></body>"
    )
    (api.data_dir / "reports" / "csp.html").write_text(html)
    violations: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: violations.append(m.text))
            page.goto(f"{api.url}{_link(api, 'csp.html')}")
            assert page.title() == "Data quality: csp--1.csv"  # the script did not run
            badge = page.locator("#criticality")
            assert badge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(198, 40, 40)"
        finally:
            browser.close()
    refused = [v for v in violations if "Content Security Policy" in v]
    assert len(refused) == 1 and "script" in refused[0], violations


# --- no duplicate on resend -------------------------------------------------------------------
def test_a_chunk_resent_with_its_key_is_answered_already_stored(api: Api, spec):
    records = [example_record(spec, i) for i in range(3)]
    key = f"ui-{uuid.uuid4().hex}-0-3"
    headers = {"Idempotency-Key": key}
    first = api.client.post(
        "/predict", json={"source": "webapp", "records": records}, headers=headers
    )
    assert first.status_code == 200, first.text
    assert (first.json()["stored"], first.json()["already_stored"]) == (3, 0)
    before = api.count()
    again = api.client.post(
        "/predict", json={"source": "webapp", "records": records}, headers=headers
    )
    assert again.status_code == 200, again.text
    assert (again.json()["stored"], again.json()["already_stored"]) == (0, 3)
    assert again.json()["predictions"] == first.json()["predictions"]
    assert api.count() == before
    other = api.client.post(
        "/predict", json={"source": "webapp", "records": records[:2]}, headers=headers
    )
    assert other.status_code == 409 and "used before for other records" in other.json()["detail"]
    assert api.count() == before


@pytest.mark.parametrize("key", ["", "a b", "x" * 256, "é", "a\tb"])
def test_a_malformed_idempotency_key_is_refused(api: Api, record, key):
    before = api.count()
    answer = api.client.post(
        "/predict",
        json={"source": "webapp", "records": [record]},
        headers={"Idempotency-Key": key.encode()},
    )
    assert answer.status_code == 422, answer.text
    assert api.count() == before


def test_an_idempotency_key_is_only_for_webapp_rows(api: Api, record):
    answer = api.scheduler.post(
        "/predict", json=_scheduled(record), headers={"Idempotency-Key": uuid.uuid4().hex}
    )
    assert answer.status_code == 422 and "source_file" in answer.json()["detail"]
