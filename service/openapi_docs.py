"""OpenAPI request schema and examples, generated from the feature spec (never typed by hand).

The examples are built so that each one, pasted into the docs' "Try it out" or a curl command,
is a valid request.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from mlsys.features import FeatureSpec, Kind
from mlsys.schema_versions import SchemaWatch
from service.config import ServiceSettings
from service.validation import MAX_SOURCE_FILE_CHARS, MAX_SOURCE_ROW


def record_schema(spec: FeatureSpec) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for f in spec.features:
        if f.kind is Kind.CATEGORICAL:
            prop: dict[str, Any] = {"type": "string", "enum": list(f.values)}
        else:
            prop = {"type": "integer" if f.kind is Kind.INTEGER else "number"}
            if f.minimum is not None:
                prop["minimum"] = f.minimum
            if f.maximum is not None:
                prop["maximum"] = f.maximum
        if f.description:
            prop["description"] = f.description
        properties[f.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": [f.name for f in spec.features if f.required],
        "additionalProperties": False,
    }


def example_record(spec: FeatureSpec, variant: int = 0) -> dict[str, Any]:
    """A valid record: a category from each domain, a number a quarter into each range."""
    record: dict[str, Any] = {}
    for f in spec.features:
        if f.kind is Kind.CATEGORICAL:
            record[f.name] = f.values[(len(f.values) // 2 + variant) % len(f.values)]
            continue
        low = f.minimum if f.minimum is not None else 0.0
        high = f.maximum if f.maximum is not None else low + 100.0
        value = low + (high - low) * (0.25 + 0.25 * (variant % 3))
        record[f.name] = int(value) if f.kind is Kind.INTEGER else round(value, 2)
    return record


def predict_request_schema(spec: FeatureSpec, max_records: int) -> dict[str, Any]:
    """The body `POST /predict` takes, as exactly as JSON Schema can say it: a webapp call has
    no provenance; a scheduled one names its file and one distinct row per record (the one
    rule not expressed: as many `source_rows` as `records`)."""
    records = {
        "type": "array",
        "minItems": 1,
        "maxItems": max_records,
        "items": record_schema(spec),
    }
    webapp = {
        "title": "webapp",
        "type": "object",
        "required": ["source", "records"],
        "additionalProperties": False,
        "properties": {"source": {"const": "webapp"}, "records": records},
    }
    scheduled = {
        "title": "scheduled",
        "type": "object",
        "required": ["source", "source_file", "source_rows", "records"],
        "additionalProperties": False,
        "properties": {
            "source": {"const": "scheduled"},
            "source_file": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_SOURCE_FILE_CHARS,
                "pattern": "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$",
                "description": "the good_data file the records come from (no NUL, not blank)",
            },
            "source_rows": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_records,
                "uniqueItems": True,
                "items": {"type": "integer", "minimum": 0, "maximum": MAX_SOURCE_ROW},
                "description": "the row of each record in source_file, one per record",
            },
            "records": records,
        },
    }
    return {"oneOf": [webapp, scheduled]}


def predict_examples(spec: FeatureSpec) -> dict[str, Any]:
    one, two = example_record(spec, 0), example_record(spec, 1)
    return {
        "one": {
            "summary": "One record from the web app",
            "value": {"source": "webapp", "records": [one]},
        },
        "batch": {
            "summary": "A batch from the web app (all-or-nothing)",
            "value": {"source": "webapp", "records": [one, two]},
        },
        "scheduled": {
            "summary": "Rows of a file from the prediction DAG (idempotent: send it twice)",
            "value": {
                "source": "scheduled",
                "source_file": "example-part-0001.csv",
                "source_rows": [0, 1],
                "records": [one, two],
            },
        },
        "invalid": {
            "summary": "An invalid batch: 422 naming each record and field",
            "value": {"source": "webapp", "records": [one, {**two, spec.names[0]: None}]},
        },
    }


def complete(app: FastAPI, schema: SchemaWatch, conf: ServiceSettings) -> None:
    """Make `app.openapi()` add what the routes cannot declare at import: /predict's request
    body (the current schema's records, at most MAX_BATCH_RECORDS) and /past-predictions'
    largest `limit` (PAST_PREDICTIONS_MAX_LIMIT). The document is cached, and built again
    when the schema file holds a new version."""
    built_for: list[Any] = [None]

    def openapi() -> dict[str, Any]:
        snapshot = schema.current()
        if app.openapi_schema is None or built_for[0] != snapshot.version:
            app.openapi_schema = None
            built_for[0] = snapshot.version
            spec = snapshot.feature_spec(schema.target)
            document = FastAPI.openapi(app)  # builds and caches app.openapi_schema
            document["paths"]["/predict"]["post"]["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": predict_request_schema(spec, conf.max_batch_records),
                        "examples": predict_examples(spec),
                    }
                },
            }
            top = conf.past_predictions_max_limit
            for param in document["paths"]["/past-predictions"]["get"]["parameters"]:
                if param["name"] == "limit":
                    param["description"] = param["schema"]["description"] = (
                        f"page size, at most {top}"
                    )
                    param["schema"]["maximum"] = top
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
