"""The synthetic error types: one small generator function each, and their registry.

A generator takes the clean rows of one file (a frame with the serving features as columns,
object dtype) and returns what to write plus an `Injection`: the manifest entry saying which
rows and columns it touched, and which TFDV anomalies / row checks must find it.

Everything is derived from the feature spec (`mlsys.features`): which feature is numeric,
its schema range, its categorical domain. No feature name or value is typed here.

Plain pandas/numpy (no pandas-3-only API): importable in the `app` environment (pandas 3,
numpy 2) and in the `tfdv` one (pandas 1.5, numpy 1.26).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlsys import csvfile, rowchecks
from mlsys.features import Feature, FeatureSpec, Kind

Level = Literal["row", "file"]
ROW: Level = "row"
FILE: Level = "file"
DRIFT = "drift"  # the pseudo anomaly type of the distribution shifts

# Values people type into a numeric cell when they do not know the number. None of them is in
# pandas' default NA markers (rowchecks.NA_TOKENS), so they arrive as text, not as missing.
PLACEHOLDERS = ("unknown", "?", "n.a.", "tbd", "-", "see notes")

# Share of the rows a category-mix shift moves to one category, and the shift of a numeric
# feature in standard deviations. Measured on 50-row files of German Credit: L-infinity
# 0.55-0.66 (threshold 0.15) and Jensen-Shannon 0.58-0.87 (thresholds 0.1 and 0.15), while
# clean 50-row files reach 0.23 by sampling noise (tests/error_injection/test_tfdv.py).
CATEGORY_SHIFT_SHARE = 0.6
NUMERIC_SHIFT_STD = 2.0


class NotApplicable(ValueError):
    """The schema has no feature this error type can be injected into."""


@dataclass(frozen=True)
class Injection:
    """One manifest entry: what a generator did to a file."""

    error_type: str
    level: Level
    rows: tuple[int, ...]  # data rows (0-based, header excluded) a row validator must flag
    columns: tuple[str, ...]
    detail: str
    unusable: bool = False  # the whole file cannot be ingested
    drift: bool = False  # only the distribution is off; no row is bad
    changed_rows: tuple[int, ...] = ()  # rows whose values changed (the drift types)
    # feature -> TFDV anomaly types validation must report for it ('drift' for a shift);
    # empty when TFDV cannot see the error (then `check` names the rule that does).
    expected_anomalies: dict[str, tuple[str, ...]] = field(default_factory=dict)
    check: str = ""  # the mlsys.rowchecks rule (or 'drift') that catches it

    def to_dict(self) -> dict[str, Any]:
        return {
            "error_type": self.error_type,
            "level": self.level,
            "unusable": self.unusable,
            "drift": self.drift,
            "rows": list(self.rows),
            "columns": list(self.columns),
            "changed_rows": list(self.changed_rows),
            "check": self.check,
            "expected_anomalies": {k: list(v) for k, v in self.expected_anomalies.items()},
            "detail": self.detail,
        }


@dataclass
class Output:
    """What to write for one file: rows as CSV (with a delimiter and encoding) or raw bytes."""

    frame: pd.DataFrame
    injection: Injection | None = None
    sep: str = ","
    encoding: str = "utf-8"
    raw: bytes | None = None
    protect: tuple[int, ...] = ()  # rows later injections must leave alone (copied originals)

    def render(self) -> bytes:
        if self.raw is not None:
            return self.raw
        text = self.frame.to_csv(index=False, sep=self.sep, lineterminator="\n")
        return text.encode(self.encoding)


@dataclass(frozen=True)
class Context:
    spec: FeatureSpec
    rng: np.random.Generator  # this file's generator
    row_share: float = 0.1
    # The run's seed and the whole clean data set: the drift types pick their feature from
    # the run's seed and size their shift on the data set, not on the file, so every drift
    # file of a run shifts the same feature the same way (a population shift persists) and
    # a window of several drift files drifts as clearly as one file. None: use the file.
    run_seed: int | None = None
    reference: pd.DataFrame | None = None
    # Rows and features that earlier injections into the same file touched: a later one keeps
    # off them, so that every bad row and every anomaly has exactly one cause.
    avoid_rows: frozenset[int] = frozenset()
    avoid_columns: frozenset[str] = frozenset()


Generator = Callable[[pd.DataFrame, Context], Output]


@dataclass(frozen=True)
class ErrorType:
    name: str
    level: Level
    generate: Generator
    tfdv_anomalies: tuple[str, ...]  # the types it can promise; () when TFDV cannot see it
    check: str  # the mlsys.rowchecks rule (or 'drift') that catches it
    unusable: bool = False
    drift: bool = False

    @property
    def description(self) -> str:
        return inspect.getdoc(self.generate) or ""

    @property
    def summary(self) -> str:
        """The first paragraph of the description, on one line."""
        return " ".join(self.description.split("\n\n")[0].split())


REGISTRY: dict[str, ErrorType] = {}


def error_type(
    name: str,
    level: Level,
    *,
    tfdv: tuple[str, ...],
    check: str,
    unusable: bool = False,
    drift: bool = False,
) -> Callable[[Generator], Generator]:
    """Register a generator under `name` (the decorator keeps the function as it is)."""

    def register(fn: Generator) -> Generator:
        if name in REGISTRY:
            raise ValueError(f"error type {name!r} registered twice")
        REGISTRY[name] = ErrorType(name, level, fn, tfdv, check, unusable, drift)
        return fn

    return register


def get(name: str) -> ErrorType:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise KeyError(f"unknown error type {name!r}; known types: {known}") from None


def inject(name: str, frame: pd.DataFrame, ctx: Context) -> Output:
    """Apply one error type to a copy of the clean rows of a file."""
    kind = get(name)
    out = kind.generate(frame.astype(object).reset_index(drop=True), ctx)
    assert out.injection is not None and out.injection.error_type == name
    return out


# --- helpers ----------------------------------------------------------------------------
def _pick_rows(n: int, ctx: Context) -> list[int]:
    """`row_share` of the rows (at least one), sorted, none of `ctx.avoid_rows`."""
    available = [i for i in range(n) if i not in ctx.avoid_rows]
    if not available:
        raise NotApplicable("the file has no row left to put an error into")
    k = min(len(available), max(1, round(ctx.row_share * n)))
    return sorted(int(i) for i in ctx.rng.choice(available, size=k, replace=False))


def _pick_feature(
    ctx: Context, eligible: list[Feature], what: str, *, per_run: bool = False
) -> Feature:
    free = [f for f in eligible if f.name not in ctx.avoid_columns]
    if not free:
        # "left": the file's earlier injections took them; without "left": the schema has none.
        raise NotApplicable(f"the schema has no {what}{' left' if eligible else ''}")
    eligible = free
    rng = ctx.rng
    if per_run and ctx.run_seed is not None:
        rng = np.random.default_rng(ctx.run_seed)
    return eligible[int(rng.integers(len(eligible)))]


def _numeric(spec: FeatureSpec) -> list[Feature]:
    return [f for f in spec.features if not f.is_categorical]


def _number(value: float, feature: Feature) -> int | float:
    return int(round(value)) if feature.kind is Kind.INTEGER else float(value)


def _range_anomaly(feature: Feature, side: str) -> str:
    """The TFDV anomaly of a value below / above the range of this feature's kind."""
    if feature.kind is Kind.INTEGER:
        return {"below": "INT_TYPE_SMALL_INT", "above": "INT_TYPE_BIG_INT"}[side]
    return {"below": "FLOAT_TYPE_SMALL_FLOAT", "above": "FLOAT_TYPE_BIG_FLOAT"}[side]


def _show(value: Any) -> str:
    """A cell as a reader of the CSV sees it (numpy 2 would print np.int64(67))."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "(empty)"
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value) if isinstance(value, str) else str(value)


def _bound(value: float | None) -> str:
    return "unbounded" if value is None else f"{value:g}"


def _changes(before: pd.Series, after: pd.Series, rows: list[int]) -> str:
    pairs = [f"row {r}: {_show(before.iloc[r])} -> {_show(after.iloc[r])}" for r in rows[:5]]
    more = f" (+{len(rows) - 5} more)" if len(rows) > 5 else ""
    return "; ".join(pairs) + more


# --- row-level errors: some rows are bad, the others stay usable --------------------------
@error_type(
    "missing_value",
    ROW,
    tfdv=("FEATURE_TYPE_LOW_FRACTION_PRESENT",),
    check=rowchecks.MISSING_VALUE,
)
def missing_value(frame: pd.DataFrame, ctx: Context) -> Output:
    """Empty cells in a required feature (a form field left blank)."""
    feature = _pick_feature(ctx, [f for f in ctx.spec.features if f.required], "required feature")
    rows = _pick_rows(len(frame), ctx)
    out = frame.copy()
    out.loc[rows, feature.name] = None
    detail = f"{len(rows)} empty cells in required feature {feature.name!r}: " + _changes(
        frame[feature.name], out[feature.name], rows
    )
    injection = Injection(
        "missing_value", ROW, tuple(rows), (feature.name,), detail,
        expected_anomalies={feature.name: ("FEATURE_TYPE_LOW_FRACTION_PRESENT",)},
        check=rowchecks.MISSING_VALUE,
    )  # fmt: skip
    return Output(out, injection)


@error_type(
    "unknown_category",
    ROW,
    tfdv=("ENUM_TYPE_UNEXPECTED_STRING_VALUES",),
    check=rowchecks.UNKNOWN_CATEGORY,
)
def unknown_category(frame: pd.DataFrame, ctx: Context) -> Output:
    """A categorical value outside the schema's domain: the row's own value in capitals, as an
    upstream system that changed its spelling would send it."""
    eligible = [f for f in ctx.spec.features if f.is_categorical and f.values]
    feature = _pick_feature(ctx, eligible, "categorical feature with a domain")
    domain = set(feature.values)
    rows = _pick_rows(len(frame), ctx)
    out = frame.copy()
    for row in rows:
        value = str(frame.at[row, feature.name])
        unknown = value.upper() if value.upper() not in domain else value.lower()
        if unknown in domain:  # a domain closed under case changes: append a marker
            unknown = f"{value}*"
        out.at[row, feature.name] = unknown
    detail = f"{len(rows)} values outside the domain of {feature.name!r}: " + _changes(
        frame[feature.name], out[feature.name], rows
    )
    injection = Injection(
        "unknown_category", ROW, tuple(rows), (feature.name,), detail,
        expected_anomalies={feature.name: ("ENUM_TYPE_UNEXPECTED_STRING_VALUES",)},
        check=rowchecks.UNKNOWN_CATEGORY,
    )  # fmt: skip
    return Output(out, injection)


@error_type(
    "out_of_range",
    ROW,
    tfdv=(
        "INT_TYPE_SMALL_INT",
        "INT_TYPE_BIG_INT",
        "FLOAT_TYPE_SMALL_FLOAT",
        "FLOAT_TYPE_BIG_FLOAT",
    ),
    check=rowchecks.OUT_OF_RANGE,
)
def out_of_range(frame: pd.DataFrame, ctx: Context) -> Output:
    """Numbers outside the schema's range: a sign error below the minimum, or a unit error
    (x100) above the maximum."""
    eligible = [f for f in _numeric(ctx.spec) if f.minimum is not None or f.maximum is not None]
    feature = _pick_feature(ctx, eligible, "numeric feature with a range")
    low, high = feature.minimum, feature.maximum
    sides = [s for s, bound in (("below", low), ("above", high)) if bound is not None]
    span = (high - low) if low is not None and high is not None else 100.0
    rows = _pick_rows(len(frame), ctx)
    out = frame.copy()
    used: set[str] = set()
    for row in rows:
        value = float(frame.at[row, feature.name])
        side = sides[int(ctx.rng.integers(len(sides)))]
        step = max(1.0, math.ceil(span * float(ctx.rng.uniform(0.1, 1.0))))
        if side == "below":
            new = -abs(value) if -abs(value) < low else low - step
        else:
            new = value * 100 if value * 100 > high else high + step
        out.at[row, feature.name] = _number(new, feature)
        used.add(side)
    detail = (
        f"{len(rows)} values of {feature.name!r} outside [{_bound(low)}, {_bound(high)}]: "
        + _changes(frame[feature.name], out[feature.name], rows)
    )
    injection = Injection(
        "out_of_range", ROW, tuple(rows), (feature.name,), detail,
        expected_anomalies={feature.name: tuple(_range_anomaly(feature, s) for s in sorted(used))},
        check=rowchecks.OUT_OF_RANGE,
    )  # fmt: skip
    return Output(out, injection)


@error_type(
    "string_in_numeric",
    ROW,
    tfdv=("UNEXPECTED_DATA_TYPE", "INT_TYPE_NOT_INT_STRING"),
    check=rowchecks.NOT_A_NUMBER,
)
def string_in_numeric(frame: pd.DataFrame, ctx: Context) -> Output:
    """Text in a numeric feature ('unknown', '?', 'tbd'...): the whole column then reads as
    strings."""
    feature = _pick_feature(ctx, _numeric(ctx.spec), "numeric feature")
    rows = _pick_rows(len(frame), ctx)
    out = frame.copy()
    for row in rows:
        out.at[row, feature.name] = PLACEHOLDERS[int(ctx.rng.integers(len(PLACEHOLDERS)))]
    expected = ("UNEXPECTED_DATA_TYPE",)
    if feature.kind is Kind.INTEGER:
        expected += ("INT_TYPE_NOT_INT_STRING",)
    detail = f"{len(rows)} text values in numeric feature {feature.name!r}: " + _changes(
        frame[feature.name], out[feature.name], rows
    )
    injection = Injection(
        "string_in_numeric", ROW, tuple(rows), (feature.name,), detail,
        expected_anomalies={feature.name: expected}, check=rowchecks.NOT_A_NUMBER,
    )  # fmt: skip
    return Output(out, injection)


@error_type(
    "non_integer",
    ROW,
    tfdv=("UNEXPECTED_DATA_TYPE",),
    check=rowchecks.NOT_AN_INTEGER,
)
def non_integer(frame: pd.DataFrame, ctx: Context) -> Output:
    """A fractional number in an integer feature (12.5 months), inside the schema's range."""
    eligible = [f for f in ctx.spec.features if f.kind is Kind.INTEGER]
    feature = _pick_feature(ctx, eligible, "integer feature")
    rows = _pick_rows(len(frame), ctx)
    out = frame.copy()
    for row in rows:
        value = float(frame.at[row, feature.name])
        up = feature.maximum is None or value + 0.5 <= feature.maximum
        out.at[row, feature.name] = value + 0.5 if up else value - 0.5
    detail = f"{len(rows)} fractional values in integer feature {feature.name!r}: " + _changes(
        frame[feature.name], out[feature.name], rows
    )
    injection = Injection(
        "non_integer", ROW, tuple(rows), (feature.name,), detail,
        expected_anomalies={feature.name: ("UNEXPECTED_DATA_TYPE",)},
        check=rowchecks.NOT_AN_INTEGER,
    )  # fmt: skip
    return Output(out, injection)


@error_type("duplicate_rows", ROW, tfdv=(), check=rowchecks.DUPLICATE_ROW)
def duplicate_rows(frame: pd.DataFrame, ctx: Context) -> Output:
    """Exact copies of some rows, inserted after their original (a batch sent twice). The
    copies are the bad rows; TFDV cannot see them (every value is valid), the row check
    `duplicate_row` does."""
    originals = _pick_rows(len(frame), ctx)
    order: list[int] = list(range(len(frame)))
    is_copy = [False] * len(frame)
    for original in originals:
        position = is_copy.index(False, order.index(original))  # the original, not a copy
        at = int(ctx.rng.integers(position + 1, len(order) + 1))
        order.insert(at, original)
        is_copy.insert(at, True)
    out = frame.iloc[order].reset_index(drop=True)
    rows = [i for i, copy in enumerate(is_copy) if copy]
    first = {source: i for i, source in reversed(list(enumerate(order)))}  # the originals
    pairs = ", ".join(f"row {r} repeats row {first[order[r]]}" for r in rows[:5])
    detail = f"{len(rows)} duplicated rows inserted: {pairs}" + (
        f" (+{len(rows) - 5} more)" if len(rows) > 5 else ""
    )
    injection = Injection(
        "duplicate_rows", ROW, tuple(rows), (), detail, check=rowchecks.DUPLICATE_ROW
    )
    # Changing an original or a copy later would undo the duplicate: protect both.
    return Output(out, injection, protect=tuple(sorted(first[order[r]] for r in rows)))


# --- file-level errors: the whole file is unusable, has an extra column, or drifts ---------
@error_type(
    "missing_column",
    FILE,
    tfdv=("SCHEMA_MISSING_COLUMN",),
    check=rowchecks.MISSING_COLUMN,
    unusable=True,
)
def missing_column(frame: pd.DataFrame, ctx: Context) -> Output:
    """A required feature's column is absent: no row of the file can be scored."""
    feature = _pick_feature(ctx, [f for f in ctx.spec.features if f.required], "required feature")
    out = frame.drop(columns=[feature.name])
    injection = Injection(
        "missing_column", FILE, (), (feature.name,),
        f"required column {feature.name!r} removed; every row lacks it", unusable=True,
        expected_anomalies={feature.name: ("SCHEMA_MISSING_COLUMN",)},
        check=rowchecks.MISSING_COLUMN,
    )  # fmt: skip
    return Output(out, injection)


# pandas names a column with an empty header like this when it reads the file.
UNNAMED_INDEX = "Unnamed: 0"


@error_type("extra_column", FILE, tfdv=("SCHEMA_NEW_COLUMN",), check=rowchecks.UNEXPECTED_COLUMN)
def extra_column(frame: pd.DataFrame, ctx: Context) -> Output:
    """An unexpected extra column: the row index written by `to_csv(index=True)`, with an empty
    header that pandas reads as 'Unnamed: 0'. The rows stay usable once it is dropped."""
    out = frame.copy()
    out.insert(0, "", list(range(len(frame))))
    injection = Injection(
        "extra_column", FILE, (), (UNNAMED_INDEX,),
        f"an index column with an empty header (read as {UNNAMED_INDEX!r}) added in front; "
        "drop it and every row is usable",
        expected_anomalies={UNNAMED_INDEX: ("SCHEMA_NEW_COLUMN",)},
        check=rowchecks.UNEXPECTED_COLUMN,
    )  # fmt: skip
    return Output(out, injection)


@error_type("empty_file", FILE, tfdv=(), check=rowchecks.EMPTY_FILE, unusable=True)
def empty_file(frame: pd.DataFrame, ctx: Context) -> Output:
    """A file of zero bytes, not even a header (an export that crashed). pandas refuses it
    (EmptyDataError), so TFDV never sees it."""
    injection = Injection(
        "empty_file", FILE, (), (), f"0 bytes written instead of {len(frame)} rows",
        unusable=True, check=rowchecks.EMPTY_FILE,
    )  # fmt: skip
    return Output(frame.iloc[:0], injection, raw=b"")


@error_type("header_only", FILE, tfdv=(), check=rowchecks.EMPTY_FILE, unusable=True)
def header_only(frame: pd.DataFrame, ctx: Context) -> Output:
    """The header line and no data row. TFDV reports no anomaly for zero examples (measured),
    so the file check `empty_file` must catch it."""
    injection = Injection(
        "header_only", FILE, (), (), f"only the header written, none of the {len(frame)} rows",
        unusable=True, check=rowchecks.EMPTY_FILE,
    )  # fmt: skip
    return Output(frame.iloc[:0], injection)


@error_type(
    "wrong_delimiter",
    FILE,
    tfdv=("SCHEMA_MISSING_COLUMN", "SCHEMA_NEW_COLUMN"),
    check=csvfile.WRONG_DELIMITER,
    unusable=True,
)
def wrong_delimiter(frame: pd.DataFrame, ctx: Context) -> Output:
    """Semicolons instead of commas (a spreadsheet in a European locale), with no `sep=;`
    line: the ingestion's reader refuses it, naming the delimiter; read as plain CSV (as TFDV
    would be fed) the file is one column named after the whole header."""
    sep = ";"
    merged = sep.join(str(c) for c in frame.columns)
    expected = {str(c): ("SCHEMA_MISSING_COLUMN",) for c in frame.columns}
    expected[merged] = ("SCHEMA_NEW_COLUMN",)
    injection = Injection(
        "wrong_delimiter", FILE, (), tuple(str(c) for c in frame.columns),
        f"written with {sep!r} as the delimiter: a comma reader sees one column {merged!r}",
        unusable=True, expected_anomalies=expected, check=csvfile.WRONG_DELIMITER,
    )  # fmt: skip
    return Output(frame, injection, sep=sep)


@error_type("wrong_encoding", FILE, tfdv=(), check=csvfile.UNDECODABLE_TEXT, unusable=True)
def wrong_encoding(frame: pd.DataFrame, ctx: Context) -> Output:
    """UTF-16 instead of UTF-8 (Excel's 'Unicode text'): the first bytes are not UTF-8, so
    the reader refuses the file (UnicodeDecodeError for pandas) and TFDV never sees it."""
    injection = Injection(
        "wrong_encoding", FILE, (), (), "encoded as UTF-16 (with byte-order mark), not UTF-8",
        unusable=True, check=csvfile.UNDECODABLE_TEXT,
    )  # fmt: skip
    return Output(frame, injection, encoding="utf-16")


@error_type("numeric_drift", FILE, tfdv=(DRIFT,), check=DRIFT, drift=True)
def numeric_drift(frame: pd.DataFrame, ctx: Context) -> Output:
    """Every value of a numeric feature shifted by two standard deviations (of the data set)
    towards the side with more room, clipped to the schema's range: drift without any invalid
    row. The same feature and shift in every drift file of a run."""
    eligible = [f for f in _numeric(ctx.spec) if f.minimum is not None and f.maximum is not None]
    feature = _pick_feature(ctx, eligible, "numeric feature with a range", per_run=True)
    values = frame[feature.name].astype(float)
    basis = (ctx.reference if ctx.reference is not None else frame)[feature.name].astype(float)
    median = float(basis.median())
    direction = 1.0 if feature.maximum - median >= median - feature.minimum else -1.0
    delta = NUMERIC_SHIFT_STD * float(basis.std(ddof=0))
    if feature.kind is Kind.INTEGER:
        delta = max(1.0, round(delta))
    shifted = (values + direction * delta).clip(feature.minimum, feature.maximum)
    out = frame.copy()
    out[feature.name] = [_number(v, feature) for v in shifted]
    changed = [i for i in range(len(frame)) if out.at[i, feature.name] != frame.at[i, feature.name]]
    detail = (
        f"{feature.name!r} shifted by {direction * delta:+g} (clipped to "
        f"[{_bound(feature.minimum)}, {_bound(feature.maximum)}]): mean {values.mean():.4g} -> {shifted.mean():.4g}; "
        f"{len(changed)} of {len(frame)} rows changed, none invalid"
    )
    injection = Injection(
        "numeric_drift", FILE, (), (feature.name,), detail, drift=True,
        changed_rows=tuple(changed), expected_anomalies={feature.name: (DRIFT,)}, check=DRIFT,
    )  # fmt: skip
    return Output(out, injection)


@error_type("category_drift", FILE, tfdv=(DRIFT,), check=DRIFT, drift=True)
def category_drift(frame: pd.DataFrame, ctx: Context) -> Output:
    """A changed category mix: 60% of the rows set to the feature's rarest category in the
    data set (a new marketing channel, a new branch): every value valid, the mix is off. The
    same feature and category in every drift file of a run."""
    eligible = [f for f in ctx.spec.features if f.is_categorical and len(f.values) > 1]
    feature = _pick_feature(
        ctx, eligible, "categorical feature with two or more values", per_run=True
    )
    basis = (ctx.reference if ctx.reference is not None else frame)[feature.name]
    rarity = basis.value_counts()
    target = min(feature.values, key=lambda v: (int(rarity.get(v, 0)), feature.values.index(v)))
    counts = frame[feature.name].value_counts()
    others = [i for i in range(len(frame)) if frame.at[i, feature.name] != target]
    k = min(len(others), round(CATEGORY_SHIFT_SHARE * len(frame)))
    changed = sorted(int(i) for i in ctx.rng.choice(others, size=k, replace=False))
    out = frame.copy()
    out.loc[changed, feature.name] = target
    before = counts.get(target, 0) / max(len(frame), 1)
    after = (out[feature.name] == target).mean() if len(frame) else 0.0
    detail = (
        f"{len(changed)} of {len(frame)} values of {feature.name!r} set to {target!r}: its share "
        f"went from {before:.0%} to {after:.0%}, every value still in the domain"
    )
    injection = Injection(
        "category_drift", FILE, (), (feature.name,), detail, drift=True,
        changed_rows=tuple(changed), expected_anomalies={feature.name: (DRIFT,)}, check=DRIFT,
    )  # fmt: skip
    return Output(out, injection)


ROW_LEVEL = tuple(name for name, t in REGISTRY.items() if t.level == ROW)
FILE_LEVEL = tuple(name for name, t in REGISTRY.items() if t.level == FILE)
