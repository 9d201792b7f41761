"""Turn the text cells of a good_data file into the JSON records `POST /predict` takes.

The `airflow` environment cannot parse the schema (protobuf 7), so the feature kinds come from
the API itself (`GET /model-info`): the service and this conversion then always agree on the
model they talk about. Values are converted, never judged: a cell that does not convert is sent
as it is, so that the API's validation (the one place that judges records) names it.
"""

from __future__ import annotations

import math
import re
from typing import Any

from mlsys.rowchecks import NA_TOKENS

NUMERIC_KINDS = frozenset({"integer", "float"})
# Python's int() and float() also accept "1_000"; the row checks (pandas) do not.
_INTEGER = re.compile(r"[+-]?\d+")


def feature_kinds(model_info: dict[str, Any]) -> dict[str, str]:
    """{feature name: 'categorical' | 'integer' | 'float'} from a `GET /model-info` answer."""
    try:
        return {str(f["name"]): str(f["kind"]) for f in model_info["features"]}
    except (KeyError, TypeError) as exc:
        raise ValueError(f"GET /model-info has no usable 'features' list: {exc!r}") from None


def json_value(text: str, kind: str | None) -> Any:
    """One cell as JSON: None when missing, a number for numeric features, else the text.

    Stripped, because the ingestion's row checks judged the stripped text (" male" passed them
    as "male"); missing means one of the NA markers the row checks (and TFDV) treat as missing.
    """
    cell = text.strip()
    if cell in NA_TOKENS:
        return None
    if kind not in NUMERIC_KINDS:
        return cell
    if _INTEGER.fullmatch(cell):
        return int(cell)
    if "_" in cell:
        return cell
    try:
        number = float(cell)
    except ValueError:
        return cell
    # JSON has no NaN or infinity: the API explains the original text better.
    return number if math.isfinite(number) else cell


def to_records(frame: Any, kinds: dict[str, str]) -> list[dict[str, Any]]:
    """The rows of a text frame (`mlsys.rowchecks.read_raw_csv`) as JSON records, in order.

    Columns the model does not know are sent too (as text), so that the API refuses the file
    with a precise reason instead of this code dropping data silently.
    """
    columns = [str(c) for c in frame.columns]
    column_kinds = [kinds.get(c) for c in columns]
    return [
        {c: json_value(v, k) for c, k, v in zip(columns, column_kinds, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]
