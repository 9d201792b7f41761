"""Reading and checking an uploaded CSV (frontend/upload_checks.py).

The features come from the curated schema through the same JSON the API serves at /model-info,
and a second, made-up schema shows that a new data set needs no UI change.
"""

from __future__ import annotations

import pandas as pd
import pytest

from frontend import form_fields, upload_checks
from frontend.api_client import ModelInfo
from mlsys.features import Kind, parse_schema
from tests.frontend.conftest import MB, csv_of


def refused(data: bytes, info: ModelInfo, max_bytes: int = MB) -> upload_checks.CsvError:
    with pytest.raises(upload_checks.CsvError) as caught:
        upload_checks.parse_upload(data, info.features, max_bytes=max_bytes)
    return caught.value


def test_a_valid_file_becomes_typed_records_in_feature_order(info, applications):
    parsed = upload_checks.parse_upload(csv_of(applications), info.features, max_bytes=MB)
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
    parsed = upload_checks.parse_upload(data, info.features, max_bytes=MB)
    assert parsed.rows == 3
    assert parsed.records[0]["age"] == int(applications.iloc[0]["age"])


def test_an_integral_float_is_an_integer_but_a_fraction_is_not(info, applications):
    frame = applications.iloc[:2].astype(object)
    frame.loc[0, "age"] = "40.0"
    frame.loc[1, "age"] = "40.5"
    error = refused(csv_of(frame), info)
    assert [(p.row, p.column, p.message) for p in error.problems] == [
        (2, "age", "'40.5' is not an integer")
    ]


def test_missing_and_extra_columns_are_named(info, applications):
    frame = applications.drop(columns=["age", "purpose"]).assign(risk=1, comment="x")
    message = str(refused(csv_of(frame), info))
    assert "missing columns: purpose, age" in message
    assert "unexpected columns: risk, comment" in message


def test_every_bad_value_is_reported_with_its_row_and_column(info, applications):
    frame = applications.iloc[:20].astype(object)
    frame.loc[3, "age"] = "abc"  # row 4 for the user
    frame.loc[5, "age"] = -5
    frame.loc[7, "purpose"] = "alien"
    frame.loc[8, "job"] = 9
    frame.loc[9, "sex"] = ""
    error = refused(csv_of(frame), info)
    assert [(p.row, p.column, p.value, p.message) for p in error.problems] == [
        (4, "age", "abc", "'abc' is not an integer"),
        (6, "age", "-5", "-5 is below the minimum 18"),
        (8, "purpose", "alien", "'alien' is not one of: " + ", ".join(info.features[7].values)),
        (9, "job", "9", "9 is above the maximum 3"),
        (10, "sex", "", "missing value"),
    ]
    assert str(error).startswith("5 invalid values in 5 rows: age (rows 4, 6)")
    assert str(error).endswith("Nothing was sent.")


def test_a_flood_of_bad_values_is_counted_but_listed_only_in_part(info, applications):
    frame = applications.assign(age=-1)
    error = refused(csv_of(frame), info)
    assert error.total == 1000
    assert len(error.problems) == upload_checks.MAX_LISTED_PROBLEMS
    assert str(error).startswith(
        f"1000 invalid values (the first {upload_checks.MAX_LISTED_PROBLEMS}"
    )


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
    parsed = upload_checks.parse_upload(semicolons, info.features, max_bytes=MB)
    assert parsed.rows == 3 and parsed.records[0]["age"] == int(frame.iloc[0]["age"])
    assert [n.split(":")[0] for n in parsed.notes] == [
        "line 1 is Excel's 'sep=;' hint",
        "the header ends with a delimiter (column 10 has no name and no value)",
    ]
    repeated = pd.concat([frame, frame["age"]], axis=1)  # the same values twice: unambiguous
    parsed = upload_checks.parse_upload(csv_of(repeated), info.features, max_bytes=MB)
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


def test_blank_lines_are_skipped_but_a_row_of_empty_cells_is_reported(info, applications):
    header = ",".join(applications.columns)
    first = ",".join(str(v) for v in applications.iloc[0])
    data = f"{header}\n{first}\n\n   \n{first}\n".encode()
    assert upload_checks.parse_upload(data, info.features, max_bytes=MB).rows == 2
    empty_row = "," * (len(applications.columns) - 1)
    error = refused(f"{header}\n{first}\n{empty_row}\n".encode(), info)
    assert error.total == len(applications.columns)
    assert {(p.row, p.message) for p in error.problems} == {(2, "missing value")}


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
    parsed = upload_checks.parse_upload(
        b"colour,ratio\nred,0.25\nblue,\n", features, max_bytes=MB
    )  # an optional value may be empty
    assert parsed.records == [{"colour": "red", "ratio": 0.25}, {"colour": "blue", "ratio": None}]
    with pytest.raises(upload_checks.CsvError) as caught:
        upload_checks.parse_upload(
            b"colour,ratio\nred,nan\nblue,inf\nred,1.5\n", features, max_bytes=MB
        )
    assert [(p.row, p.message) for p in caught.value.problems] == [
        (1, "'nan' is not a number"),
        (2, "'inf' is not a number"),
        (3, "1.5 is above the maximum 1"),
    ]
    assert form_fields.number_widget_args(features[1]) == {
        "min_value": 0.0,
        "max_value": 1.0,
        "step": None,
        "format": "%g",
    }
    assert form_fields.form_record({"colour": "red", "ratio": None}, features) == (
        {"colour": "red", "ratio": None},
        [],
    )
