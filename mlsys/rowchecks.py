"""Which rows of a raw file are bad, and why: vectorised checks derived from the schema.

TFDV judges a file as a whole (and its example-level validation is far too slow to split
rows), so the ingestion splits rows with these checks, built from the same schema: the value
rules of `mlsys.rules` (presence, string domains, numeric types and ranges: the same the API and
the UI apply), plus duplicated rows. Plain pandas, so it runs in the
`tfdv` environment (pandas 1.5) as well as in `app` (pandas 3).

Files are read with every cell as text, so that a value is judged (and written to good_data or
bad_data) exactly as it was received.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlsys import csvfile, rules
from mlsys.features import FeatureSpec

# The rules and their missing markers are defined once, in `mlsys.rules`; re-exported here for
# the ingestion's modules and the error injection, which name them through this module.
NA_TOKENS = rules.MISSING_MARKERS
MISSING_VALUE = rules.MISSING_VALUE
UNKNOWN_CATEGORY = rules.UNKNOWN_CATEGORY
NOT_A_NUMBER = rules.NOT_A_NUMBER
NOT_AN_INTEGER = rules.NOT_AN_INTEGER
OUT_OF_RANGE = rules.OUT_OF_RANGE
MISSING_COLUMN = rules.MISSING_COLUMN
UNEXPECTED_COLUMN = rules.UNEXPECTED_COLUMN
# A rule of the ingestion alone: the API and the UI take a batch as given.
DUPLICATE_ROW = "duplicate_row"
# File-level rules of a file that cannot be read as a table live in `mlsys.csvfile`.
EMPTY_FILE = csvfile.EMPTY_FILE
UNREADABLE_FILE = csvfile.UNREADABLE_FILE

RULE_DESCRIPTIONS = {
    **{r: d for r, d in rules.RULE_DESCRIPTIONS.items() if r != rules.WRONG_TYPE},
    DUPLICATE_ROW: "an exact copy of an earlier row of the same file",
    **csvfile.RULE_DESCRIPTIONS,
}


@dataclass(frozen=True)
class Reason:
    row: int  # 0-based data row (header excluded)
    rule: str
    column: str
    value: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


REASON_FIELDS = ("row", "rule", "column", "value")


@dataclass
class RowCheckResult:
    """The verdict of `check_rows`, column-wise: one entry per (row, rule, column) reason.

    `table` is a pandas DataFrame with the columns of REASON_FIELDS plus `message` (the rule's
    message for that value, from `mlsys.rules`), sorted by row, then column,
    then rule; it holds no Python object per reason (a 1,000,000-row file with 100,000 bad rows
    costs a few MB and no per-row loop). `reasons` builds `Reason` objects, for small results.
    """

    rows_total: int
    missing_columns: list[str] = field(default_factory=list)
    unexpected_columns: list[str] = field(default_factory=list)
    table: Any = None  # pandas.DataFrame; None: no reason

    @property
    def unusable(self) -> bool:
        """A required column is missing: every row is bad."""
        return bool(self.missing_columns)

    @property
    def reason_count(self) -> int:
        return 0 if self.table is None else len(self.table)

    @property
    def reasons(self) -> list[Reason]:
        return list(self.iter_reasons())

    def iter_reasons(self):
        """The reasons one by one, in table order (row, column, rule)."""
        if self.table is None:
            return
        t = self.table
        for row, rule, column, value in zip(
            t["row"].to_numpy(), t["rule"].to_numpy(), t["column"].to_numpy(),
            t["value"].to_numpy(), strict=True,
        ):  # fmt: skip
            yield Reason(int(row), rule, column, value)

    def bad_row_index(self):
        """The bad rows as a sorted numpy array of distinct row numbers."""
        import numpy as np

        if self.unusable:
            return np.arange(self.rows_total)
        if self.table is None:
            return np.empty(0, dtype=np.int64)
        return np.unique(self.table["row"].to_numpy())

    @property
    def bad_rows(self) -> list[int]:
        return [int(r) for r in self.bad_row_index()]

    def counts_by_rule(self) -> dict[tuple[str, str], int]:
        """(rule, column) -> number of distinct rows it affects."""
        counts: dict[tuple[str, str], int] = {}
        if self.table is not None:
            grouped = self.table.groupby(["rule", "column"], sort=False)["row"].nunique()
            counts = {(rule, column): int(n) for (rule, column), n in grouped.items()}
        for column in self.missing_columns:
            counts[(MISSING_COLUMN, column)] = self.rows_total
        for column in self.unexpected_columns:
            counts[(UNEXPECTED_COLUMN, column)] = 0
        return counts

    def examples(self) -> dict[tuple[str, str], str]:
        """(rule, column) -> the first non-empty offending value, if any."""
        if self.table is None:
            return {}
        t = self.table[self.table["value"] != ""]
        first = t.groupby(["rule", "column"], sort=False)["value"].first()
        return {(rule, column): str(v) for (rule, column), v in first.items()}


def read_raw_csv(path) -> Any:
    """The text frame of a CSV file (`mlsys.csvfile.read_csv`: every cell a str as received,
    unique column names, RangeIndex); raises `csvfile.CsvRefused` (a ValueError) naming the
    problem for a file that cannot be read as a table."""
    return csvfile.read_csv(path).frame


def check_rows(frame, spec: FeatureSpec) -> RowCheckResult:
    """Judge every row of a text frame (see `read_raw_csv`) against the feature spec.

    The value rules are `mlsys.rules` (`judge_column`: once per distinct value of a column,
    spread to the rows through the column's codes: no Python work per row or per bad cell);
    this adds the ingestion's own rule, duplicated rows. Row numbers are the frame's index.
    """
    import numpy as np
    import pandas as pd

    result = RowCheckResult(rows_total=len(frame))
    columns = [str(c) for c in frame.columns]
    result.missing_columns = [f.name for f in spec.features if f.required and f.name not in columns]
    result.unexpected_columns = [c for c in columns if c not in set(spec.names)]
    if result.unusable:
        return result

    index = frame.index.to_numpy()
    parts: list[tuple[Any, Any, str, Any, Any]] = []  # (positions, rules, column, values, messages)
    row_key = np.zeros(len(frame), dtype=np.int64)
    for feature in spec.features:
        if feature.name not in columns:
            continue  # optional and absent
        verdict = rules.judge_column(feature, frame[feature.name])
        row_key = _combine(row_key, verdict.codes, len(verdict.raw) - 1)
        bad = verdict.rules != None  # noqa: E711
        if bad.any():
            positions = np.flatnonzero(bad[verdict.codes])
            cells = verdict.codes[positions]
            parts.append(
                (positions, verdict.rules[cells], feature.name, verdict.raw[cells],
                 verdict.messages[cells])
            )  # fmt: skip

    # A row is a copy of an earlier one when every feature's value is: its combined code.
    duplicated = np.flatnonzero(pd.Series(row_key).duplicated(keep="first").to_numpy())
    if duplicated.size:

        def same(value):
            return np.full(duplicated.size, value, dtype=object)

        parts.append(
            (duplicated, same(DUPLICATE_ROW), "", same(""), same(RULE_DESCRIPTIONS[DUPLICATE_ROW]))
        )
    if parts:
        rows = np.concatenate([index[p[0]] for p in parts]).astype(np.int64)
        rule_names = np.concatenate([p[1] for p in parts])
        cols = np.concatenate([np.full(len(p[0]), p[2], dtype=object) for p in parts])
        values = np.concatenate([p[3] for p in parts])
        messages = np.concatenate([p[4] for p in parts])
        # Sorted as (row, column, rule), with integer keys: no Python comparison per reason.
        col_rank = {c: i for i, c in enumerate(sorted({p[2] for p in parts}))}
        order = np.lexsort(
            (
                pd.Categorical(rule_names, categories=sorted(pd.unique(rule_names))).codes,
                np.concatenate([np.full(len(p[0]), col_rank[p[2]]) for p in parts]),
                rows,
            )
        )
        result.table = pd.DataFrame(
            {"row": rows[order], "rule": rule_names[order], "column": cols[order],
             "value": values[order], "message": messages[order]}
        )  # fmt: skip
    return result


def _combine(key, codes, n_uniques: int):
    """One integer per distinct (previous key, value) pair, below the number of rows: the
    features' codes combined without the frame copy and hashing of DataFrame.duplicated."""
    import numpy as np
    import pandas as pd

    combined = key * (n_uniques + 1) + (codes.astype(np.int64) + 1)  # code -1: missing
    return pd.factorize(combined)[0].astype(np.int64)
