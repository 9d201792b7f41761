"""A real browser on the running app: headless Chromium (Debian's package) driven by Playwright.

The UI runs as `make up` runs it (ops.supervisor starting frontend/launch.py's SERVICE) and talks
to the real service; the test fills the form, uploads CSV files and filters past predictions,
saving a screenshot of each step under test-artifacts/<test name>/.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mlsys import model
from mlsys.config import load_settings
from mlsys.features import get_feature_spec
from ops import pg
from ops import supervisor as ops
from tests.frontend.conftest import (
    INVALID_CELLS,
    count_predictions,
    post_scheduled,
    with_invalid_rows,
)

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def ui_url(api_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Streamlit app, started by `make up`'s own code (ops.supervisor) on a free port."""
    from frontend.launch import SERVICE

    env = {
        "API_URL": api_url,
        "UI_PORT": str(pg.free_port()),
        "UI_BATCH_RECORDS": "25",  # 1000 rows: 40 requests, time to interrupt them
        "VAR_DIR": str(tmp_path_factory.mktemp("ui-var")),  # pid and log files
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in env.items():
            mp.setenv(name, value)
        settings = load_settings()
        ops.start_service(settings, SERVICE)
        url = SERVICE.url(settings)
        log = ops.log_dir(settings) / f"{SERVICE.name}.log"
        try:
            deadline = time.monotonic() + 60
            while True:
                with (
                    contextlib.suppress(OSError),
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer,
                ):
                    if answer.status == 200:
                        break
                assert time.monotonic() < deadline, f"streamlit not healthy: {log.read_text()}"
                time.sleep(0.3)
            yield url
        finally:
            ops.stop_service(settings, SERVICE.name, grace_s=20)


def wait_until_idle(page) -> None:
    """Wait until Streamlit has finished running the page (its own end-to-end tests' signal)."""
    from playwright.sync_api import expect

    page.wait_for_timeout(300)  # a click's rerun starts after a round trip
    expect(
        page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    ).to_have_count(1, timeout=WAIT_MS)


@pytest.fixture
def browser_page(request: pytest.FixtureRequest, artifacts: Path):
    from playwright.sync_api import sync_playwright

    # A failure, not a skip: a missing browser must not turn this test green in CI.
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make setup` (scripts/system_deps.sh)")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        # Tall enough that each step's result is on the screenshot (Streamlit scrolls inside
        # its own container, so a "full page" screenshot would not show more).
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        page.set_default_timeout(WAIT_MS)
        yield page
        if getattr(request.node, "failed", False):
            page.screenshot(path=artifacts / "failure.png")  # what the page showed instead
        browser.close()


def test_browser_predict_form_upload_csv_and_filter_past_predictions(
    ui_url, api_url, ui_db, browser_page, artifacts, settings, trained_model_dir, tmp_path
):
    from playwright.sync_api import expect

    page = browser_page
    expect.set_options(timeout=WAIT_MS)
    spec = get_feature_spec()
    applications = pd.read_csv(settings.dataset_path).drop(columns=[settings.target_column])
    loaded = model.load(trained_model_dir)
    proba = loaded.predict_proba(model.encode_frame(applications, spec))
    labels = [loaded.label(p) for p in proba]

    # 1. The form: every field from the schema, filled as a user does, then Predict.
    page.goto(ui_url)
    expect(page.get_by_role("heading", name="Predict credit risk")).to_be_visible()
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)  # a user's view
    record = applications.iloc[0].to_dict()
    for feature in spec.features:
        value = record[feature.name]
        if feature.is_categorical:
            page.get_by_role("combobox", name=feature.name, exact=True).click()
            page.get_by_role("option", name=value, exact=True).click()
        else:
            page.locator(f'input[aria-label="{feature.name}"]').fill(str(value))
    page.screenshot(path=artifacts / "01-form-filled.png", full_page=True)
    page.get_by_role("button", name="Predict", exact=True).click()
    result = page.get_by_text("Prediction: ")
    expect(result).to_be_visible()
    expect(result).to_contain_text(f"Prediction: {labels[0]} (")
    expect(result).to_contain_text(f", probability of class 1: {proba[0]:.2f}.")
    page.screenshot(path=artifacts / "02-form-predicted.png", full_page=True)
    assert count_predictions(ui_db, "webapp") == 1

    # 2. The whole data set as a CSV, sent in chunks of 25 on the button. Meanwhile the user
    #    submits the form twice: each click makes Streamlit stop the page and run it again,
    #    and the upload must resume where it stopped, neither half-sent nor sent twice.
    good = tmp_path / "applications.csv"
    applications.to_csv(good, index=False)
    page.locator('input[type="file"]').set_input_files(good)
    expect(page.get_by_text("1000 rows, all valid")).to_be_visible()
    page.get_by_role("button", name="Predict 1000 rows").click()
    done = page.get_by_text("Predicted 1000 rows.")
    # The sending has started (its progress bar; get_by_text("Sent ") would also match the
    # caption's "sent"): only then may other clicks interrupt it. A click arriving before the
    # button's own run has recorded the job would make Streamlit drop the button's press.
    expect(page.get_by_test_id("stProgress").or_(done).first).to_be_visible()
    for _ in range(2):
        page.get_by_role("button", name="Predict", exact=True).click()  # one more prediction
        page.wait_for_timeout(300)
    expect(done).to_be_visible(timeout=120_000)
    wait_until_idle(page)
    positives = labels.count("1")
    expect(page.get_by_test_id("stMetric").filter(has_text="class 1 (positive)")).to_contain_text(
        str(positives)
    )
    expect(page.get_by_test_id("stMetric").filter(has_text="class 0 (negative)")).to_contain_text(
        str(1000 - positives)
    )
    expect(page.get_by_role("button", name="Download the results (CSV)")).to_be_visible()
    page.screenshot(path=artifacts / "03-csv-predicted.png", full_page=True)
    # Every application of the file stored exactly once; only the form's one repeats (step 1,
    # the file, and up to two submits: Streamlit may fold two quick submits into one rerun).
    assert not applications.duplicated().any()
    with ui_db.cursor() as cur:
        cur.execute("SELECT features, count(*) FROM predictions GROUP BY features")
        stored = {json.dumps(f, sort_keys=True): n for f, n in cur.fetchall()}
    form_key = json.dumps({k: (v if isinstance(v, str) else int(v)) for k, v in record.items()},
                          sort_keys=True)  # fmt: skip
    assert 3 <= stored.pop(form_key) <= 4  # step 1, the file's row, one or two submits
    assert len(stored) == 999 and set(stored.values()) == {1}

    # 3. A CSV with a column missing: refused with its name, nothing sent.
    before_bad = count_predictions(ui_db)
    bad = tmp_path / "no-age.csv"
    applications.iloc[:10].drop(columns="age").to_csv(bad, index=False)
    page.locator('input[type="file"]').set_input_files(bad)
    expect(page.get_by_text("missing column: age")).to_be_visible()
    expect(page.get_by_role("button", name="Predict 10 rows")).to_have_count(0)
    page.screenshot(path=artifacts / "04-csv-refused.png", full_page=True)
    assert count_predictions(ui_db) == before_bad

    # 4. Past predictions: all of them, then only the scheduled ones.
    post_scheduled(api_url, "part-0007.csv", applications.iloc[100:103].to_dict("records"))
    page.get_by_role("link", name="Past predictions").click()
    expect(page.get_by_role("heading", name="Past predictions")).to_be_visible()
    expect(page.get_by_text(f"{before_bad + 3} predictions (all)")).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_be_visible()
    grid = page.get_by_test_id("stDataFrame").locator('[role="grid"]')
    expect(grid).to_have_attribute("aria-rowcount", "51")  # over 1000 rows, 50 per page
    page.screenshot(path=artifacts / "05-past-all.png", full_page=True)
    page.get_by_text("scheduled predictions", exact=True).click()
    expect(page.get_by_text("3 predictions (scheduled predictions)")).to_be_visible()
    expect(page.get_by_text("Page 1: rows 1 to 3, newest first.")).to_be_visible()
    grid = page.get_by_test_id("stDataFrame").locator('[role="grid"]')
    expect(grid).to_have_attribute("aria-rowcount", "4")  # the header and three rows
    expect(grid.locator("td", has_text="part-0007.csv")).to_have_count(3)
    expect(grid.locator("td", has_text="webapp")).to_have_count(0)
    page.screenshot(path=artifacts / "06-past-scheduled.png", full_page=True)


def test_browser_invalid_rows_are_shown_downloaded_and_the_valid_ones_predicted(
    ui_url, ui_db, browser_page, artifacts, applications, tmp_path
):
    """Issue 14: 30 rows of which 11 are invalid. The 11 are shown with their reasons and
    downloaded; the 19 valid ones are predicted on the button, and the results keep all 30."""
    from playwright.sync_api import expect

    page = browser_page
    expect.set_options(timeout=WAIT_MS)
    frame = with_invalid_rows(applications)
    mixed = tmp_path / "mixed.csv"
    frame.to_csv(mixed, index=False)
    valid = [r for r in range(1, 31) if r not in INVALID_CELLS]

    page.goto(ui_url)
    page.locator('input[type="file"]').set_input_files(mixed)
    expect(page.get_by_text("11 of 30 rows have invalid values")).to_be_visible()
    expect(
        page.get_by_text("Rows are numbered from 1, the first record after the header")
    ).to_be_visible()
    grid = page.get_by_test_id("stDataFrame").locator('[role="grid"]')
    values = sum(len(cells) for cells in INVALID_CELLS.values())
    expect(grid).to_have_attribute("aria-rowcount", str(values + 1))  # the header and 12
    for value in {v for cells in INVALID_CELLS.values() for v in cells.values() if v}:
        expect(grid.locator("td", has_text=value).first).to_be_attached()
    page.screenshot(path=artifacts / "01-invalid-rows-listed.png", full_page=True)

    with page.expect_download() as caught:
        page.get_by_role(
            "button", name="Download the 11 invalid rows with their reasons (CSV)"
        ).click()
    download = pd.read_csv(caught.value.path(), dtype=str, keep_default_na=False)
    assert [int(r) for r in download["row"]] == sorted(INVALID_CELLS)
    for line in download.to_dict("records"):
        cells = INVALID_CELLS[int(line["row"])]
        assert all(f"{column}: " in line["reason"] for column in cells), line
        assert {c: line[c] for c in cells} == cells  # the values as in the file
    assert count_predictions(ui_db) == 0  # nothing is sent before the button

    page.get_by_role("button", name="Predict the 19 valid rows").click()
    expect(page.get_by_text("Predicted 19 rows.")).to_be_visible()
    expect(page.get_by_text("11 rows were not predicted because of invalid values")).to_be_visible()
    wait_until_idle(page)
    results_grid = page.get_by_test_id("stDataFrame").last.locator('[role="grid"]')
    expect(results_grid).to_have_attribute("aria-rowcount", "31")  # the header and every row
    expect(results_grid.locator("td", has_text="invalid, not sent")).not_to_have_count(0)
    page.get_by_test_id("stDataFrame").last.scroll_into_view_if_needed()
    page.screenshot(path=artifacts / "02-valid-rows-predicted.png", full_page=True)
    with ui_db.cursor() as cur:
        cur.execute("SELECT source, features FROM predictions ORDER BY id")
        stored = cur.fetchall()
    assert [s for s, _ in stored] == ["webapp"] * 19
    assert [f for _, f in stored] == [
        {k: (v if isinstance(v, str) else int(v)) for k, v in applications.iloc[r - 1].items()}
        for r in valid
    ]

    with page.expect_download() as caught:
        page.get_by_role("button", name="Download the results (CSV)").click()
    results = pd.read_csv(caught.value.path(), keep_default_na=False)
    assert list(results["row"]) == list(range(1, 31))  # joins back to the file
    by_status = results.groupby("status")["row"].apply(list).to_dict()
    assert by_status == {"predicted": valid, "invalid, not sent": sorted(INVALID_CELLS)}
    assert (results.loc[results["status"] == "predicted", "reason"] == "").all()
    assert results.loc[results["row"] == 9, "reason"].item().startswith("purpose: 'yacht' is not")
