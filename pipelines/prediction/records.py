"""Turn the text cells of a good_data file into the JSON records `POST /predict` takes.

The conversion is `mlsys.rules.to_records`, the one the UI uses too. The `airflow` environment
cannot parse the schema (protobuf 7), so the feature kinds come from the API itself
(`GET /model-info`): the service and this conversion then always agree on the model they talk
about. Values are converted, never judged: a cell that does not convert is sent as its text,
so that the API's validation names it with the rule the ingestion and the UI use.
"""

from __future__ import annotations

from typing import Any

from mlsys import rules

feature_kinds = rules.feature_kinds
to_records = rules.to_records


def json_value(text: str, kind: str | None) -> Any:
    """One cell as JSON (`mlsys.rules.convert_text`): None for a missing marker, a number for
    numeric features when the text is one, else the stripped text."""
    return rules.convert_text(text, kind)
