"""Before/after views of one injection on real rows, for notebooks/error_injection.ipynb."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from error_injection import errors
from mlsys.features import FeatureSpec


@dataclass(frozen=True)
class Demo:
    name: str
    before: pd.DataFrame  # the clean rows
    output: errors.Output
    injection: errors.Injection

    @property
    def content(self) -> bytes:
        return self.output.render()


def run(
    name: str, source: pd.DataFrame, spec: FeatureSpec, *, start: int = 0, rows: int = 50,
    seed: int = 0, row_share: float = 0.1,
) -> Demo:  # fmt: skip
    """Inject one error type into rows [start, start + rows) of the data set."""
    chunk = source.iloc[start : start + rows].reset_index(drop=True)
    ctx = errors.Context(spec, np.random.default_rng(seed), row_share, reference=source)
    out = errors.inject(name, chunk, ctx)
    assert out.injection is not None
    return Demo(name, chunk, out, out.injection)


def read_as_ingestion(content: bytes) -> pd.DataFrame:
    """The file as the ingestion's row checks read it: every cell as text."""
    return pd.read_csv(io.BytesIO(content), dtype=str, keep_default_na=False)


def before_after(demo: Demo, limit: int = 5) -> pd.DataFrame:
    """The touched rows, clean beside injected, for the touched columns (row-level errors and
    drift). Duplicates: each copy beside the row it copies."""
    inj = demo.injection
    after = read_as_ingestion(demo.content)
    if inj.error_type == "duplicate_rows":
        copies = list(inj.rows[:limit])
        return after.iloc[copies].assign(is_copy_of=[_original(after, r) for r in copies])
    rows = list((inj.rows or inj.changed_rows)[:limit])
    columns = list(inj.columns)
    before = demo.before.loc[rows, columns].astype(str)
    joined = pd.concat({"before": before, "after": after.loc[rows, columns]}, axis=1)
    joined.index.name = "row"
    return joined


def _original(frame: pd.DataFrame, row: int) -> int:
    earlier = frame.iloc[:row]
    return int(np.flatnonzero((earlier == frame.iloc[row]).all(axis=1).to_numpy())[0])


def head(content: bytes, lines: int = 4) -> str:
    """The first lines of a file as bytes would show them (undecodable bytes escaped)."""
    if not content:
        return "(0 bytes)"
    text = content.decode("utf-8", errors="backslashreplace")
    return "\n".join(text.splitlines()[:lines])


def distribution(demo: Demo) -> pd.DataFrame:
    """For the drift types: the feature's summary (numeric) or category shares, before/after."""
    (column,) = demo.injection.columns
    before = demo.before[column]
    after = read_as_ingestion(demo.content)[column]
    if demo.injection.error_type == "numeric_drift":
        return pd.DataFrame(
            {"before": before.astype(float).describe(), "after": after.astype(float).describe()}
        ).round(1)
    return (
        pd.DataFrame(
            {
                "before": before.value_counts(normalize=True),
                "after": after.value_counts(normalize=True),
            }
        )
        .fillna(0.0)
        .round(2)
    )
