"""The UI's settings, from environment variables (defaults documented in `.env.example`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache

from mlsys.config import env_int, load_settings


@dataclass(frozen=True)
class UISettings:
    api_url: str
    ui_port: int
    # Larger files are refused before parsing; Streamlit's own upload limit is set to the same
    # value by frontend/launch.py so that the browser refuses them first.
    max_upload_mb: int
    # Records per POST /predict when sending a CSV: each request is all-or-nothing on the API
    # side, and a bar advances after each one. Keep it at or below the API's MAX_BATCH_RECORDS.
    batch_records: int
    # The chart of past predictions counts at most this many (the newest) predictions, so that
    # a wide date range cannot make the page fetch the whole table.
    chart_max_rows: int
    api_timeout_s: float
    # The wording of one data set (UI_SUBJECT, UI_RECORD_NAME): what the model predicts, in the
    # title "Predict <subject>", and what one row is ("One <record>"). German Credit's defaults.
    subject: str = "credit risk"
    record_name: str = "application"

    @property
    def app_title(self) -> str:
        """The browser tab's title: the subject with a capital."""
        return self.subject[:1].upper() + self.subject[1:]

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def load_ui_settings(env: dict[str, str] | None = None) -> UISettings:
    env = dict(os.environ if env is None else env)
    core = load_settings(env)
    return UISettings(
        api_url=core.api_url,
        ui_port=core.ui_port,
        max_upload_mb=env_int(env, "UI_MAX_UPLOAD_MB", 20, low=1, high=1024),
        batch_records=env_int(env, "UI_BATCH_RECORDS", 500, low=1, high=100_000),
        chart_max_rows=env_int(env, "UI_CHART_MAX_ROWS", 20_000, low=1, high=1_000_000),
        api_timeout_s=float(env_int(env, "UI_API_TIMEOUT_S", 30, low=1, high=3600)),
        subject=env.get("UI_SUBJECT", "").strip() or "credit risk",
        record_name=env.get("UI_RECORD_NAME", "").strip() or "application",
    )


@lru_cache(maxsize=1)
def get_ui_settings() -> UISettings:
    return load_ui_settings()
