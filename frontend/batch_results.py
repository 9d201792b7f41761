"""The results of a predicted file: every row with its status, counts per class, CSV.

The results keep every row of the file, predicted or not, in file order and numbered as the
analyst counts them (`row`, from 1), so that they join back to the file; `status` and `reason`
say why a row has no prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from frontend.chunked_sending import BatchOutcome, describe_rows
from frontend.upload_checks import CheckedUpload, problems_frame, row_reasons

# The status of a row in the results.
PREDICTED = "predicted"
INVALID = "invalid, not sent"  # the UI's check found invalid values: never sent
REFUSED = "refused by the API"  # in a chunk the API refused (each chunk is all-or-nothing)
NOT_SENT = "not sent"  # valid, but sending stopped (or has not reached it yet)
STATUSES = (PREDICTED, INVALID, REFUSED, NOT_SENT)
# The results' column of the features whose value the model never saw in training.
UNSEEN = "unseen in training"


def results_frame(checked: CheckedUpload, outcome: BatchOutcome) -> pd.DataFrame:
    """Every row of the file (index `row`, from 1): `status` (one of `STATUSES`), `prediction`
    and `probability` (empty unless predicted), `unseen in training` (the features whose value
    the model never saw in training, comma-separated: the prediction has less evidence behind
    it), `reason` (why not predicted: every invalid value of the row, or the API's refusal, or
    why sending stopped), then the features as checked (an invalid value is empty; the reason
    quotes it).

    `outcome` sends `checked.records` (the valid rows, in order).
    """
    frame = checked.frame
    if outcome.total != len(checked.records):
        raise ValueError(
            f"outcome of {outcome.total} records for {len(checked.records)} valid rows"
        )
    rows = outcome.rows if outcome.rows is not None else checked.valid_rows
    status = pd.Series(NOT_SENT, index=frame.index, dtype="object")
    reason = pd.Series("", index=frame.index, dtype="object")
    prediction = pd.Series(None, index=frame.index, dtype="object")
    probability = pd.Series(float("nan"), index=frame.index, dtype="float64")
    unseen = pd.Series("", index=frame.index, dtype="object")

    done = rows[: outcome.sent]
    status.loc[done] = PREDICTED
    prediction.loc[done] = [p.prediction for p in outcome.predictions]
    probability.loc[done] = [
        float("nan") if p.probability is None else p.probability for p in outcome.predictions
    ]
    unseen.loc[done] = [", ".join(p.unseen_features) for p in outcome.predictions]
    waiting = rows[outcome.sent :]
    if outcome.error is None:
        reason.loc[waiting] = "not sent yet"
    elif outcome.retryable:
        reason.loc[waiting] = "not sent: sending stopped (see the message above); it can be resumed"
    else:
        reason.loc[waiting] = "not sent: sending stopped at a chunk the API refused"
    if outcome.refused is not None:
        start, end = outcome.refused
        chunk = rows[start:end]
        status.loc[chunk] = REFUSED
        reason.loc[chunk] = (
            f"refused with its chunk ({describe_rows(chunk)}), stored whole or not at all"
        )
        named = row_reasons(problems_frame(outcome.problems))
        named = named[named.index.isin(chunk)]
        reason.loc[named.index] = "refused by the API: " + named
    invalid = row_reasons(checked.problems)
    status.loc[invalid.index] = INVALID
    reason.loc[invalid.index] = invalid

    out = frame.copy()
    out.insert(0, "reason", reason)
    out.insert(0, UNSEEN, unseen)
    out.insert(0, "probability", probability)
    out.insert(0, "prediction", prediction)
    out.insert(0, "status", status)
    out.index.name = "row"
    return out


def unseen_summary(predictions: Sequence) -> str | None:
    """A sentence counting the predictions with values the model never saw, per feature
    ("3 of 50 predicted rows hold values the model never saw in training: purpose 2, age 1");
    None when there is none. `predictions`: the API's `Prediction`s."""
    flagged = [p.unseen_features for p in predictions if p.unseen_features]
    if not flagged:
        return None
    counts: dict[str, int] = {}
    for features in flagged:
        for name in features:
            counts[name] = counts.get(name, 0) + 1
    per_feature = ", ".join(f"{name} {n}" for name, n in counts.items())
    return (
        f"{len(flagged)} of {len(predictions)} predicted rows hold values the model never saw "
        f"in training: {per_feature}"
    )


def row_list(rows: Sequence[int], limit: int = 10) -> str:
    """Row numbers for a sentence: "rows 3, 5 and 9", the first `limit` then "and 4 more"."""
    listed = [str(r) for r in rows[:limit]]
    more = len(rows) - len(listed)
    if more:
        return f"rows {', '.join(listed)} and {more} more"
    if len(listed) == 1:
        return f"row {listed[0]}"
    return f"rows {', '.join(listed[:-1])} and {listed[-1]}"


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
