"""The Teams webhook URL is a credential (its `sig=` signs every post): an unreachable webhook
must not print it, neither in the error nor in the task's log, through the real DAG run."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest

from mlsys.redact import redact, redact_url
from pipelines.ingestion import alerts
from tests.pipelines.conftest import run_dag

pytestmark = pytest.mark.timeout(900)

SIG = "s3cr3tSignatureValue0123456789"
# The shape of a Workflows URL, on a closed local port (nothing listens on 9).
HOOK = (
    "http://127.0.0.1:9/workflows/0a1b2c/triggers/manual/paths/invoke"
    f"?api-version=1&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={SIG}"
)


def test_redact_removes_passwords_queries_and_webhook_paths():
    assert redact_url("postgresql://app:pw@db:5432/mlsys") == "postgresql://app:***@db:5432/mlsys"
    teams = "https://prod-01.westeurope.logic.azure.com:443/workflows/abc/triggers?sig=x"
    assert redact_url(teams) == "https://prod-01.westeurope.logic.azure.com:443/***?***"
    text = redact(
        f"failed: {HOOK} and host=db user=app password='it''s' dbname=x and "
        "Max retries exceeded with url: /workflows/abc?api-version=1&sig=zzz (Caused by x)"
    )
    assert SIG not in text and "it''s" not in text and "zzz" not in text
    assert "user=app" in text and "Max retries exceeded" in text


def test_an_unreachable_webhook_error_has_no_signature():
    with pytest.raises(alerts.AlertDeliveryError, match="unreachable") as caught:
        alerts.post(HOOK, {"x": 1}, timeout_s=2)
    shown = "".join(traceback.format_exception(caught.value))
    assert SIG not in shown and "127.0.0.1:9" in shown


def test_the_task_log_of_an_unreachable_webhook_has_no_signature(
    airflow_env, database_url, fresh_alerts, data_dir, tfdv_worker, settings, tmp_path
):
    import pandas as pd

    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False)
    rows = frame.drop(columns=[settings.target_column]).iloc[:10].copy()
    rows.iloc[0, 0] = ""  # a bad row: worth an alert
    rows.to_csv(data_dir / "raw-data" / "secret.csv", index=False)
    env = airflow_env | {
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": database_url,
        "TFDV_WORKER_URL": tfdv_worker,
        "TEAMS_WEBHOOK_URL": HOOK,
        "ALERT_MIN_CRITICALITY": "low",
    }
    run = run_dag("ingest_data", env, tmp_path / "dag.log")
    assert run.tasks["send_alerts"] == "failed", run.log[-3000:]
    assert "unreachable" in run.log  # the failure is reported...
    assert SIG not in run.log  # ...without the credential
    logs = Path(airflow_env["AIRFLOW__LOGGING__BASE_LOG_FOLDER"])
    for path in (p for p in logs.rglob("*") if p.is_file()):
        assert SIG not in path.read_text(errors="replace"), path
