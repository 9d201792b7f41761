"""What the model saw in training, saved with it, and the check of a prediction against it.

`make train` stores, in the model's metadata.json (`seen_in_training`), for each feature the
values of the rows the model was fitted on: a categorical feature's categories, a numeric
feature's minimum and maximum, and whether any value was missing. The service reads them from
the artefact (never from the training CSV, which may have changed since) and flags each
prediction with the features whose value lies outside them (`UnseenCheck`):

- a category that no training row had: a category approved after training (the schema's
  domain grew), or one that was in the domain but absent from the training rows. LightGBM
  sends a category it never saw down the same branch as "other" at every categorical split,
  so the prediction is made as if the value were unknown;
- a number below the training minimum or above the training maximum. Inside that range a
  number never seen exactly (age 43 when the rows had 42 and 44) is not flagged: a tree's
  thresholds lie between training values, so it falls in a leaf learned from its neighbours.
  Outside, every tree answers with its outermost leaf: the model extrapolates flat, with no
  evidence about such values, although the schema (wider, curated by hand) accepts them;
- a missing value (JSON null, an optional feature) when no training row had one: LightGBM
  then has no learned direction for missing values of that feature.

The flag changes nothing in the prediction; it says how much evidence the model had.
Precomputed once per model and process (`UnseenCheck`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mlsys.features import FeatureSpec

METADATA_KEY = "seen_in_training"


@dataclass(frozen=True)
class SeenFeature:
    """One feature's training values: `categories` (categorical, in schema order) or
    `minimum`/`maximum` (numeric; None when every training value was missing), and `missing`:
    whether a training row lacked the value."""

    name: str
    categorical: bool
    categories: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    missing: bool = False

    def to_dict(self) -> dict[str, Any]:
        if self.categorical:
            return {"categories": list(self.categories), "missing": self.missing}
        return {"minimum": self.minimum, "maximum": self.maximum, "missing": self.missing}


def seen_in_training(matrix, spec: FeatureSpec) -> list[SeenFeature]:
    """The training values of the rows a model is fitted on.

    `matrix`: the encoded training rows (`mlsys.model.encode_frame`: numpy float64, one column
    per feature of `spec` in order; categorical columns hold the index in the schema's domain,
    NaN for a missing or unknown value).
    """
    import numpy as np

    out = []
    for j, feature in enumerate(spec.features):
        column = matrix[:, j]
        present = column[~np.isnan(column)]
        missing = bool(len(present) < len(column))
        if feature.is_categorical:
            codes = {int(c) for c in np.unique(present)}
            categories = tuple(v for code, v in enumerate(feature.values) if code in codes)
            out.append(SeenFeature(feature.name, True, categories=categories, missing=missing))
        else:
            low = float(present.min()) if len(present) else None
            high = float(present.max()) if len(present) else None
            out.append(SeenFeature(feature.name, False, minimum=low, maximum=high, missing=missing))
    return out


def to_metadata(seen: Sequence[SeenFeature]) -> dict[str, dict[str, Any]]:
    """The `seen_in_training` entry of metadata.json: {feature: {...}} in feature order."""
    return {s.name: s.to_dict() for s in seen}


def from_metadata(metadata: dict[str, Any]) -> list[SeenFeature] | None:
    """The training values of a model's metadata; None for a model trained before they were
    saved (its predictions are then never flagged: nothing is known to compare with).

    Raises ValueError when the entry is there but malformed.
    """
    entry = metadata.get(METADATA_KEY)
    if entry is None:
        return None
    try:
        out = []
        for name, d in entry.items():
            missing = bool(d.get("missing", False))
            if "categories" in d:
                categories = tuple(str(v) for v in d["categories"])
                out.append(SeenFeature(name, True, categories=categories, missing=missing))
            else:
                low, high = d.get("minimum"), d.get("maximum")
                out.append(
                    SeenFeature(
                        name,
                        False,
                        minimum=None if low is None else float(low),
                        maximum=None if high is None else float(high),
                        missing=missing,
                    )
                )
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"{METADATA_KEY} in the model's metadata is malformed: {exc}") from None
    return out


# Up to this many records the check runs over the values in Python (1 us for one record);
# from there on over the model's matrix with numpy (10,000 records: 5.3 ms in Python, 0.6 ms
# with numpy; `make bench BENCH=unseen`). A test feeds both the same records and compares.
PYTHON_MAX_RECORDS = 64


class UnseenCheck:
    """Which features of each record hold a value the model never saw (see the module's doc).

    Built once per model and process: a frozenset per categorical feature (and a table of
    the model's category codes seen), the bounds of each numeric one. `flags` costs about a
    microsecond for one record, under a millisecond for 10,000.

    `seen`: the training values (`from_metadata`; None: nothing is ever flagged).
    `domains`: the model's categories in code order, per categorical feature (its metadata's
    `features`), for the matrix path.
    """

    def __init__(
        self, seen: Sequence[SeenFeature] | None, domains: dict[str, Sequence[str]] | None = None
    ):
        import numpy as np

        domains = domains or {}
        self._columns: list[tuple[str, frozenset[str] | None, float, float, bool]] = []
        self._codes: list[Any] = []  # per column: bool array over the model's codes, or None
        for s in seen or ():
            if s.categorical:
                categories = frozenset(s.categories)
                self._columns.append((s.name, categories, 0.0, 0.0, s.missing))
                domain = list(domains.get(s.name, ()))
                # One more entry: the code past the domain's end (a category it lacks).
                self._codes.append(np.array([v in categories for v in domain] + [False]))
            else:
                # No value seen at all: every present number is outside (an empty range).
                low = math.inf if s.minimum is None else s.minimum
                high = -math.inf if s.maximum is None else s.maximum
                self._columns.append((s.name, None, low, high, s.missing))
                self._codes.append(None)

    @property
    def features(self) -> list[str]:
        return [c[0] for c in self._columns]

    def flags(self, records: Sequence[dict[str, Any]], matrix=None) -> list[tuple[str, ...]]:
        """For each record, the names of its unseen features in feature order; () for most.

        `records`: validated records (one value per feature, None where missing). `matrix`:
        the same records encoded in the model's codes (`LoadedModel.to_model_codes`; columns
        in the order of the training values), used for more than PYTHON_MAX_RECORDS records.
        """
        if matrix is not None and len(records) > PYTHON_MAX_RECORDS:
            return self.flags_of_matrix(matrix)
        return self.flags_of_records(records)

    def flags_of_records(self, records: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
        """`flags` over the values (a feature the records lack is skipped)."""
        n = len(records)
        if n == 1:
            return [self._flags_of_one(records[0])]
        hits: list[list[str] | None] = [None] * n
        for name, categories, low, high, missing_seen in self._columns:
            try:
                values = [r[name] for r in records]
            except KeyError:
                continue
            if categories is not None:
                distinct = set(values)
                if missing_seen:
                    distinct.discard(None)
                if distinct <= categories:
                    continue
                bad = [
                    i
                    for i, v in enumerate(values)
                    if v not in categories and (v is not None or not missing_seen)
                ]
            else:
                present = [v for v in values if v is not None] if None in values else values
                if (len(present) == n or missing_seen) and (
                    not present or (low <= min(present) and max(present) <= high)
                ):
                    continue
                bad = [
                    i
                    for i, v in enumerate(values)
                    if (v is None and not missing_seen) or (v is not None and not low <= v <= high)
                ]
            _mark(hits, bad, name)
        return [() if h is None else tuple(h) for h in hits]

    def _flags_of_one(self, record: dict[str, Any]) -> tuple[str, ...]:
        """One record (the UI's single predictions): no lists per column, about 1 us."""
        hits: tuple[str, ...] = ()
        for name, categories, low, high, missing_seen in self._columns:
            value = record.get(name, _ABSENT)
            if value is _ABSENT:
                continue
            if value is None:
                unseen = not missing_seen
            elif categories is not None:
                unseen = value not in categories
            else:
                unseen = not low <= value <= high
            if unseen:
                hits += (name,)
        return hits

    def flags_of_matrix(self, matrix) -> list[tuple[str, ...]]:
        """`flags` over the encoded matrix (numpy float64, one column per feature)."""
        import numpy as np

        n = len(matrix)
        hits: list[list[str] | None] = [None] * n
        for j, ((name, _, low, high, missing_seen), seen_codes) in enumerate(
            zip(self._columns, self._codes, strict=True)
        ):
            column = matrix[:, j]
            missing = np.isnan(column)
            if seen_codes is not None:
                last = len(seen_codes) - 1
                index = np.where(missing, last, np.clip(column, 0, last)).astype(np.intp)
                bad = ~seen_codes[index] & ~missing
            else:
                with np.errstate(invalid="ignore"):
                    bad = (column < low) | (column > high)
            if not missing_seen:
                bad |= missing
            if bad.any():
                _mark(hits, np.flatnonzero(bad).tolist(), name)
        return [() if h is None else tuple(h) for h in hits]


_ABSENT = object()


def _mark(hits: list[list[str] | None], rows: Sequence[int], name: str) -> None:
    for i in rows:
        row = hits[i]
        if row is None:
            hits[i] = [name]
        else:
            row.append(name)
