"""Past predictions page: filter by date range and source, a chart over time, a paged table."""

from datetime import UTC, datetime, timedelta

import streamlit as st

from frontend import prediction_history as history
from frontend.api_client import ApiError
from frontend.ui import (
    client,
    model_info_or_stop,
    predictions_chart,
    predictions_for_chart,
    settings,
    show_api_error,
)

st.title("Past predictions")
info = model_info_or_stop()
s = settings()

# The API stores times in UTC and reads dates as UTC days.
today = datetime.now(UTC).date()
left, middle, right = st.columns([2, 3, 1])
with left:
    picked = st.date_input(
        "Date range (UTC)",
        value=(today - timedelta(days=6), today),
        max_value=today,
        key="past_dates",
    )
with middle:
    source_label = st.radio(
        "Source", list(history.SOURCE_CHOICES), horizontal=True, key="past_source"
    )
with right:
    page_size = st.selectbox("Rows per page", (25, 50, 100, 500), index=1, key="past_page_size")

if not isinstance(picked, tuple) or len(picked) != 2:
    st.info("Pick the last day of the range.")
    st.stop()
start, end = history.date_filter(picked[0], picked[1])
source = history.SOURCE_CHOICES[source_label]

# A new filter starts again from its first page; the cursors of the pages seen so far are
# kept so that "Previous" can go back (the API only hands out the next one).
filters = (start, end, source, page_size)
if st.session_state.get("past_filters") != filters:
    st.session_state["past_filters"] = filters
    st.session_state["past_cursors"] = [None]
cursors: list[str | None] = st.session_state["past_cursors"]

if st.button("Refresh", icon=":material/refresh:", key="past_refresh"):
    predictions_for_chart.clear()

try:
    items, truncated = predictions_for_chart(
        s.api_url, s.api_timeout_s, start, end, source, s.chart_max_rows
    )
    with client() as api:
        page = api.past_predictions(
            start=start, end=end, source=source, limit=page_size, cursor=cursors[-1]
        )
except ApiError as exc:
    show_api_error(exc)
    st.stop()

if not items and not page.items:
    origin = "" if source == "all" else f" from {source_label}"
    st.info(f"No predictions{origin} between {start} and {end}.")
    st.stop()

total = f"the newest {len(items)}" if truncated else f"{len(items)}"
st.markdown(f"**{total} predictions** ({source_label}) from {start} to {end}")
counts, bucket = history.counts_over_time(items, info.classes)
st.altair_chart(predictions_chart(counts, bucket), width="content")

first = (len(cursors) - 1) * page_size + 1
st.caption(f"Page {len(cursors)}: rows {first} to {first + len(page.items) - 1}, newest first.")
st.dataframe(
    history.past_frame(page.items, [f.name for f in info.features]),
    hide_index=True,
    width="stretch",
    column_config={"probability": st.column_config.NumberColumn(format="%.3f")},
)


def _previous() -> None:
    st.session_state["past_cursors"].pop()


def _next(cursor: str) -> None:
    st.session_state["past_cursors"].append(cursor)


back, forward, _ = st.columns([1, 1, 3])
back.button("Previous page", disabled=len(cursors) == 1, on_click=_previous, key="past_prev")
forward.button(
    "Next page",
    disabled=page.next_cursor is None,
    on_click=_next,
    args=(page.next_cursor,),
    key="past_next",
)
