"""Past predictions: the filters, the flat table, and counts per time bucket for the chart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from frontend.api_client import Prediction

# Past-predictions source filter: label shown -> value of the API's `source` parameter.
SOURCE_CHOICES: dict[str, str] = {
    "all": "all",
    "webapp": "webapp",
    "scheduled predictions": "scheduled",
}


def date_filter(start: date, end: date) -> tuple[date, date]:
    """Check a date range from the selector; the API includes the whole `end` day."""
    if start > end:
        raise ValueError(f"the start date {start} is after the end date {end}")
    return start, end


def past_frame(items: Sequence[Prediction], feature_names: Sequence[str]) -> pd.DataFrame:
    """Stored predictions -> one row each: when, source, prediction, the features whose
    value the model never saw in training (comma-separated; empty for most), then the features."""
    extra = sorted({k for p in items for k in p.features} - set(feature_names))
    columns = list(feature_names) + extra
    rows = []
    for p in items:
        row: dict[str, Any] = {
            "id": p.id,
            "created_at": p.created_at,
            "source": p.source,
            "prediction": p.prediction,
            "probability": p.probability,
            "model_version": p.model_version,
            "source_file": p.source_file,
            "source_row": p.source_row,
            "unseen_features": ", ".join(p.unseen_features),
        }
        row.update({name: p.features.get(name) for name in columns})
        rows.append(row)
    fixed = [
        "id",
        "created_at",
        "source",
        "prediction",
        "probability",
        "model_version",
        "source_file",
        "source_row",
        "unseen_features",
    ]
    return pd.DataFrame(rows, columns=fixed + columns)


def time_bucket(start: datetime, end: datetime) -> tuple[str, str, str]:
    """A pandas frequency for a chart over [start, end], its name, and a label format."""
    span = end - start
    if span <= timedelta(hours=3):
        return "10min", "10 minutes", "%Y-%m-%d %H:%M"
    if span <= timedelta(days=2):
        return "h", "hour", "%Y-%m-%d %H:00"
    if span <= timedelta(days=92):
        return "D", "day", "%Y-%m-%d"
    return "W-MON", "week", "week of %Y-%m-%d"  # weeks starting on Monday


def counts_over_time(
    items: Sequence[Prediction], classes: Sequence[str]
) -> tuple[pd.DataFrame, str]:
    """Predictions per time bucket (rows, oldest first) and class (columns), and the bucket's name.

    Every bucket between the first and the last prediction is a row, empty ones with zeros, and
    rows are labelled with text so that the chart draws one readable bar per bucket.
    """
    stamped = [(p.created_at, p.prediction) for p in items if p.created_at is not None]
    if not stamped:
        return pd.DataFrame(columns=list(classes)), "day"
    frame = pd.DataFrame(stamped, columns=["created_at", "prediction"])
    created = pd.to_datetime(frame["created_at"], utc=True).dt.tz_localize(None)  # UTC
    freq, name, label = time_bucket(created.min(), created.max())
    if freq == "W-MON":  # weeks are not fixed lengths for floor(): go through periods
        frame["bucket"] = created.dt.to_period("W-SUN").dt.start_time
    else:
        frame["bucket"] = created.dt.floor(freq)
    every = pd.date_range(frame["bucket"].min(), frame["bucket"].max(), freq=freq)
    table = frame.pivot_table(index="bucket", columns="prediction", aggfunc="size", fill_value=0)
    order = list(classes) + sorted(set(table.columns) - set(classes))
    table = table.reindex(index=every, columns=order, fill_value=0)
    table.index = [stamp.strftime(label) for stamp in table.index]
    table.index.name = name
    table.columns.name = None
    return table.astype(int), name
