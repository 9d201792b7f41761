"""Strict parsing and validation of `POST /predict` bodies against the feature spec.

One pass over the records both validates them and encodes them into the float matrix the model
takes, so that a 10,000-record batch costs one Python loop. Every problem of every record is
collected, so that one 422 answer names them all; nothing here touches the database. What a
valid value is, and each problem's rule and message, come from `mlsys.rules` (the same rules
the ingestion and the UI apply); this module adds the body's own structure.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import jiter
import numpy as np
import orjson

from mlsys import rules
from mlsys.features import FeatureSpec
from mlsys.rules import json_type
from mlsys.schema_versions import SchemaVersion, SchemaWatch

SOURCES = ("webapp", "scheduled")
BODY_FIELDS = ("source", "records", "source_file", "source_rows")
# Listing more than this many problems helps nobody and could make the answer huge.
MAX_LISTED_ERRORS = 1000
MAX_SOURCE_FILE_CHARS = 1024
MAX_SOURCE_ROW = 2**31 - 1  # the column is a PostgreSQL integer
# A record with more keys than the features plus this many is refused as a whole, with one
# error, before any of its keys is looked at (hundreds of thousands of unknown keys fit in
# MAX_BODY_BYTES; listing each cost 250 MB and 2 s).
MAX_EXTRA_KEYS = 20
_MISSING = rules.ABSENT
# Up to this many records, the record-by-record pass is the faster one (5 µs for one record,
# against 30 µs for the column-wise pass and its numpy calls).
FEW_RECORDS = 16


@dataclass(frozen=True)
class FieldError:
    """One problem: `record` is the index in `records` (None for the body itself); `rule`: the
    `mlsys.rules` rule a record's value breaks (None for a problem of the body's structure)."""

    record: int | None
    field: str | None
    value: Any
    message: str
    rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "field": self.field,
            "value": self.value,
            "rule": self.rule,
            "message": self.message,
        }


class Problems(list):
    """The `FieldError`s found: at most MAX_LISTED_ERRORS kept (memory stays bounded whatever
    the body holds), every one counted (`total`), with the records they concern."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0
        self.records: set[int] = set()

    def add(self, error: FieldError) -> None:
        self.total += 1
        if error.record is not None:
            self.records.add(error.record)
        if len(self) < MAX_LISTED_ERRORS:
            self.append(error)


class RequestError(Exception):
    """A request the service refuses; becomes `{detail, errors}` with `status`."""

    def __init__(self, status: int, detail: str, errors: list[FieldError] | None = None):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []
        # The schema version the request was judged by ('v3 (1a2b3c4d)'), once known.
        self.schema_version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"detail": self.detail}
        if self.errors:
            body["errors"] = [e.to_dict() for e in self.errors[:MAX_LISTED_ERRORS]]
            body["error_count"] = getattr(self.errors, "total", len(self.errors))
        if self.schema_version is not None:
            body["schema_version"] = self.schema_version
        return body


@dataclass(frozen=True)
class PredictRequest:
    source: str
    # Normalised records: exactly the spec's features, integral floats turned into ints.
    records: list[dict[str, Any]]
    # The records encoded for the model, one row per record, columns in spec order.
    matrix: np.ndarray
    source_file: str | None = None
    source_rows: list[int] | None = field(default=None)


def shown(value: Any) -> Any:
    """The offending value as the answer repeats it: short enough to read, JSON-safe."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf: say it in words
    if isinstance(value, str):
        value = value if len(value) <= 100 else value[:100] + "..."
        # A lone surrogate (from a query string, say) cannot be written as UTF-8 JSON.
        return value if value.isascii() else value.encode("utf-8", "replace").decode()
    if type(value) is int and not -(2**63) <= value < 2**64:
        return str(value)  # beyond what a JSON encoder (and a double) keeps exactly
    if isinstance(value, dict | list):
        try:
            text = orjson.dumps(value).decode()
        except TypeError:  # holds a huge integer or a non-finite float
            text = repr(value)
            return text if len(text) <= 200 else text[:200] + "..."
        return value if len(text) <= 200 else text[:200] + "..."
    return value


def parse_json(body: bytes) -> Any:
    """Parse a JSON body; anything that is not plain, unambiguous JSON is a 400 saying where.

    jiter's options do the refusing: a key twice in one object (`catch_duplicate_keys`: which
    value would count is a guess), nesting deeper than 200, lone surrogates and invalid UTF-8,
    integers of more than 4,300 digits. It keeps what is well-formed but not acceptable for
    the validation to name by record and field: NaN and Infinity (`allow_inf_nan`), numbers
    that overflow a double (as infinity) and big integers (as Python ints).
    """
    if not body.strip():
        raise RequestError(400, "the request body is empty: send a JSON object")
    try:
        return jiter.from_json(body, allow_inf_nan=True, catch_duplicate_keys=True)
    except ValueError as exc:
        raise RequestError(400, f"the request body is not valid JSON: {exc}") from None


class RecordValidator:
    """Validates and encodes records against one feature spec (built once per schema version),
    with the rules of `mlsys.rules` precompiled. `schema_version`: the version `spec` was read
    from (None: a spec not read from a file)."""

    def __init__(self, spec: FeatureSpec, schema_version: SchemaVersion | None = None):
        self.spec = spec
        self.schema_version = schema_version
        self.schema_label = schema_version.short if schema_version else None
        self.names = spec.names
        self.name_set = frozenset(self.names)
        self.columns = rules.compile_features(spec)

    def _unknown_field_message(self) -> str:
        return rules.unexpected_column_message(self.names)

    def validate(
        self, records: list[Any]
    ) -> tuple[list[dict[str, Any]], np.ndarray, list[FieldError]]:
        """Normalised records, their encoded matrix and every problem found (all records)."""
        if len(records) <= FEW_RECORDS:
            return self._validate_each(records)
        matrix = self._validate_clean_batch(records)
        if matrix is not None:
            return records, matrix, []
        return self._validate_each(records)

    def _validate_clean_batch(self, records: list[Any]) -> np.ndarray | None:
        """Column by column, for a batch with nothing to report or normalise (the usual case):
        `mlsys.rules.encode_clean_batch`. Returns None at the first surprise, and the
        record-by-record pass then finds and explains every problem."""
        return rules.encode_clean_batch(self.columns, self.name_set, records)

    def _validate_each(
        self, records: list[Any]
    ) -> tuple[list[dict[str, Any]], np.ndarray, Problems]:
        errors = Problems()
        normalised: list[dict[str, Any]] = []
        rows: list[list[float]] = []
        columns = self.columns
        name_set = self.name_set
        most_keys = len(name_set) + MAX_EXTRA_KEYS
        for i, record in enumerate(records):
            if type(record) is not dict:
                errors.add(
                    FieldError(
                        i,
                        None,
                        shown(record),
                        f"a record must be a JSON object, got {json_type(record)}",
                        rules.WRONG_TYPE,
                    )
                )
                continue
            if len(record) > most_keys:
                # Refused whole, without looking at (or listing) each of its keys.
                errors.add(
                    FieldError(
                        i,
                        None,
                        f"<an object of {len(record)} fields>",
                        f"has {len(record)} fields; the model takes {len(name_set)}: "
                        + self._unknown_field_message().removeprefix(
                            "is not a feature of the model "
                        ),
                        rules.UNEXPECTED_COLUMN,
                    )
                )
                continue
            if record.keys() != name_set:
                for extra in sorted(k for k in record if k not in name_set):
                    errors.add(
                        FieldError(
                            i,
                            extra,
                            shown(record[extra]),
                            self._unknown_field_message(),
                            rules.UNEXPECTED_COLUMN,
                        )
                    )
            row: list[float] = []
            clean: dict[str, Any] = {}
            ok = True
            for col in columns:
                encoded, value, rule, message = col.judge_json(record.get(col.name, _MISSING))
                if message is not None:
                    ok = False
                    errors.add(FieldError(i, col.name, shown(value), message, rule))
                row.append(encoded)
                clean[col.name] = value
            if ok:
                rows.append(row)
                normalised.append(clean)
        if errors:
            return [], np.empty((0, len(columns))), errors
        return normalised, np.array(rows, dtype=np.float64).reshape(len(rows), len(columns)), errors


class CurrentRules:
    """The `RecordValidator` of the schema file as it is now (no restart after an approval).

    `get()` asks the `SchemaWatch` (one `os.stat` when nothing changed: 2.7 us of CPU per
    request, measured on these 2-core machines under load 10) and rebuilds the precompiled
    rules only when the file holds another version (re-read and parse 1.7 ms, rules 0.01 ms),
    never per request. A request keeps the validator it got for its whole judgement.
    """

    def __init__(self, watch: SchemaWatch):
        self.watch = watch
        self._lock = threading.Lock()
        self._validator = self._build()

    def _build(self) -> RecordValidator:
        snapshot = self.watch.current()
        return RecordValidator(snapshot.feature_spec(self.watch.target), snapshot.version)

    def get(self) -> RecordValidator:
        validator = self._validator
        if self.watch.current().version == validator.schema_version:
            return validator
        with self._lock:
            if self.watch.current().version != self._validator.schema_version:
                self._validator = self._build()
            return self._validator


def parse_predict_request(
    body: bytes, validator: RecordValidator, *, max_records: int
) -> PredictRequest:
    """Parse and validate a whole `/predict` body; raises `RequestError` (4xx) on any problem."""
    # Every key of a JSON object is followed by a colon, so the colons bound the keys. A body
    # with more than the largest valid batch could hold, plus two unknown keys per record (an
    # id column, say, which the per-record errors then name), is refused before parsing: a
    # parser builds each object whole, and one object of 700,000 keys (8 MiB) took about 2 s
    # in jiter, orjson and the standard library alike, holding the GIL; at this bound the
    # worst (one object of 110,000 keys for the default limits) takes about 0.1-0.3 s.
    # Colons inside strings only make the count larger, never smaller.
    most_keys = max_records * (len(validator.names) + 2) + 2 * len(BODY_FIELDS)
    if body.count(b":") > most_keys:
        raise RequestError(
            422,
            f"the body holds more than {most_keys} keys, more than a batch of {max_records} "
            "records (MAX_BATCH_RECORDS) can: send the model's features only",
        )
    payload = parse_json(body)
    if type(payload) is not dict:
        raise RequestError(
            422,
            f"the body must be a JSON object with 'source' and 'records', got {json_type(payload)}",
        )
    errors = Problems()
    if len(payload) > len(BODY_FIELDS) + MAX_EXTRA_KEYS:
        raise RequestError(
            422,
            f"the body has {len(payload)} fields; it takes {', '.join(BODY_FIELDS)}",
            [FieldError(None, None, f"<an object of {len(payload)} fields>", "too many fields")],
        )
    for key in payload:
        if key not in BODY_FIELDS:
            errors.add(
                FieldError(
                    None,
                    key,
                    shown(payload[key]),
                    f"unknown field; the body takes {', '.join(BODY_FIELDS)}",
                )
            )
    source = payload.get("source", _MISSING)
    if source is _MISSING:
        errors.add(FieldError(None, "source", None, "is required: 'webapp' or 'scheduled'"))
    elif source not in SOURCES or type(source) is not str:
        errors.add(FieldError(None, "source", shown(source), "must be 'webapp' or 'scheduled'"))

    records = payload.get("records", _MISSING)
    if records is _MISSING or records is None:
        errors.add(
            FieldError(
                None, "records", None, "is required: a list of records (one record: a list of one)"
            )
        )
        records = None
    elif type(records) is not list:
        errors.add(
            FieldError(
                None,
                "records",
                shown(records),
                f"must be a list of records, got {json_type(records)}",
            )
        )
        records = None
    elif not records:
        errors.add(FieldError(None, "records", [], "is empty: send at least one record"))
        records = None
    elif len(records) > max_records:
        raise RequestError(
            422,
            f"a batch of {len(records)} records is over the maximum of {max_records} "
            "(MAX_BATCH_RECORDS): split it into smaller batches",
            [
                FieldError(
                    None,
                    "records",
                    f"<{len(records)} records>",
                    f"at most {max_records} records per request",
                )
            ],
        )

    source_file, source_rows = _check_provenance(payload, source, records, errors)
    if errors:
        raise RequestError(422, _summary_of_body_errors(errors), errors)

    clean, matrix, record_errors = validator.validate(records)
    if record_errors:
        bad = len(record_errors.records)
        raise RequestError(
            422, f"{bad} of {len(records)} records are invalid; nothing was stored", record_errors
        )
    return PredictRequest(
        source=source,
        records=clean,
        matrix=matrix,
        source_file=source_file,
        source_rows=source_rows,
    )


def _summary_of_body_errors(errors: list[FieldError]) -> str:
    fields = ", ".join(dict.fromkeys(str(e.field) for e in errors))
    return f"the request body is invalid ({fields}); nothing was stored"


def _check_provenance(
    payload: dict[str, Any], source: Any, records: list[Any] | None, errors: Problems
) -> tuple[str | None, list[int] | None]:
    """`source_file`/`source_rows`: required for scheduled calls, refused for the web app."""
    source_file = payload.get("source_file")
    source_rows = payload.get("source_rows")
    if source == "webapp":
        for name, value in (("source_file", source_file), ("source_rows", source_rows)):
            if value is not None:
                errors.add(FieldError(None, name, shown(value), "is only for source 'scheduled'"))
        return None, None
    if source != "scheduled":
        return None, None
    ok = True
    if type(source_file) is not str or not source_file.strip():
        errors.add(
            FieldError(
                None,
                "source_file",
                shown(source_file),
                "is required for source 'scheduled': the file name",
            )
        )
        ok = False
    elif len(source_file) > MAX_SOURCE_FILE_CHARS or "\x00" in source_file:
        errors.add(
            FieldError(
                None,
                "source_file",
                shown(source_file),
                f"must be at most {MAX_SOURCE_FILE_CHARS} characters, without NUL characters",
            )
        )
        ok = False
    if type(source_rows) is not list:
        errors.add(
            FieldError(
                None,
                "source_rows",
                shown(source_rows),
                "is required for source 'scheduled': the row number of each record in the file",
            )
        )
        return None, None
    bad_rows = [
        (i, r)
        for i, r in enumerate(source_rows)
        if type(r) is not int or not 0 <= r <= MAX_SOURCE_ROW
    ]
    for i, r in bad_rows[:MAX_LISTED_ERRORS]:
        errors.add(
            FieldError(
                i, "source_rows", shown(r), f"must be an integer between 0 and {MAX_SOURCE_ROW}"
            )
        )
    if bad_rows:
        return None, None
    if records is not None and len(source_rows) != len(records):
        errors.add(
            FieldError(
                None,
                "source_rows",
                f"<{len(source_rows)} rows>",
                f"has {len(source_rows)} row numbers for {len(records)} records: one per record",
            )
        )
        return None, None
    if len(set(source_rows)) != len(source_rows):
        seen: set[int] = set()
        dupes = sorted({r for r in source_rows if r in seen or seen.add(r)})
        errors.add(FieldError(None, "source_rows", dupes[:20], "names the same row more than once"))
        return None, None
    return (source_file if ok else None), source_rows
