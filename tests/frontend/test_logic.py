"""The UI's plain functions: reading and checking a CSV, chunks, summaries, the form, the charts.

The features come from the curated schema through the same JSON the API serves at /model-info,
and a second, made-up schema shows that a new data set needs no UI change.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from frontend import logic
from frontend.api_client import ModelInfo, Prediction, RecordError, parse_model_info
from mlsys.features import Kind, get_feature_spec, parse_schema

MB = 1024 * 1024


@pytest.fixture(scope="module")
def info() -> ModelInfo:
    spec = get_feature_spec()
    return parse_model_info(
        {"version": "test", "classes": {"positive": "1", "negative": "0"}, **spec.to_dict()}
    )


@pytest.fixture(scope="module")
def applications(settings) -> pd.DataFrame:
    """The real data set without its target: what an analyst would upload."""
    return pd.read_csv(settings.dataset_path).drop(columns=[settings.target_column])


def csv_of(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def refused(data: bytes, info: ModelInfo, max_bytes: int = MB) -> logic.CsvError:
    with pytest.raises(logic.CsvError) as caught:
        logic.parse_upload(data, info.features, max_bytes=max_bytes)
    return caught.value


def test_a_valid_file_becomes_typed_records_in_feature_order(info, applications):
    parsed = logic.parse_upload(csv_of(applications), info.features, max_bytes=MB)
    assert parsed.rows == len(applications) == 1000
    assert list(parsed.frame.columns) == [f.name for f in info.features]
    first = applications.iloc[0]
    for feature in info.features:
        value = parsed.records[0][feature.name]
        assert value == first[feature.name]
        assert type(value) is (str if feature.is_categorical else int)  # JSON-ready, not numpy
    assert list(parsed.frame.index[:2]) == [1, 2]  # row numbers as the user counts them


def test_columns_in_another_order_bom_blank_lines_and_spaces_are_accepted(info, applications):
    shuffled = applications.iloc[:3, ::-1].astype(str)
    shuffled.iloc[0, 0] = f"  {shuffled.iloc[0, 0]} "
    data = b"\xef\xbb\xbf" + csv_of(shuffled) + b"\n\n"
    parsed = logic.parse_upload(data, info.features, max_bytes=MB)
    assert parsed.rows == 3
    assert parsed.records[0]["age"] == int(applications.iloc[0]["age"])


def test_an_integral_float_is_an_integer_but_a_fraction_is_not(info, applications):
    frame = applications.iloc[:2].astype(object)
    frame.loc[0, "age"] = "40.0"
    frame.loc[1, "age"] = "40.5"
    error = refused(csv_of(frame), info)
    assert [(p.row, p.column, p.message) for p in error.problems] == [
        (2, "age", "40.5 is not an integer")
    ]


def test_missing_and_extra_columns_are_named(info, applications):
    frame = applications.drop(columns=["age", "purpose"]).assign(risk=1, comment="x")
    error = refused(csv_of(frame), info)
    assert "missing columns: purpose, age" in str(error)
    # Extra columns refuse nothing (the ingestion drops them too): a note names them.
    assert [n.split(" is not")[0] for n in error.notes] == ["Column 'risk'", "Column 'comment'"]
    parsed = logic.parse_upload(csv_of(applications.assign(risk=1)), info.features, max_bytes=MB)
    assert parsed.rows == len(applications) and "risk" not in parsed.records[0]
    assert parsed.notes == [
        "Column 'risk' is not a feature of the model (the features are: "
        + ", ".join(f.name for f in info.features)
        + "): ignored."
    ]


def test_every_bad_value_is_reported_with_its_row_and_column(info, applications):
    frame = applications.iloc[:20].astype(object)
    frame.loc[3, "age"] = "abc"  # row 4 for the user
    frame.loc[5, "age"] = -5
    frame.loc[7, "purpose"] = "alien"
    frame.loc[8, "job"] = 9
    frame.loc[9, "sex"] = ""
    error = refused(csv_of(frame), info)
    assert [(p.row, p.column, p.value, p.message) for p in error.problems] == [
        (4, "age", "abc", "'abc' is not a number"),
        (6, "age", "-5", "-5 is below the minimum 18"),
        (
            8,
            "purpose",
            "alien",
            "'alien' is not one of " + ", ".join(repr(v) for v in info.features[7].values),
        ),
        (9, "job", "9", "9 is above the maximum 3"),
        (10, "sex", "", "a value is required"),
    ]
    assert str(error).startswith("5 invalid values in 5 rows: age (rows 4, 6)")
    assert str(error).endswith("Nothing was sent.")


def test_a_flood_of_bad_values_is_counted_but_listed_only_in_part(info, applications):
    frame = applications.assign(age=-1)
    error = refused(csv_of(frame), info)
    assert error.total == 1000
    assert len(error.problems) == logic.MAX_LISTED_PROBLEMS
    assert str(error).startswith(f"1000 invalid values (the first {logic.MAX_LISTED_PROBLEMS}")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", "The file is empty (0 bytes): not even a header."),
        (b"  \n\n", "The file holds only blank lines: not even a header."),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
            "Line 3, byte offset 8 is a NUL byte: this is binary",
        ),
        ("sex,age\nm\u00e4le,30\n".encode("cp1252"), "the line would read 'mäle,30'"),
        (b"sex;age\nmale;30\n", "The fields are separated by semicolons (';'), not commas"),
        (b'sex,age\n"male,30\n', "Line 2 opens a quoted field that is never closed"),
        (b"sex,age\n", "header but no rows"),
        (
            b"a,b\n1,2\n1,2,3\n1\n",
            "The header (line 1) has 2 fields but 2 of 3 data lines do not: line 3 has 3, line 4 has 1.",
        ),
    ],
)
def test_files_that_are_not_usable_csv_are_refused_with_the_reason(info, data, expected):
    """The reasons are those of the ingestion's reader (`mlsys.csvfile`), as sentences."""
    assert expected in str(refused(data, info))


def test_shapes_the_reader_normalises_are_predicted_with_its_notes(info, applications):
    """Excel's hint line, trailing delimiters and a repeated column are read as the ingestion
    reads them, and the user is told how."""
    frame = applications.iloc[:3]
    semicolons = b"sep=;\r\n" + frame.to_csv(index=False, sep=";", lineterminator=";\r\n").encode()
    parsed = logic.parse_upload(semicolons, info.features, max_bytes=MB)
    assert parsed.rows == 3 and parsed.records[0]["age"] == int(frame.iloc[0]["age"])
    assert [n.split(":")[0] for n in parsed.notes] == [
        "line 1 is Excel's 'sep=;' hint",
        "the header ends with a delimiter (column 10 has no name and no value)",
    ]
    repeated = pd.concat([frame, frame["age"]], axis=1)  # the same values twice: unambiguous
    parsed = logic.parse_upload(csv_of(repeated), info.features, max_bytes=MB)
    assert [r["age"] for r in parsed.records] == frame["age"].tolist()
    assert parsed.notes == [
        "column 'age' appears more than once: column 10 was dropped (its values equal "
        "column 9's in every row)"
    ]
    error = refused(csv_of(repeated.assign(sex="x")), info)  # refused later on: notes kept
    assert error.notes == parsed.notes
    conflicting = pd.concat([frame, frame["age"] + 1], axis=1)  # which age is meant? refused
    assert "Column 'age' appears twice (columns 9 and 10)" in str(
        refused(csv_of(conflicting), info)
    )


def test_a_file_over_the_limit_is_refused_before_parsing(info, applications):
    data = csv_of(applications)
    error = refused(data, info, max_bytes=len(data) - 1)
    assert "over the limit" in str(error)


NEW_DATASET_SCHEMA = """
feature { name: "colour" type: BYTES string_domain { value: "red" value: "blue" }
          presence { min_fraction: 1.0 } }
feature { name: "ratio" type: FLOAT float_domain { min: 0.0 max: 1.0 } }
feature { name: "label" type: INT int_domain { min: 0 max: 1 } not_in_environment: "SERVING" }
default_environment: "TRAINING"
default_environment: "SERVING"
"""


def test_another_data_set_needs_no_ui_change():
    features = parse_schema(NEW_DATASET_SCHEMA, target="label").features
    assert [(f.name, f.kind, f.required) for f in features] == [
        ("colour", Kind.CATEGORICAL, True),
        ("ratio", Kind.FLOAT, False),
    ]
    parsed = logic.parse_upload(
        b"colour,ratio\nred,0.25\nblue,\n", features, max_bytes=MB
    )  # an optional value may be empty
    assert parsed.records == [{"colour": "red", "ratio": 0.25}, {"colour": "blue", "ratio": None}]
    with pytest.raises(logic.CsvError) as caught:
        logic.parse_upload(b"colour,ratio\nred,nan\nblue,inf\nred,1.5\n", features, max_bytes=MB)
    # 'nan' is a missing marker (pandas' and TFDV's), and ratio is optional.
    assert [(p.row, p.rule, p.message) for p in caught.value.problems] == [
        (2, "not_a_number", "'inf' is not a finite number"),
        (3, "out_of_range", "1.5 is above the maximum 1"),
    ]
    assert logic.number_widget_args(features[1]) == {
        "min_value": 0.0,
        "max_value": 1.0,
        "step": None,
        "format": "%g",
    }
    assert logic.form_record({"colour": "red", "ratio": None}, features) == (
        {"colour": "red", "ratio": None},
        [],
    )


def test_chunks_cover_every_record_once():
    assert list(logic.chunk_bounds(7, 3)) == [(0, 3), (3, 6), (6, 7)]
    assert list(logic.chunk_bounds(6, 3)) == [(0, 3), (3, 6)]
    assert list(logic.chunk_bounds(0, 3)) == []
    with pytest.raises(ValueError):
        list(logic.chunk_bounds(3, 0))


def test_api_errors_of_a_chunk_point_at_rows_of_the_file():
    errors = [RecordError(record=2, field="age", value=-5, message="-5 is below the minimum 18")]
    assert logic.api_problems(errors, offset=500) == [
        logic.CellProblem(row=503, column="age", value="-5", message="-5 is below the minimum 18")
    ]


def prediction(label: str, probability: float, created_at: datetime | None = None, **features):
    return Prediction(
        id=1,
        prediction=label,
        probability=probability,
        source="webapp",
        created_at=created_at,
        model_version="v",
        features=features,
    )


def test_results_sit_next_to_their_features_and_download_as_csv(info, applications):
    parsed = logic.parse_upload(csv_of(applications.iloc[:3]), info.features, max_bytes=MB)
    results = logic.results_frame(
        parsed.frame, [prediction("1", 0.9), prediction("0", 0.2), prediction("1", 0.7)]
    )
    assert list(results.columns[:3]) == ["prediction", "probability", "sex"]
    assert list(results["prediction"]) == ["1", "0", "1"]
    back = pd.read_csv(io.BytesIO(logic.to_csv_bytes(results)))
    assert list(back["row"]) == [1, 2, 3]
    assert list(back["age"]) == list(applications["age"].iloc[:3])


def test_the_summary_lists_every_class_even_when_never_predicted():
    summary = logic.class_summary(["1", "1", "1"], ["0", "1"], positive="1")
    assert summary.to_dict("records") == [
        {"class": "0", "meaning": "negative", "count": 0, "share": 0.0},
        {"class": "1", "meaning": "positive", "count": 3, "share": 1.0},
    ]


def test_the_form_reports_empty_required_fields_and_types_the_rest(info):
    values = {f.name: None for f in info.features}
    values.update({"age": 30.0, "sex": "male"})
    record, missing = logic.form_record(values, info.features)
    assert record["age"] == 30 and type(record["age"]) is int
    assert record["sex"] == "male"
    assert missing == [f.name for f in info.features if f.name not in ("age", "sex")]


def test_number_inputs_are_bounded_by_the_schema(info):
    age = next(f for f in info.features if f.name == "age")
    assert logic.number_widget_args(age) == {
        "min_value": 18,
        "max_value": 100,
        "step": 1,
        "format": "%d",
    }
    assert logic.range_hint(age) == "18 to 100"


def test_past_predictions_flatten_features_after_the_prediction(info):
    when = datetime(2026, 11, 1, 12, tzinfo=UTC)
    frame = logic.past_frame(
        [prediction("1", 0.8, when, age=30, sex="male", legacy="x")],
        [f.name for f in info.features],
    )
    names = [f.name for f in info.features]
    assert list(frame.columns) == [
        "id", "created_at", "source", "prediction", "probability", "model_version",
        "source_file", "source_row", *names, "legacy",
    ]  # fmt: skip
    assert frame.loc[0, "age"] == 30 and frame.loc[0, "legacy"] == "x"
    assert pd.isna(frame.loc[0, "purpose"])


def test_counts_over_time_by_class_pick_a_bucket_that_fits_the_span():
    t0 = datetime(2026, 11, 2, 10, 15, tzinfo=UTC)
    minutes = [prediction("1", 0.9, t0), prediction("0", 0.1, t0 + timedelta(minutes=3))]
    minutes.append(prediction("1", 0.9, t0 + timedelta(minutes=21)))
    table, bucket = logic.counts_over_time(minutes, ["0", "1"])
    assert bucket == "10 minutes"
    assert table.to_dict("index") == {
        "2026-11-02 10:10": {"0": 1, "1": 1},
        "2026-11-02 10:20": {"0": 0, "1": 0},  # an empty bucket is a bar of zero, not a gap
        "2026-11-02 10:30": {"0": 0, "1": 1},
    }
    hours = [prediction("1", 0.9, t0), prediction("0", 0.1, t0 + timedelta(hours=5))]
    table, bucket = logic.counts_over_time(hours, ["0", "1"])
    assert bucket == "hour" and len(table) == 6
    assert table.index[0] == "2026-11-02 10:00" and table.index[-1] == "2026-11-02 15:00"
    days = [prediction("0", 0.1, t0 + timedelta(days=5)), prediction("0", 0.1, t0)]
    table, bucket = logic.counts_over_time(days, ["0", "1"])
    assert bucket == "day" and len(table) == 6
    assert table.index[0] == "2026-11-02" and table.index[-1] == "2026-11-07"
    assert table["0"].sum() == 2 and table["1"].sum() == 0
    weeks = [prediction("1", 0.9, t0), prediction("2", 0.9, t0 + timedelta(days=200))]
    table, bucket = logic.counts_over_time(weeks, ["0", "1"])
    assert bucket == "week" and table.index[0] == "week of 2026-11-02"  # a Monday
    assert list(table.columns) == ["0", "1", "2"]  # an unknown class still shows
    empty, _ = logic.counts_over_time([], ["0", "1"])
    assert empty.empty


def test_date_filter_refuses_a_reversed_range():
    assert logic.date_filter(date(2026, 1, 1), date(2026, 1, 1)) == (
        date(2026, 1, 1),
        date(2026, 1, 1),
    )
    with pytest.raises(ValueError, match="after the end date"):
        logic.date_filter(date(2026, 1, 2), date(2026, 1, 1))


def test_source_choices_map_to_the_api_values():
    assert logic.SOURCE_CHOICES == {
        "all": "all",
        "webapp": "webapp",
        "scheduled predictions": "scheduled",
    }


def test_blank_lines_are_skipped_but_a_row_of_empty_cells_is_reported(info, applications):
    header = ",".join(applications.columns)
    first = ",".join(str(v) for v in applications.iloc[0])
    data = f"{header}\n{first}\n\n   \n{first}\n".encode()
    assert logic.parse_upload(data, info.features, max_bytes=MB).rows == 2
    empty_row = "," * (len(applications.columns) - 1)
    error = refused(f"{header}\n{first}\n{empty_row}\n".encode(), info)
    assert error.total == len(applications.columns)
    assert {(p.row, p.message) for p in error.problems} == {(2, "a value is required")}
