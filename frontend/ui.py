"""Streamlit glue shared by the pages: the API client, cached model info, error messages."""

from __future__ import annotations

from datetime import date

import altair as alt
import pandas as pd
import streamlit as st

from frontend.api_client import ApiClient, ApiError, ApiUnavailable, ModelInfo, Prediction
from frontend.config import UISettings, get_ui_settings
from frontend.upload_checks import MAX_LISTED_PROBLEMS
from mlsys.config import get_settings
from mlsys.features import SchemaError
from mlsys.schema_versions import SchemaWatch


def settings() -> UISettings:
    return get_ui_settings()


def client() -> ApiClient:
    s = settings()
    return ApiClient(s.api_url, timeout_s=s.api_timeout_s)


# The model changes only when it is retrained and the service restarted: a minute of caching
# spares a request per rerun. The schema (the form's features, domains, ranges) changes when
# a new version is approved: the cache is keyed by the schema file's hash, so the next rerun
# asks the API again, which serves the new version from its next request. Failures raise, and
# Streamlit does not cache them.
@st.cache_data(ttl=60, show_spinner=False)
def _model_info(api_url: str, timeout_s: float, schema_sha256: str) -> ModelInfo:
    with ApiClient(api_url, timeout_s=timeout_s) as api:
        return api.model_info()


@st.cache_resource(show_spinner=False)
def _schema_watch() -> SchemaWatch | None:
    try:
        return SchemaWatch(get_settings().schema_path)
    except SchemaError:  # no schema file beside the UI: the minute of caching alone
        return None


def schema_key() -> str:
    """The schema file's SHA-256 as it is now (one `os.stat` per rerun), '' without a file."""
    watch = _schema_watch()
    return watch.current().version.sha256 if watch is not None else ""


def model_info_or_stop() -> ModelInfo:
    """The model's description from the API; on failure a message and the end of the page."""
    s = settings()
    try:
        return _model_info(s.api_url, s.api_timeout_s, schema_key())
    except ApiError as exc:
        show_api_error(exc)
        st.stop()  # NoReturn: ends this run of the page


def show_api_error(exc: ApiError) -> None:
    if isinstance(exc, ApiUnavailable):
        st.error(str(exc), icon=":material/cloud_off:")
    else:
        st.error(str(exc), icon=":material/error:")


def problems_table(problems: pd.DataFrame) -> None:
    """The values at fault (a problems table: row, column, value, problem), one per line, so
    that the user can fix the file; the first MAX_LISTED_PROBLEMS of them."""
    if problems.empty:
        return
    shown = problems.head(MAX_LISTED_PROBLEMS)
    if len(shown) < len(problems):
        st.caption(f"The first {len(shown)} of {len(problems)} invalid values.")
    st.dataframe(shown, hide_index=True, width="stretch")


# The chart pages through up to UI_CHART_MAX_ROWS predictions: cached briefly, so that paging
# through the table does not fetch them all again ("Refresh" clears it).
@st.cache_data(ttl=15, show_spinner="Counting predictions...")
def predictions_for_chart(
    api_url: str, timeout_s: float, start: date, end: date, source: str, max_rows: int
) -> tuple[list[Prediction], bool]:
    with ApiClient(api_url, timeout_s=timeout_s) as api:
        return api.all_past_predictions(start=start, end=end, source=source, max_rows=max_rows)


def predictions_chart(counts: pd.DataFrame, bucket: str) -> alt.Chart:
    """Stacked bars of predictions per time bucket and class (from prediction_history.counts_over_time)."""
    long = counts.reset_index(names=bucket).melt(
        id_vars=bucket, var_name="predicted class", value_name="predictions"
    )
    # One bar per bucket, as wide as readable: a single busy hour must not fill the page.
    step = max(6, min(60, 900 // max(len(counts), 1)))
    return (
        alt.Chart(long)
        .mark_bar()
        .encode(
            x=alt.X(
                f"{bucket}:O", sort=None, title=f"{bucket} (UTC)", axis=alt.Axis(labelAngle=-30)
            ),
            y=alt.Y("predictions:Q", title="predictions", stack="zero"),
            color=alt.Color("predicted class:N", sort=list(counts.columns)),
            tooltip=[bucket, "predicted class", "predictions"],
        )
        .properties(width=alt.Step(step), height=240)
    )
