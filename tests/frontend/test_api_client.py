"""The API client's parsing of the contract, its settings, and its failure when nothing answers.

Its calls of the running service are exercised in test_pages.py against a real uvicorn.
"""

from __future__ import annotations

import pytest

from frontend import api_client
from frontend.api_client import (
    ApiClient,
    ApiProtocolError,
    ApiRejected,
    ApiUnavailable,
    parse_model_info,
)
from frontend.config import load_ui_settings
from mlsys.config import ConfigError
from mlsys.features import Kind, get_feature_spec
from ops import pg
from tests.frontend.conftest import count_predictions


def test_model_info_features_become_the_cores_typed_features():
    spec = get_feature_spec()
    info = parse_model_info(
        {
            "version": "lgbm-1",
            "trained_at": "2026-11-26T07:00:00+00:00",
            "metrics": {"roc_auc": 0.75},
            "classes": {"positive": 1, "negative": 0},
            **spec.to_dict(),
        }
    )
    assert info.features == spec.features  # the same Feature objects the service validates with
    assert info.classes == ["0", "1"] and info.positive_class == "1"
    assert info.features[0].kind is Kind.CATEGORICAL


@pytest.mark.parametrize(
    "raw",
    [
        {"version": "v"},
        {"version": "v", "features": []},
        {"version": "v", "features": [{"name": "x", "kind": "complex"}]},
        {"version": "v", "features": [{"kind": "integer"}]},
    ],
)
def test_a_model_info_that_breaks_the_contract_is_a_clear_error(raw):
    with pytest.raises(ApiProtocolError):
        parse_model_info(raw)


def test_record_errors_and_fastapi_style_details_are_read():
    errors = api_client._record_errors(
        [{"record": 1, "field": "age", "value": -5, "message": "-5 is below the minimum 18"}]
    )
    assert errors[0].record == 1 and errors[0].field == "age" and errors[0].value == -5
    detail = [{"loc": ["body", "records"], "msg": "Field required", "type": "missing"}]
    assert api_client._detail_text(detail) == "records: Field required"
    assert api_client._detail_text("2 of 3 records are invalid") == "2 of 3 records are invalid"


def test_nothing_listening_is_api_unavailable_with_the_url():
    port = pg.free_port()
    with (
        ApiClient(f"http://127.0.0.1:{port}", timeout_s=5) as api,
        pytest.raises(ApiUnavailable) as caught,
    ):
        api.model_info()
    assert f"http://127.0.0.1:{port} is down or unreachable" in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_the_ui_sends_its_token_and_may_not_store_scheduled_rows(api_url, ui_db):
    """Against the real service: the UI's credential (API_TOKEN_WEBAPP, from the environment
    here, VAR_DIR/secrets under `make up`) reads and predicts, but stores no scheduled row;
    a wrong one is a message naming the variable."""
    import httpx

    from service.openapi_docs import example_record

    record = example_record(get_feature_spec())
    with ApiClient(api_url) as api:
        assert api.model_info().features
        assert api.predict([record]).stored == 1
        assert api.past_predictions(limit=1).items[0].features == record
    scheduled = httpx.post(
        f"{api_url}/predict",
        json={"source": "scheduled", "source_file": "ui.csv", "source_rows": [0],
              "records": [record]},
        headers={"Authorization": f"Bearer {api_client.webapp_token()}"},
    )  # fmt: skip
    assert scheduled.status_code == 403
    assert count_predictions(ui_db) == 1
    with ApiClient(api_url, token="not-the-token") as api, pytest.raises(ApiRejected) as caught:
        api.model_info()
    assert caught.value.status == 401 and "API_TOKEN_WEBAPP" in str(caught.value)


def test_an_unknown_source_is_refused_before_any_call():
    with ApiClient("http://127.0.0.1:9") as api, pytest.raises(ValueError, match="source"):
        api.past_predictions(source="nightly")


def test_ui_settings_come_from_the_environment():
    ui = load_ui_settings({"API_PORT": "8123", "UI_MAX_UPLOAD_MB": "5", "UI_BATCH_RECORDS": "50"})
    assert ui.api_url == "http://127.0.0.1:8123"
    assert ui.max_upload_bytes == 5 * 1024 * 1024 and ui.batch_records == 50
    assert load_ui_settings({"API_URL": "http://api:9000/"}).api_url == "http://api:9000"
    with pytest.raises(ConfigError, match="UI_BATCH_RECORDS"):
        load_ui_settings({"UI_BATCH_RECORDS": "0"})
    with pytest.raises(ConfigError, match="UI_MAX_UPLOAD_MB"):
        load_ui_settings({"UI_MAX_UPLOAD_MB": "lots"})


def test_make_up_starts_streamlit_headless_on_the_ui_port_talking_to_api_url():
    from frontend.launch import SERVICE
    from mlsys.config import load_settings
    from ops.supervisor import services

    assert SERVICE in services()
    settings = load_settings({"UI_PORT": "8601", "API_URL": "http://127.0.0.1:8100"})
    command = SERVICE.command(settings)
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4].endswith("frontend/app.py")
    for flag in (
        "--server.address=127.0.0.1",
        "--server.port=8601",
        "--server.headless=true",
        "--browser.gatherUsageStats=false",
    ):
        assert flag in command
    assert SERVICE.env(settings)["API_URL"] == "http://127.0.0.1:8100"
    assert SERVICE.port(settings) == 8601
