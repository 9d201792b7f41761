"""What a valid value is, once, from the schema: the rules the ingestion, the API and the UI apply.

Every rule is derived from the feature spec (`mlsys.features`, read from `schema/schema.pbtxt`):
presence (required or not), a categorical feature's domain, a numeric feature's type
(integer or float) and range, and the columns themselves (none missing, none unknown). Each rule
has one name and one message, whoever applies it:

| rule | when | TFDV's anomaly for the same thing |
|---|---|---|
| `missing_value` | a required feature has no value (a missing marker, JSON null) | FEATURE_TYPE_LOW_FRACTION_PRESENT |
| `unknown_category` | a categorical value outside the domain (case counts) | ENUM_TYPE_UNEXPECTED_STRING_VALUES |
| `not_a_number` | a numeric feature holds text, infinity, or NaN sent as a JSON number | INT_TYPE_NOT_INT_STRING, FLOAT_TYPE_STRING_NOT_FLOAT, FLOAT_TYPE_HAS_INF |
| `not_an_integer` | an integer feature holds a fractional number | UNEXPECTED_DATA_TYPE |
| `out_of_range` | a number outside the schema's range, or beyond +-2**53 | INT_TYPE_SMALL_INT, INT_TYPE_BIG_INT, FLOAT_TYPE_SMALL_FLOAT, FLOAT_TYPE_BIG_FLOAT |
| `wrong_type` | (JSON only) a value of the wrong JSON type: a boolean, a list, a number for a category, a numeric string | UNEXPECTED_DATA_TYPE |
| `missing_column` | a required feature's column (or a record's field) is absent | SCHEMA_MISSING_COLUMN |
| `unexpected_column` | a column (or field) the schema does not know | SCHEMA_NEW_COLUMN |

The names are the ones the ingestion has always stored (issues table, Grafana, reports, error
injection's `check`), so nothing stored changes name; `TFDV_ANOMALIES` maps them to TFDV's.

Two forms of input, one judgement:
- CSV text (ingestion, UI): `check_frame` judges a frame of text cells (`mlsys.csvfile.read_csv`)
  vectorised, once per distinct value of each column, and `to_records` turns the same text into
  the JSON records `POST /predict` takes (the prediction DAG and the UI send those).
- JSON values (API): `CompiledFeature.judge_json` per value and `encode_clean_batch` for a whole
  clean batch, precompiled once per process (the API's hot path).
A cell of text converts (`convert_text`) to the JSON value the API then judges with the same
rule and the same message as the text rules: the table test `tests/data/test_rules_agree.py`
sends the same cells through the ingestion, the UI and the live API and checks they agree.

Missing markers (`MISSING_MARKERS`): a cell is missing when its text, stripped of surrounding
white space, is empty or one of pandas' default NA strings (`pandas.read_csv`'s `na_values`:
"NA", "N/A", "NULL", "None", "nan", "#N/A", ...). One list because the ingestion hands TFDV a
frame where exactly these cells are missing (as `pandas.read_csv` would have made them, the
convention of every CSV written by pandas); judging "NA" as text anywhere else (the UI used to
call it "not a number", and "None" an unknown category) would split one file differently in
the UI and in the ingestion. In JSON, null is the missing marker: the API judges a string as a
string, and `to_records` turns a marker cell into null before sending. A categorical domain
value that is also a marker (say "NA" for North America) could never be matched: rename it in
the data and the schema.

Surrounding white space is not part of a CSV value (" 5 " is 5, " male" is "male"); case is
("Male" is not "male": the model's encoding is exact). An integer feature takes any whole number
("5.0", "1e3"); NaN and infinity are never numbers the model can use.

An extra column does not make a CSV row invalid: the ingestion drops it from good data and the
UI ignores it, both reporting it (`unexpected_column`). The API, whose contract is the exact list
of features, refuses a record holding an unknown field, with the same rule and message.

Plain numpy and pandas (no protobuf, imported lazily), so this module runs in the `app`,
`tfdv` (pandas 1.5) and `airflow` environments alike.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mlsys.features import Feature, FeatureSpec, Kind

# pandas' default NA strings (pandas._libs.parsers.STR_NA_VALUES), compared after stripping.
MISSING_MARKERS = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip

MISSING_VALUE = "missing_value"
UNKNOWN_CATEGORY = "unknown_category"
NOT_A_NUMBER = "not_a_number"
NOT_AN_INTEGER = "not_an_integer"
OUT_OF_RANGE = "out_of_range"
WRONG_TYPE = "wrong_type"
MISSING_COLUMN = "missing_column"
UNEXPECTED_COLUMN = "unexpected_column"

RULE_DESCRIPTIONS = {
    MISSING_VALUE: "a required feature has no value",
    UNKNOWN_CATEGORY: "the value is not in the feature's domain",
    NOT_A_NUMBER: "a numeric feature holds text (or an infinite number)",
    NOT_AN_INTEGER: "an integer feature holds a fractional number",
    OUT_OF_RANGE: "the number is outside the schema's range",
    WRONG_TYPE: "a value of the wrong JSON type",
    MISSING_COLUMN: "a required column is absent: no row can be used",
    UNEXPECTED_COLUMN: "a column the schema does not know (dropped from good data)",
}
TFDV_ANOMALIES: dict[str, tuple[str, ...]] = {
    MISSING_VALUE: ("FEATURE_TYPE_LOW_FRACTION_PRESENT",),
    UNKNOWN_CATEGORY: ("ENUM_TYPE_UNEXPECTED_STRING_VALUES",),
    NOT_A_NUMBER: ("INT_TYPE_NOT_INT_STRING", "FLOAT_TYPE_STRING_NOT_FLOAT", "FLOAT_TYPE_HAS_INF"),
    NOT_AN_INTEGER: ("UNEXPECTED_DATA_TYPE",),
    OUT_OF_RANGE: ("INT_TYPE_SMALL_INT", "INT_TYPE_BIG_INT", "FLOAT_TYPE_SMALL_FLOAT",
                   "FLOAT_TYPE_BIG_FLOAT"),
    WRONG_TYPE: ("UNEXPECTED_DATA_TYPE",),
    MISSING_COLUMN: ("SCHEMA_MISSING_COLUMN",),
    UNEXPECTED_COLUMN: ("SCHEMA_NEW_COLUMN",),
}  # fmt: skip

# The model computes in doubles, which hold integers exactly only up to 2**53 (and a 400-digit
# integer does not even convert to one): numbers beyond are out of range for every feature.
MAX_EXACT_INT = 2**53
# How many feature names (or domain values) a message lists before pointing to GET /model-info.
MAX_NAMED_FEATURES = 30
# A value is quoted in a message up to this many characters (a cell can be megabytes long).
MAX_QUOTED_CHARS = 100

PROBLEM_FIELDS = ("row", "column", "value", "rule", "message")


# --- messages: one per rule, whoever applies it ---------------------------------------------


def format_number(number: float) -> str:
    """A number as messages show it: 5, -1.5, 100000000000000000000 (no '5.0', no 'e+20');
    one of more than 40 digits cut short, saying how many it has."""
    if type(number) is int or (math.isfinite(number) and number.is_integer()):
        text = str(int(number))
        return text if len(text) <= 40 else f"{text[:20]}... ({len(text.lstrip('-'))} digits)"
    return repr(number)


def quoted(text: str) -> str:
    """`text` quoted for a message, cut to MAX_QUOTED_CHARS characters."""
    if len(text) <= MAX_QUOTED_CHARS:
        return repr(text)
    return repr(text[:MAX_QUOTED_CHARS]) + f"... ({len(text)} characters)"


def domain_text(feature: Feature) -> str:
    """The domain as messages list it: 'a', 'b', 'c' (the first MAX_NAMED_FEATURES values)."""
    values = feature.values
    listed = ", ".join(repr(v) for v in values[:MAX_NAMED_FEATURES])
    more = len(values) - MAX_NAMED_FEATURES
    return listed if more <= 0 else f"{listed} and {more} more (see GET /model-info)"


def missing_value_message() -> str:
    return "a value is required"


def unknown_category_message(feature: Feature, text: str) -> str:
    return f"{quoted(text)} is not one of {domain_text(feature)}"


def not_a_number_message(text: str, *, finite_only: bool = False) -> str:
    """`text`: the value as written; `finite_only`: it reads as a number, but an infinite one
    or NaN (which no model input can be)."""
    return f"{quoted(text)} is not {'a finite' if finite_only else 'a'} number"


def not_an_integer_message(number: float) -> str:
    return f"{format_number(number)} is not an integer"


def out_of_range_message(feature: Feature, number: float) -> str | None:
    """The out-of-range message for `number`, or None when it is within the feature's range
    (and within +-MAX_EXACT_INT)."""
    if not -MAX_EXACT_INT <= number <= MAX_EXACT_INT:
        return f"{format_number(number)} is too large: at most {MAX_EXACT_INT} in absolute value"
    if feature.minimum is not None and number < feature.minimum:
        return f"{format_number(number)} is below the minimum {format_number(feature.minimum)}"
    if feature.maximum is not None and number > feature.maximum:
        return f"{format_number(number)} is above the maximum {format_number(feature.maximum)}"
    return None


def missing_column_message() -> str:
    return "is absent: the model needs this feature"


def unexpected_column_message(names: Sequence[str]) -> str:
    listed = ", ".join(names) if len(names) <= MAX_NAMED_FEATURES else "see GET /model-info"
    return f"is not a feature of the model (the features are: {listed})"


def json_type(value: Any) -> str:
    """'null', 'a boolean', 'a number', 'a string', 'an array' or 'an object'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def wrong_type_message(feature: Feature, value: Any) -> str:
    if feature.kind is Kind.CATEGORICAL:
        return f"must be a string, one of {domain_text(feature)}; got {json_type(value)}"
    expected = "an integer" if feature.kind is Kind.INTEGER else "a number"
    return f"must be {expected}, got {json_type(value)}"


@dataclass(frozen=True)
class Problem:
    """One value (or column) at fault.

    `row`: the 0-based position of the row in the frame (the record's index in a JSON batch);
    None for a whole column. `value`: the cell as received (text), or the JSON value.
    """

    row: int | None
    column: str
    value: Any
    rule: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- text cells -------------------------------------------------------------------------------


def _is_numeric(kind: Kind | str | None) -> bool:
    return kind in (Kind.INTEGER, Kind.FLOAT, "integer", "float")


def convert_texts(texts: Sequence[str], kind: Kind | str | None) -> tuple[Any, Any, Any]:
    """Convert distinct cells of one column; vectorised, the one parser of CSV numbers.

    `texts`: the cells as received (str). Returns three numpy arrays of len(texts):
    `values` (object): the JSON value of each cell: None for a missing marker; for a numeric
    `kind` the number when the stripped text is one (pandas' parser: "5", " 5 ", "5.0", "1e3",
    "-2.5"; not "1_000" or "0x10"), an int when whole for an integer feature, a float otherwise,
    and the stripped text when it is not a finite number; the stripped text for any other kind.
    `missing` (bool): the cell is a missing marker. `numbers` (float): the parsed number, NaN
    where the cell is missing or not a number (infinity stays infinity).
    """
    import numpy as np
    import pandas as pd

    text = np.array([str(t).strip() for t in texts], dtype=object)
    missing = np.isin(text, list(MISSING_MARKERS))
    numbers = np.full(len(text), np.nan)
    values = np.where(missing, None, text).astype(object)
    if not _is_numeric(kind) or not len(text):
        return values, missing, numbers
    parsed = pd.to_numeric(pd.Series(np.where(missing, None, text)), errors="coerce")
    numbers = np.asarray(parsed.to_numpy(dtype=float, na_value=np.nan), dtype=float)
    finite = np.isfinite(numbers)
    values[finite] = numbers[finite].astype(object)  # Python floats
    if kind in (Kind.INTEGER, "integer"):
        with np.errstate(invalid="ignore"):
            whole = finite & (numbers == np.round(numbers)) & (np.abs(numbers) <= MAX_EXACT_INT)
        values[whole] = numbers[whole].astype(np.int64).astype(object)  # Python ints
    return values, missing, numbers


def convert_text(text: str, kind: Kind | str | None) -> Any:
    """One cell -> its JSON value (see `convert_texts`): None, a number, or the stripped text."""
    values, _, _ = convert_texts([text], kind)
    return values[0]


@dataclass
class ColumnVerdict:
    """One column judged once per distinct cell (see `judge_column`).

    `codes`: int array, one per row, the index of the row's cell in the arrays below.
    `raw`: object array of the distinct cells as received. `values`: the typed value of each
    (int, float, str or None; None where invalid). `rules` and `messages`: object arrays, None
    where the cell is valid.
    """

    codes: Any
    raw: Any
    values: Any
    rules: Any
    messages: Any


def judge_texts(feature: Feature, texts: Sequence[str]) -> tuple[Any, Any, Any]:
    """Judge distinct cells of one feature's column: the rules on text, vectorised.

    Returns three object arrays of len(texts): typed values (None where missing or invalid),
    rule names and messages (None where valid). At most one rule per cell, in this order:
    missing_value, unknown_category | not_a_number, not_an_integer, out_of_range.
    """
    import numpy as np

    values, missing, numbers = convert_texts(texts, feature.kind)
    rules = np.full(len(values), None, dtype=object)
    messages = np.full(len(values), None, dtype=object)
    present = ~missing
    if feature.required:
        rules[missing] = MISSING_VALUE
        messages[missing] = missing_value_message()
    # Masks with numpy; a message is written only for the (few) distinct values at fault.
    if feature.kind is Kind.CATEGORICAL:
        # Missing cells as "" (never a domain value: it is a marker), so that np.isin compares
        # strings only (its sorting path cannot order None among them).
        known = np.isin(np.where(missing, "", values).astype(str), list(feature.values))
        for i in np.flatnonzero(present & ~known):
            rules[i] = UNKNOWN_CATEGORY
            messages[i] = unknown_category_message(feature, values[i])
    else:
        finite = np.isfinite(numbers)
        for i in np.flatnonzero(present & ~finite):
            rules[i] = NOT_A_NUMBER
            messages[i] = not_a_number_message(values[i], finite_only=not math.isnan(numbers[i]))
        ok = present & finite
        if feature.kind is Kind.INTEGER:
            with np.errstate(invalid="ignore"):
                fractional = ok & (numbers != np.round(numbers))
            for i in np.flatnonzero(fractional):
                rules[i] = NOT_AN_INTEGER
                messages[i] = not_an_integer_message(float(numbers[i]))
            ok &= ~fractional
        low = -MAX_EXACT_INT if feature.minimum is None else max(feature.minimum, -MAX_EXACT_INT)
        high = MAX_EXACT_INT if feature.maximum is None else min(feature.maximum, MAX_EXACT_INT)
        with np.errstate(invalid="ignore"):
            outside = ok & ((numbers < low) | (numbers > high))
        for i in np.flatnonzero(outside):
            rules[i] = OUT_OF_RANGE
            messages[i] = out_of_range_message(feature, values[i])
    typed = np.where((rules == None) & ~missing, values, None).astype(object)  # noqa: E711
    return typed, rules, messages


def judge_column(feature: Feature, column) -> ColumnVerdict:
    """A text column (pandas Series of str) judged once per distinct value, for every row.

    A column of a million rows has at most a few thousand distinct values in practice, so the
    rules run per distinct value and spread to rows through the codes: no Python work per row.
    """
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(column)
    # One entry per distinct value, plus a last one for a cell pandas holds as missing (-1).
    raw = np.array([str(u) for u in uniques] + [""], dtype=object)
    typed, rules, messages = judge_texts(feature, raw)
    return ColumnVerdict(np.asarray(codes), raw, typed, rules, messages)


def _features(spec: FeatureSpec | Sequence[Feature]) -> tuple[Feature, ...]:
    return spec.features if isinstance(spec, FeatureSpec) else tuple(spec)


@dataclass
class FrameCheck:
    """The verdict of `check_frame` on a text frame of n rows.

    `missing_columns`: required features without a column (every row is then invalid);
    `unexpected_columns`: columns the schema does not know (ignored: they invalidate no row);
    `problems`: a pandas DataFrame with the columns PROBLEM_FIELDS, one row per invalid cell
    (at most one rule per cell), sorted by row then by the features' order; `row` is the 0-based
    position in the frame, `value` the cell as received. `verdicts`: feature name -> its
    `ColumnVerdict` (features with a column only).
    """

    rows_total: int
    features: tuple[Feature, ...]
    missing_columns: list[str] = field(default_factory=list)
    unexpected_columns: list[str] = field(default_factory=list)
    problems: Any = None  # pandas.DataFrame
    verdicts: dict[str, ColumnVerdict] = field(default_factory=dict)

    @property
    def unusable(self) -> bool:
        """A required column is missing: no row can be used."""
        return bool(self.missing_columns)

    def invalid_rows(self):
        """Sorted numpy int array of the 0-based positions of the invalid rows."""
        import numpy as np

        if self.unusable:
            return np.arange(self.rows_total)
        return np.unique(self.problems["row"].to_numpy()).astype(np.int64)

    def valid_rows(self):
        """Sorted numpy int array of the 0-based positions of the valid rows."""
        import numpy as np

        keep = np.ones(self.rows_total, dtype=bool)
        keep[self.invalid_rows()] = False
        return np.flatnonzero(keep)

    def column_problems(self) -> list[Problem]:
        """The missing and unexpected columns, as problems with `row` None and `value` ''."""
        names = [f.name for f in self.features]
        return [
            Problem(None, c, "", MISSING_COLUMN, missing_column_message())
            for c in self.missing_columns
        ] + [
            Problem(None, c, "", UNEXPECTED_COLUMN, unexpected_column_message(names))
            for c in self.unexpected_columns
        ]

    def cell_problems(self, limit: int | None = None) -> list[Problem]:
        """The first `limit` (default: all) rows of `problems` as `Problem` objects."""
        t = self.problems if limit is None else self.problems.iloc[:limit]
        return [
            Problem(int(row), column, value, rule, message)
            for row, column, value, rule, message in zip(
                t["row"].to_numpy(), t["column"].to_numpy(), t["value"].to_numpy(),
                t["rule"].to_numpy(), t["message"].to_numpy(), strict=True,
            )
        ]  # fmt: skip

    def valid_records(self, frame) -> list[dict[str, Any]]:
        """The JSON records (`to_records`) of the valid rows of `frame` (the frame this check
        judged), in row order, keyed by the features in their order: unknown columns left out,
        an optional feature without a column as None. Pair them with `valid_rows()`."""
        names = [f.name for f in self.features]
        present = [n for n in names if n in self.verdicts]
        rows = self.valid_rows()
        converted = to_records(frame.iloc[rows][present], self.features)
        if len(present) == len(names):
            return converted
        return [{n: record.get(n) for n in names} for record in converted]

    def typed(self, rows=None):
        """The typed values (int, float, str; None where missing) of `rows` (0-based
        positions, default: the valid rows), as a pandas DataFrame of object columns in the
        features' order, indexed by those positions: what `records_of_typed` sends."""
        import numpy as np
        import pandas as pd

        rows = self.valid_rows() if rows is None else np.asarray(rows, dtype=np.int64)
        columns = {}
        for feature in self.features:
            verdict = self.verdicts.get(feature.name)
            if verdict is None:
                columns[feature.name] = np.full(len(rows), None, dtype=object)
            else:
                columns[feature.name] = verdict.values[verdict.codes[rows]]
        return pd.DataFrame(columns, index=pd.Index(rows), dtype=object)


def check_frame(frame, spec: FeatureSpec | Sequence[Feature]) -> FrameCheck:
    """Judge every cell of a text frame (`mlsys.csvfile.read_csv(...).frame`: str cells,
    RangeIndex) against the features (a `FeatureSpec`, or the `Feature`s from /model-info).

    Returns a `FrameCheck`; raises nothing for bad data (every problem is in the result).
    """
    import numpy as np
    import pandas as pd

    features = _features(spec)
    names = [f.name for f in features]
    columns = [str(c) for c in frame.columns]
    check = FrameCheck(rows_total=len(frame), features=features)
    check.missing_columns = [f.name for f in features if f.required and f.name not in columns]
    known = set(names)
    check.unexpected_columns = [c for c in columns if c not in known]
    parts = []
    for rank, feature in enumerate(features):
        if feature.name not in columns:
            continue
        verdict = judge_column(feature, frame[feature.name])
        check.verdicts[feature.name] = verdict
        bad = verdict.rules != None  # noqa: E711
        if bad.any():
            rows = np.flatnonzero(bad[verdict.codes])
            cells = verdict.codes[rows]
            parts.append((rows, rank, feature.name, cells, verdict))
    if parts:
        rows = np.concatenate([p[0] for p in parts]).astype(np.int64)
        ranks = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
        order = np.lexsort((ranks, rows))
        check.problems = pd.DataFrame(
            {
                "row": rows[order],
                "column": np.concatenate([np.full(len(p[0]), p[2], dtype=object) for p in parts])[order],
                "value": np.concatenate([p[4].raw[p[3]] for p in parts])[order],
                "rule": np.concatenate([p[4].rules[p[3]] for p in parts])[order],
                "message": np.concatenate([p[4].messages[p[3]] for p in parts])[order],
            }
        )  # fmt: skip
    else:
        check.problems = pd.DataFrame(
            {name: np.empty(0, dtype=np.int64 if name == "row" else object)
             for name in PROBLEM_FIELDS}
        )  # fmt: skip
    return check


# --- CSV text -> /predict records -------------------------------------------------------------


def feature_kinds(model_info: Mapping[str, Any]) -> dict[str, str]:
    """{feature name: 'categorical' | 'integer' | 'float'} from a `GET /model-info` answer;
    raises ValueError when it has no usable 'features' list."""
    try:
        return {str(f["name"]): str(f["kind"]) for f in model_info["features"]}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"GET /model-info has no usable 'features' list: {exc!r}") from None


def to_records(frame, kinds: Mapping[str, str] | Sequence[Feature]) -> list[dict[str, Any]]:
    """The rows of a text frame (`mlsys.csvfile.read_csv(...).frame`) as the JSON records
    `POST /predict` takes: one dict per row, in order, keyed by the frame's columns.

    `kinds`: {name: kind} (`feature_kinds` of /model-info, for the `airflow` environment that
    cannot parse the schema) or the `Feature`s. Values are converted (`convert_texts`), never
    judged: a cell that does not convert is sent as its stripped text, and columns the model
    does not know are sent too, so that the API names each problem with its rule.
    """
    import numpy as np
    import pandas as pd

    if not isinstance(kinds, Mapping):
        kinds = {f.name: f.kind.value for f in kinds}
    columns = [str(c) for c in frame.columns]
    converted = []
    for position, name in enumerate(columns):
        codes, uniques = pd.factorize(frame.iloc[:, position])
        raw = np.array([str(u) for u in uniques] + [""], dtype=object)
        values, _, _ = convert_texts(raw, kinds.get(name))
        converted.append(values[np.asarray(codes)].tolist())
    if not columns:
        return [{} for _ in range(len(frame))]
    return [dict(zip(columns, row, strict=True)) for row in zip(*converted, strict=True)]


def records_of_typed(typed) -> list[dict[str, Any]]:
    """A typed frame (`FrameCheck.typed`) -> JSON-ready records (Python int, float, str, None)."""
    columns = [str(c) for c in typed.columns]
    return [dict(zip(columns, row, strict=True)) for row in typed.itertuples(index=False)]


# --- JSON values (the API) --------------------------------------------------------------------


class CompiledFeature:
    """One feature's rules precompiled for JSON values: built once per process by the API."""

    __slots__ = ("feature", "name", "kind", "codes", "low", "high", "required", "integer",
                 "lowest", "highest")  # fmt: skip

    def __init__(self, feature: Feature):
        self.feature = feature
        self.name = feature.name
        self.kind = feature.kind
        self.codes = feature.code_of() if feature.is_categorical else None
        self.low = feature.minimum
        self.high = feature.maximum
        self.required = feature.required
        self.integer = feature.kind is Kind.INTEGER
        # The schema's range within +-MAX_EXACT_INT: one chained comparison per value.
        low = -MAX_EXACT_INT if feature.minimum is None else feature.minimum
        high = MAX_EXACT_INT if feature.maximum is None else feature.maximum
        self.lowest = max(low, -MAX_EXACT_INT)
        self.highest = min(high, MAX_EXACT_INT)

    def judge_json(self, value: Any) -> tuple[float, Any, str | None, str | None]:
        """(encoded float for the model, normalised value, rule or None, message or None).

        `value` is a parsed JSON value, or `ABSENT` when the record lacks the field. An
        integral float for an integer feature normalises to an int; a string for a numeric
        feature is `not_a_number` when its text is not a finite number (what `to_records`
        sends for such a cell), `wrong_type` when it is (send the number itself).
        """
        if value is None or value is ABSENT:
            if not self.required:
                return math.nan, None, None, None
            if value is None:
                return math.nan, None, MISSING_VALUE, missing_value_message()
            return math.nan, None, MISSING_COLUMN, missing_column_message()
        codes = self.codes
        if codes is not None:
            code = codes.get(value) if type(value) is str else None
            if code is not None:
                return float(code), value, None, None
            if type(value) is not str:
                return math.nan, value, WRONG_TYPE, wrong_type_message(self.feature, value)
            return math.nan, value, UNKNOWN_CATEGORY, unknown_category_message(self.feature, value)
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                # JSON NaN/Infinity (the parser keeps them, to be named here, by field).
                message = not_a_number_message(str(value), finite_only=True)
                return math.nan, value, NOT_A_NUMBER, message
            if self.integer:
                if not value.is_integer():
                    return math.nan, value, NOT_AN_INTEGER, not_an_integer_message(value)
                if -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
                    value = int(value)
        elif kind is not int:  # bool is not int here: type(True) is bool
            if kind is str:
                number = convert_texts([value], self.kind)[2][0]
                if not math.isfinite(number):
                    message = not_a_number_message(value, finite_only=not math.isnan(number))
                    return math.nan, value, NOT_A_NUMBER, message
            return math.nan, value, WRONG_TYPE, wrong_type_message(self.feature, value)
        if self.lowest <= value <= self.highest:
            return float(value), value, None, None
        return math.nan, value, OUT_OF_RANGE, out_of_range_message(self.feature, value)


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Any = _Absent()  # a record's field that is not there (distinct from JSON null)


def compile_features(spec: FeatureSpec | Sequence[Feature]) -> list[CompiledFeature]:
    """The features' rules precompiled for `judge_json` and `encode_clean_batch`."""
    return [CompiledFeature(f) for f in _features(spec)]


def encode_clean_batch(
    columns: Sequence[CompiledFeature], name_set: frozenset[str], records: list[Any]
):
    """The model's float matrix (len(records) x len(columns), numpy float64) of a batch that
    breaks no rule and needs no normalising, column by column; None at the first surprise
    (then judge each value with `judge_json` to find and name every problem).

    Much faster than a per-value pass on 10,000 records: one list comprehension per column,
    ranges checked with numpy. `name_set`: the features' names.
    """
    import numpy as np

    for record in records:
        if type(record) is not dict or record.keys() != name_set:
            return None
    matrix = np.empty((len(records), len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        values = [record[col.name] for record in records]
        if col.kind is Kind.CATEGORICAL:
            codes = col.codes
            try:
                matrix[:, j] = [codes[v] for v in values]
            except (KeyError, TypeError):  # unknown category, or a list/dict value
                return None
            continue
        if col.kind is Kind.INTEGER:
            if not all(type(v) is int for v in values):
                return None
        elif not all(type(v) is float or type(v) is int for v in values):
            return None
        try:
            column = np.array(values, dtype=np.float64)
        except OverflowError:
            return None
        if not np.isfinite(column).all() or np.abs(column).max() > MAX_EXACT_INT:
            return None
        if col.low is not None and column.min() < col.low:
            return None
        if col.high is not None and column.max() > col.high:
            return None
        matrix[:, j] = column
    return matrix
