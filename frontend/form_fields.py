"""The single-prediction form: widget bounds and hints from the schema, values -> a record."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mlsys.features import Feature, Kind
from mlsys.rules import format_number


def number_widget_args(feature: Feature) -> dict[str, Any]:
    """Bounds and step of a number input, from the schema's range for this feature."""
    if feature.kind is Kind.INTEGER:
        return {
            "min_value": None if feature.minimum is None else math.ceil(feature.minimum),
            "max_value": None if feature.maximum is None else math.floor(feature.maximum),
            "step": 1,
            "format": "%d",
        }
    return {
        "min_value": feature.minimum,
        "max_value": feature.maximum,
        "step": None,
        "format": "%g",
    }


def range_hint(feature: Feature) -> str:
    if feature.is_categorical:
        return ", ".join(feature.values)
    low = "" if feature.minimum is None else format_number(feature.minimum)
    high = "" if feature.maximum is None else format_number(feature.maximum)
    if low and high:
        return f"{low} to {high}"
    if low:
        return f"at least {low}"
    return f"at most {high}" if high else "any number"


def form_record(
    values: dict[str, Any], features: Sequence[Feature]
) -> tuple[dict[str, Any], list[str]]:
    """The form's values -> (record for the API, names of required fields left empty)."""
    record: dict[str, Any] = {}
    missing = []
    for feature in features:
        value = values.get(feature.name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            if feature.required:
                missing.append(feature.name)
            record[feature.name] = None
        elif feature.kind is Kind.INTEGER:
            record[feature.name] = int(value)
        elif feature.kind is Kind.FLOAT:
            record[feature.name] = float(value)
        else:
            record[feature.name] = str(value)
    return record, missing
