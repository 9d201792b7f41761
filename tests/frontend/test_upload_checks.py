"""Reading and checking an uploaded CSV (frontend/upload_checks.py).

The features come from the curated schema through the same JSON the API serves at /model-info,
and a second, made-up schema shows that a new data set needs no UI change.
"""

from __future__ import annotations

import io

import pandas as pd
import pytest

from frontend import form_fields, upload_checks
from frontend.api_client import ModelInfo
from frontend.upload_checks import CellProblem
from mlsys.features import Kind, parse_schema
from tests.frontend.conftest import INVALID_CELLS, MB, csv_of, with_invalid_rows


def checked(data: bytes, info: ModelInfo) -> upload_checks.CheckedUpload:
    return upload_checks.parse_upload(data, info.features, max_bytes=MB)


def problems(result: upload_checks.CheckedUpload) -> list[tuple]:
    return [tuple(p) for p in result.problems.itertuples(index=False)]


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
    result = checked(csv_of(frame), info)
    assert problems(result) == [(2, "age", "40.5", "not_an_integer", "40.5 is not an integer")]
    assert [r["age"] for r in result.records] == [40] and result.valid_rows == [1]


def test_missing_and_extra_columns_are_named(info, applications):
    frame = applications.drop(columns=["age", "purpose"]).assign(risk=1, comment="x")
    error = refused(csv_of(frame), info)
    assert "missing columns: purpose, age" in str(error)
    # Extra columns refuse nothing (the ingestion drops them too): a note names them.
    assert [n.split(" is not")[0] for n in error.notes] == ["Column 'risk'", "Column 'comment'"]
    assert [(p.row, p.column, p.rule) for p in error.problems] == [
        (0, "purpose", "missing_column"),
        (0, "age", "missing_column"),
    ]
    parsed = checked(csv_of(applications.assign(risk=1)), info)
    assert parsed.rows == len(applications) and parsed.all_valid
    assert "risk" not in parsed.records[0]
    assert parsed.notes == [
        "Column 'risk' is not a feature of the model (the features are: "
        + ", ".join(f.name for f in info.features)
        + "): ignored"
    ]


def test_every_bad_value_is_reported_with_its_row_and_column(info, applications):
    frame = applications.iloc[:20].astype(object)
    frame.loc[3, "age"] = "abc"  # row 4 for the user
    frame.loc[5, "age"] = -5
    frame.loc[7, "purpose"] = "alien"
    frame.loc[8, "job"] = 9
    frame.loc[9, "sex"] = ""
    result = checked(csv_of(frame), info)
    assert problems(result) == [
        (4, "age", "abc", "not_a_number", "'abc' is not a number"),
        (6, "age", "-5", "out_of_range", "-5 is below the minimum 18"),
        (
            8,
            "purpose",
            "alien",
            "unknown_category",
            "'alien' is not one of " + ", ".join(repr(v) for v in info.features[7].values),
        ),
        (9, "job", "9", "out_of_range", "9 is above the maximum 3"),
        (10, "sex", "", "missing_value", "a value is required"),
    ]
    assert upload_checks.describe_problems(result.problems) == (
        "5 invalid values in 5 rows: age (rows 4, 6); purpose (row 8); job (row 9); sex (row 10)."
    )
    assert result.invalid_rows == [4, 6, 8, 9, 10] and not result.all_valid
    # The other 15 rows are predicted, typed as the API takes them, with their row numbers.
    assert result.valid_rows == [1, 2, 3, 5, 7, *range(11, 21)]
    assert len(result.records) == 15
    assert result.records[3]["age"] == int(applications.iloc[4]["age"])
    # The typed frame keeps every row; an invalid value is empty there.
    assert result.rows == 20 and result.frame.loc[4, "age"] is None


def test_a_file_with_every_row_invalid_has_nothing_to_predict(info, applications):
    result = checked(csv_of(applications.assign(age=-1)), info)
    assert len(result.problems) == 1000 and result.invalid_rows == list(range(1, 1001))
    assert result.records == [] and result.valid_rows == []
    assert upload_checks.describe_problems(result.problems).startswith(
        "1000 invalid values in 1000 rows: age (rows 1, 2, 3, 4, 5, ...)."
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
    renamed = repeated.rename(columns={"sex": "gender"})  # refused later on: notes kept
    error = refused(csv_of(renamed), info)
    assert error.notes[:-1] == parsed.notes
    assert error.notes[-1].startswith("Column 'gender' is not a feature of the model")
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
    result = checked(f"{header}\n{first}\n{empty_row}\n".encode(), info)
    assert len(result.problems) == len(applications.columns)
    assert set(zip(result.problems["row"], result.problems["problem"], strict=True)) == {
        (2, "a value is required")
    }
    assert result.valid_rows == [1]


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
    result = upload_checks.parse_upload(
        b"colour,ratio\nred,nan\nblue,inf\nred,1.5\n", features, max_bytes=MB
    )
    # 'nan' is a missing marker (pandas' and TFDV's), and ratio is optional: row 1 is valid.
    assert [tuple(p) for p in result.problems[["row", "rule", "problem"]].to_numpy()] == [
        (2, "not_a_number", "'inf' is not a finite number"),
        (3, "out_of_range", "1.5 is above the maximum 1"),
    ]
    assert result.valid_rows == [1] and result.records == [{"colour": "red", "ratio": None}]
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


def test_the_invalid_rows_download_holds_them_as_read_with_every_reason(info, applications):
    frame = with_invalid_rows(applications)
    result = checked(csv_of(frame), info)
    back = pd.read_csv(
        io.BytesIO(upload_checks.invalid_rows_csv(result)), dtype=str, keep_default_na=False
    )
    assert list(back.columns) == ["row", "reason", *frame.columns]
    assert [int(r) for r in back["row"]] == sorted(INVALID_CELLS)
    for line in back.to_dict("records"):
        row = int(line["row"])
        cells = INVALID_CELLS[row]
        # The values exactly as in the file, so that the analyst can fix and send them again.
        assert {c: line[c] for c in frame.columns} == frame.iloc[row - 1].to_dict()
        assert line["reason"].count("; ") == len(cells) - 1
        for column in cells:
            assert f"{column}: " in line["reason"]
    assert back.loc[back["row"] == "2", "reason"].item() == "age: 'forty' is not a number"


def test_row_reasons_join_every_problem_of_a_row():
    problems = upload_checks.problems_frame(
        [CellProblem(3, "age", "x", "not a number"), CellProblem(3, "job", "9", "too high"),
         CellProblem(7, "sex", "", "missing value")]
    )  # fmt: skip
    assert upload_checks.row_reasons(problems).to_dict() == {
        3: "age: not a number; job: too high",
        7: "sex: missing value",
    }
    assert upload_checks.row_reasons(upload_checks.problems_frame([])).empty
