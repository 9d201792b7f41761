"""The results of a predicted file: predictions beside their features, counts per class, CSV."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from frontend.api_client import Prediction


def results_frame(frame: pd.DataFrame, predictions: Sequence[Prediction]) -> pd.DataFrame:
    """Predictions next to their features, one row per record of the file."""
    if len(predictions) > len(frame):
        raise ValueError(f"{len(predictions)} predictions for {len(frame)} rows")
    out = frame.iloc[: len(predictions)].copy()
    out.insert(0, "probability", [p.probability for p in predictions])
    out.insert(0, "prediction", [p.prediction for p in predictions])
    out.index.name = "row"
    return out


def class_summary(
    predictions: Sequence[str], classes: Sequence[str], positive: str | None = None
) -> pd.DataFrame:
    """Count and share per predicted class, every known class listed (zero when absent)."""
    counts = pd.Series(list(predictions), dtype="object").value_counts()
    order = list(classes) + sorted(set(counts.index) - set(classes))
    total = max(len(predictions), 1)
    return pd.DataFrame(
        {
            "class": order,
            "meaning": [
                ("positive" if c == positive else "negative") if positive is not None else ""
                for c in order
            ],
            "count": [int(counts.get(c, 0)) for c in order],
            "share": [round(int(counts.get(c, 0)) / total, 4) for c in order],
        }
    )


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=True).encode("utf-8")
