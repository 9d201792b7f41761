"""Past predictions: filters, table and time buckets (frontend/prediction_history.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from frontend import prediction_history as history
from tests.frontend.conftest import prediction


def test_past_predictions_flatten_features_after_the_prediction(info):
    when = datetime(2026, 11, 1, 12, tzinfo=UTC)
    frame = history.past_frame(
        [prediction("1", 0.8, when, ("age",), age=30, sex="male", legacy="x")],
        [f.name for f in info.features],
    )
    names = [f.name for f in info.features]
    assert list(frame.columns) == [
        "id", "created_at", "source", "prediction", "probability", "model_version",
        "source_file", "source_row", "unseen_features", *names, "legacy",
    ]  # fmt: skip
    assert frame.loc[0, "unseen_features"] == "age"
    assert frame.loc[0, "age"] == 30 and frame.loc[0, "legacy"] == "x"
    assert pd.isna(frame.loc[0, "purpose"])


def test_counts_over_time_by_class_pick_a_bucket_that_fits_the_span():
    t0 = datetime(2026, 11, 2, 10, 15, tzinfo=UTC)
    minutes = [prediction("1", 0.9, t0), prediction("0", 0.1, t0 + timedelta(minutes=3))]
    minutes.append(prediction("1", 0.9, t0 + timedelta(minutes=21)))
    table, bucket = history.counts_over_time(minutes, ["0", "1"])
    assert bucket == "10 minutes"
    assert table.to_dict("index") == {
        "2026-11-02 10:10": {"0": 1, "1": 1},
        "2026-11-02 10:20": {"0": 0, "1": 0},  # an empty bucket is a bar of zero, not a gap
        "2026-11-02 10:30": {"0": 0, "1": 1},
    }
    hours = [prediction("1", 0.9, t0), prediction("0", 0.1, t0 + timedelta(hours=5))]
    table, bucket = history.counts_over_time(hours, ["0", "1"])
    assert bucket == "hour" and len(table) == 6
    assert table.index[0] == "2026-11-02 10:00" and table.index[-1] == "2026-11-02 15:00"
    days = [prediction("0", 0.1, t0 + timedelta(days=5)), prediction("0", 0.1, t0)]
    table, bucket = history.counts_over_time(days, ["0", "1"])
    assert bucket == "day" and len(table) == 6
    assert table.index[0] == "2026-11-02" and table.index[-1] == "2026-11-07"
    assert table["0"].sum() == 2 and table["1"].sum() == 0
    weeks = [prediction("1", 0.9, t0), prediction("2", 0.9, t0 + timedelta(days=200))]
    table, bucket = history.counts_over_time(weeks, ["0", "1"])
    assert bucket == "week" and table.index[0] == "week of 2026-11-02"  # a Monday
    assert list(table.columns) == ["0", "1", "2"]  # an unknown class still shows
    empty, _ = history.counts_over_time([], ["0", "1"])
    assert empty.empty


def test_date_filter_refuses_a_reversed_range():
    assert history.date_filter(date(2026, 1, 1), date(2026, 1, 1)) == (
        date(2026, 1, 1),
        date(2026, 1, 1),
    )
    with pytest.raises(ValueError, match="after the end date"):
        history.date_filter(date(2026, 1, 2), date(2026, 1, 1))


def test_source_choices_map_to_the_api_values():
    assert history.SOURCE_CHOICES == {
        "all": "all",
        "webapp": "webapp",
        "scheduled predictions": "scheduled",
    }
