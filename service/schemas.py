"""Response shapes, for the OpenAPI docs (answers are serialised with orjson, not by pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class StoredPrediction(BaseModel):
    id: int
    created_at: datetime
    source: str = Field(examples=["webapp"])
    prediction: str = Field(description="the predicted class", examples=["1"])
    probability: float = Field(description="probability of the positive class", examples=[0.83])
    model_version: str = Field(examples=["lgbm-f9ccf6ea4d43"])
    source_file: str | None = None
    source_row: int | None = None
    features: dict[str, Any]
    unseen_features: list[str] = Field(
        default=[],
        description="features whose value no training row had (a category the model never "
        "saw, a number outside the training minimum and maximum, a missing value where "
        "training had none), in feature order; empty for most predictions",
        examples=[["purpose"]],
    )


class PredictResponse(BaseModel):
    model_version: str
    stored: int = Field(description="predictions written by this call")
    already_stored: int = Field(
        description="scheduled rows that were stored before, returned as stored"
    )
    predictions: list[StoredPrediction] = Field(description="in the order of the records")
    schema_version: str | None = Field(
        default=None,
        description="the schema version the records were validated by",
        examples=["v3 (1a2b3c4d)"],
    )


class ErrorItem(BaseModel):
    record: int | None = Field(
        description="index of the record in `records`; null: the body itself"
    )
    field: str | None
    value: Any = None
    rule: str | None = Field(
        default=None,
        description="the broken rule of mlsys/rules.py (out_of_range, ...); null: the body",
    )
    message: str


class ErrorResponse(BaseModel):
    detail: str
    errors: list[ErrorItem] | None = None
    error_count: int | None = Field(
        default=None, description="all problems found (at most 1,000 listed)"
    )
    schema_version: str | None = Field(
        default=None,
        description="the schema version the request was judged by (once its rules applied)",
        examples=["v3 (1a2b3c4d)"],
    )


class PastPredictions(BaseModel):
    items: list[StoredPrediction]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last page"
    )


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    database: str = Field(examples=["ok"])
    model: str = Field(examples=["lgbm-f9ccf6ea4d43"])
