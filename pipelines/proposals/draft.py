"""Draft a schema change with TFDV: `update_schema` on the evidence, applied as a text edit.

Runs in the `tfdv` environment: in the warm TFDV worker (POST /schema-drafts) or, when no
worker answers, in a tfdv interpreter started for it (`python -m pipelines.proposals.draft`,
JSON on stdin and stdout; the import costs 15-22 s).

For each candidate, TFDV decides what the schema must become to accept the evidence
(`tfdv.update_schema(schema, statistics)` on a frame built from it: a value appended to a
string domain, a numeric bound moved to the furthest value, a new feature inferred with its
type, presence and domain). Only the candidate's feature is taken from TFDV's answer (it also
marks every feature absent from the evidence as deprecated, which is not the point). The change
is then written as `schema_text.Edit`s on the curated text, keeping its comments, and the
edited text must parse to exactly the schema TFDV proposed for that feature, or the candidate
is answered with an error instead of a draft.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from pipelines.proposals import schema_text as st
from pipelines.proposals.evidence import ABOVE_MAX, BELOW_MIN, CATEGORY, COLUMN

# Rows of the frame built for a new text column: its values in their observed proportions.
COLUMN_FRAME_ROWS = 1000


def draft_all(schema_text: str, candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per candidate (`Candidate.to_request()`): {"key", "edits", "new_text", "change"} or
    {"key", "error"} when TFDV proposes nothing or something the text cannot carry."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = text_format.Parse(schema_text, schema_pb2.Schema())
    drafts = []
    for candidate in candidates:
        try:
            drafts.append(_draft(schema, schema_text, candidate))
        except (st.EditConflict, ValueError, KeyError) as exc:
            drafts.append({"key": candidate["key"], "error": str(exc)})
    return drafts


def _feature(schema, name: str):
    for feature in schema.feature:
        if feature.name == name:
            return feature
    raise KeyError(f"feature {name!r} is not in the schema")


def _updated(schema, frame, max_string_domain_size: int = 100):
    import tensorflow_data_validation as tfdv

    stats = tfdv.generate_statistics_from_dataframe(frame.reset_index(drop=True))
    return tfdv.update_schema(schema, stats, max_string_domain_size=max_string_domain_size)


def _draft(schema, text: str, c: dict[str, Any]) -> dict[str, Any]:
    from google.protobuf import text_format

    kind, column, comment = c["kind"], c["column"], c["comment"]
    expected = type(schema)()
    expected.CopyFrom(schema)
    if kind == CATEGORY:
        edits, change = _category(schema, expected, column, c["value"], comment)
    elif kind in (ABOVE_MAX, BELOW_MIN):
        edits, change = _bound(schema, expected, column, kind, c["extremes"], comment)
    elif kind == COLUMN:
        edits, change = _column(schema, expected, column, c["detail"], comment)
    else:
        raise ValueError(f"unknown candidate kind {kind!r}")
    new_text = st.apply_edits(text, edits)
    if text_format.Parse(new_text, type(schema)()) != expected:
        raise st.EditConflict("the edited text does not parse to the schema TFDV proposed")
    return {"key": c["key"], "edits": [e.to_dict() for e in edits], "new_text": new_text,
            "change": change}  # fmt: skip


def _category(schema, expected, column: str, value: str, comment: str):
    import pandas as pd

    feature = _feature(schema, column)
    if not feature.domain:
        raise st.EditConflict(f"{column} has no named string_domain to extend")
    updated = _updated(schema, pd.DataFrame({column: [value]}))
    old = next(d for d in schema.string_domain if d.name == feature.domain)
    new = next(d for d in updated.string_domain if d.name == feature.domain)
    if list(new.value) != [*old.value, value]:
        raise ValueError(f"TFDV does not extend {feature.domain} with {value!r} alone")
    next(d for d in expected.string_domain if d.name == feature.domain).value.append(value)
    edit = st.Edit(
        st.INSERT_AT_END, "string_domain", feature.domain,
        lines=(f"{st.INDENT}# {comment}", f"{st.INDENT}value: {st.quote(value)}"),
    )  # fmt: skip
    return [edit], {"kind": CATEGORY, "feature": column, "domain": feature.domain, "value": value}


def _bound(schema, expected, column: str, kind: str, extremes: list[float], comment: str):
    import pandas as pd
    from google.protobuf import text_format

    feature = _feature(schema, column)
    domain = feature.WhichOneof("domain_info")
    if domain not in ("int_domain", "float_domain"):
        raise st.EditConflict(f"{column} has no int_domain or float_domain to widen")
    values = [int(v) for v in extremes] if domain == "int_domain" else [float(v) for v in extremes]
    updated = _feature(_updated(schema, pd.DataFrame({column: values})), column)
    field = "max" if kind == ABOVE_MAX else "min"
    old_value = getattr(getattr(feature, domain), field)
    new_value = getattr(getattr(updated, domain), field)
    if new_value == old_value:
        raise ValueError(f"TFDV keeps {column} {field} at {old_value}")
    getattr(_feature(expected, column), domain).CopyFrom(getattr(updated, domain))
    if getattr(_feature(expected, column), domain) != _with(getattr(feature, domain), field,
                                                              new_value):  # fmt: skip
        raise ValueError(f"TFDV changes more of {column}'s {domain} than its {field}")
    printed = text_format.MessageToString(getattr(updated, domain)).splitlines()
    line = next(x for x in printed if x.startswith(f"{field}:"))
    edit = st.Edit(
        st.REPLACE_LINE, "feature", column, match=f"{field}:",
        lines=(f"# {comment} ({field} was {_number(old_value)})", line),
    )  # fmt: skip
    return [edit], {"kind": kind, "feature": column, "bound": field,
                    "old": old_value, "new": new_value}  # fmt: skip


def _with(domain, field: str, value):
    copy = type(domain)()
    copy.CopyFrom(domain)
    setattr(copy, field, value)
    return copy


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


def _column(schema, expected, column: str, detail: dict[str, Any], comment: str):
    import pandas as pd
    from google.protobuf import text_format

    if any(f.name == column for f in schema.feature):
        raise ValueError(f"{column} is already a feature of the schema")
    missing = [None] if detail.get("missing") else []
    size = 100
    if detail.get("numeric"):
        cast = int if detail.get("integer") else float
        values: list[Any] = [cast(detail["min"]), cast(detail["max"])]
        frame = pd.DataFrame({column: pd.array(values + missing, dtype="Int64" if cast is int
                                                else "float64")})  # fmt: skip
    else:
        counts = [(str(v), int(n)) for v, n in detail.get("values", [])]
        total = sum(n for _, n in counts) or 1
        values = [v for v, n in counts for _ in range(max(1, n * COLUMN_FRAME_ROWS // total))]
        frame = pd.DataFrame({column: pd.Series(values + missing, dtype=object)})
        if detail.get("distinct", 0) > len(counts):
            size = max(0, len(counts) - 1)  # more values than kept: free text, no domain
    updated = _updated(schema, frame, max_string_domain_size=size)
    feature = _feature(updated, column)
    domain = next((d for d in updated.string_domain if d.name == feature.domain), None)
    expected.feature.add().CopyFrom(feature)
    edits = [
        st.Edit(st.INSERT_AFTER_LAST, "feature", lines=(
            f"# {comment}", "feature {",
            *(st.INDENT + x for x in text_format.MessageToString(feature).splitlines()), "}",
        ))
    ]  # fmt: skip
    if feature.domain and domain is not None:
        expected.string_domain.add().CopyFrom(domain)
        edits.append(
            st.Edit(st.INSERT_AFTER_LAST, "string_domain", lines=(
                "string_domain {",
                *(st.INDENT + x for x in text_format.MessageToString(domain).splitlines()), "}",
            ))
        )  # fmt: skip
    from tensorflow_metadata.proto.v0 import schema_pb2

    return edits, {"kind": COLUMN, "feature": column,
                   "type": schema_pb2.FeatureType.Name(feature.type),
                   "domain": list(domain.value) if domain is not None else []}  # fmt: skip


def main() -> int:
    """stdin: {"schema_text", "candidates"}; stdout: {"drafts": [...]}."""
    request = json.load(sys.stdin)
    json.dump({"drafts": draft_all(request["schema_text"], request["candidates"])}, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
