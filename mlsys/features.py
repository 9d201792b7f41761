"""The feature list, read from the curated TFDV schema (`schema/schema.pbtxt`).

Everything that needs to know the features (the model, the API's request validation, the UI's
form, the error injection, the row checks of the ingestion) asks this module, so that no feature
list is typed twice and another data set only needs its own schema.

Parsing needs only the protos of `tensorflow-metadata` (no TFDV), so it works in the `app`
and `tfdv` environments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

SERVING = "SERVING"


class Kind(StrEnum):
    CATEGORICAL = "categorical"
    INTEGER = "integer"
    FLOAT = "float"


class SchemaError(ValueError):
    """The schema file is missing, unparsable, or describes something we cannot serve."""


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind
    required: bool = True
    values: tuple[str, ...] = ()  # the domain of a categorical feature, in schema order
    minimum: float | None = None
    maximum: float | None = None
    description: str = ""

    @property
    def is_categorical(self) -> bool:
        return self.kind is Kind.CATEGORICAL

    def code_of(self) -> dict[str, int]:
        """Category -> integer code, the encoding the model is trained and served with."""
        return {value: code for code, value in enumerate(self.values)}


@dataclass(frozen=True)
class FeatureSpec:
    features: tuple[Feature, ...]
    target: str | None = None
    target_values: tuple[str, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def to_dict(self) -> dict:
        """A JSON-ready description, served by the API's model-info endpoint to the UI."""
        return {
            "target": self.target,
            "features": [
                {
                    "name": f.name,
                    "kind": f.kind.value,
                    "required": f.required,
                    "values": list(f.values),
                    "minimum": f.minimum,
                    "maximum": f.maximum,
                    "description": f.description,
                }
                for f in self.features
            ],
        }


def _in_serving(feature, defaults: list[str]) -> bool:
    envs = set(feature.in_environment) or set(defaults)
    return SERVING in envs and SERVING not in set(feature.not_in_environment)


def parse_schema(text: str, *, target: str | None = None) -> FeatureSpec:
    """Build the serving feature spec from the text of a TFDV schema."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    try:
        text_format.Parse(text, schema)
    except text_format.ParseError as exc:
        raise SchemaError(f"schema is not a valid TFDV schema: {exc}") from exc
    domains = {d.name: tuple(d.value) for d in schema.string_domain}
    defaults = list(schema.default_environment)
    features: list[Feature] = []
    target_values: tuple[str, ...] = ()
    for proto in schema.feature:
        kind, values, low, high = _describe(proto, domains)
        if proto.name == target:
            target_values = values or tuple(
                str(v) for v in range(int(low or 0), int(high if high is not None else 1) + 1)
            )
            continue
        if not _in_serving(proto, defaults):
            continue
        required = proto.presence.min_fraction >= 1.0 or proto.presence.min_count > 0
        features.append(
            Feature(
                name=proto.name,
                kind=kind,
                required=required,
                values=values,
                minimum=low,
                maximum=high,
                description=proto.annotation.comment[0] if proto.annotation.comment else "",
            )
        )
    if not features:
        raise SchemaError("schema has no feature in the SERVING environment")
    return FeatureSpec(features=tuple(features), target=target, target_values=target_values)


def _describe(proto, domains: dict[str, tuple[str, ...]]):
    from tensorflow_metadata.proto.v0 import schema_pb2

    which = proto.WhichOneof("domain_info")
    if proto.type == schema_pb2.BYTES:
        if which == "domain":
            if proto.domain not in domains:
                raise SchemaError(f"feature {proto.name!r} names unknown domain {proto.domain!r}")
            return Kind.CATEGORICAL, domains[proto.domain], None, None
        if which == "string_domain":
            return Kind.CATEGORICAL, tuple(proto.string_domain.value), None, None
        raise SchemaError(f"string feature {proto.name!r} has no domain: curate one")
    numeric = {
        schema_pb2.INT: (Kind.INTEGER, "int_domain"),
        schema_pb2.FLOAT: (Kind.FLOAT, "float_domain"),
    }
    if proto.type in numeric:
        kind, field_name = numeric[proto.type]
        if which != field_name:
            return kind, (), None, None
        d = getattr(proto, field_name)
        low = float(d.min) if d.HasField("min") else None
        high = float(d.max) if d.HasField("max") else None
        return kind, (), low, high
    raise SchemaError(f"feature {proto.name!r} has an unsupported type")


def load_feature_spec(path: Path, *, target: str | None = None) -> FeatureSpec:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaError(f"cannot read schema {path}: {exc.strerror}") from exc
    return parse_schema(text, target=target)


@lru_cache(maxsize=4)
def get_feature_spec() -> FeatureSpec:
    from mlsys.config import get_settings

    settings = get_settings()
    return load_feature_spec(settings.schema_path, target=settings.target_column)
