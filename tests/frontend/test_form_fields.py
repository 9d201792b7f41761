"""The single-prediction form (frontend/form_fields.py)."""

from __future__ import annotations

from frontend import form_fields


def test_the_form_reports_empty_required_fields_and_types_the_rest(info):
    values = {f.name: None for f in info.features}
    values.update({"age": 30.0, "sex": "male"})
    record, missing = form_fields.form_record(values, info.features)
    assert record["age"] == 30 and type(record["age"]) is int
    assert record["sex"] == "male"
    assert missing == [f.name for f in info.features if f.name not in ("age", "sex")]


def test_number_inputs_are_bounded_by_the_schema(info):
    age = next(f for f in info.features if f.name == "age")
    assert form_fields.number_widget_args(age) == {
        "min_value": 18,
        "max_value": 100,
        "step": 1,
        "format": "%d",
    }
    assert form_fields.range_hint(age) == "18 to 100"
