"""The results of a predicted file (frontend/batch_results.py)."""

from __future__ import annotations

import io

import pandas as pd

from frontend import batch_results
from frontend.batch_results import INVALID, NOT_SENT, PREDICTED, REFUSED
from frontend.chunked_sending import BatchOutcome
from frontend.upload_checks import CellProblem, parse_upload
from tests.frontend.conftest import INVALID_CELLS, MB, csv_of, prediction, with_invalid_rows


def test_results_sit_next_to_their_features_and_download_as_csv(info, applications):
    parsed = parse_upload(csv_of(applications.iloc[:3]), info.features, max_bytes=MB)
    outcome = BatchOutcome(total=3)
    outcome.predictions.extend(
        [
            prediction("1", 0.9),
            prediction("0", 0.2, unseen=("purpose", "age")),
            prediction("1", 0.7),
        ]
    )
    results = batch_results.results_frame(parsed, outcome)
    assert list(results.columns[:6]) == [
        "status", "prediction", "probability", "unseen in training", "reason", "sex",
    ]  # fmt: skip
    assert list(results["prediction"]) == ["1", "0", "1"]
    assert list(results["unseen in training"]) == ["", "purpose, age", ""]
    assert batch_results.unseen_summary(outcome.predictions) == (
        "1 of 3 predicted rows hold values the model never saw in training: purpose 1, age 1"
    )
    assert batch_results.unseen_summary(outcome.predictions[:1]) is None
    assert set(results["status"]) == {PREDICTED} and set(results["reason"]) == {""}
    back = pd.read_csv(io.BytesIO(batch_results.to_csv_bytes(results)))
    assert list(back["row"]) == [1, 2, 3]
    assert list(back["age"]) == list(applications["age"].iloc[:3])


def test_results_keep_every_row_and_say_why_the_invalid_ones_have_no_prediction(info, applications):
    """30 rows, 11 invalid: the 19 valid ones sent, every row in the results, joinable on `row`."""
    checked = parse_upload(csv_of(with_invalid_rows(applications)), info.features, max_bytes=MB)
    assert checked.invalid_rows == sorted(INVALID_CELLS)
    valid = [r for r in range(1, 31) if r not in INVALID_CELLS]
    assert checked.valid_rows == valid and len(checked.records) == 19
    outcome = BatchOutcome(total=19, rows=checked.valid_rows)
    labels = ["1" if i % 3 else "0" for i in range(19)]
    outcome.predictions.extend(prediction(label, 0.5 + i / 100) for i, label in enumerate(labels))

    results = batch_results.results_frame(checked, outcome)
    assert list(results.index) == list(range(1, 31)) and results.index.name == "row"
    assert list(results.loc[valid, "prediction"]) == labels
    assert list(results.loc[valid, "status"]) == [PREDICTED] * 19
    invalid = results.loc[sorted(INVALID_CELLS)]
    assert set(invalid["status"]) == {INVALID}
    assert invalid["prediction"].isna().all() and invalid["probability"].isna().all()
    for row, cells in INVALID_CELLS.items():  # every invalid value named in its row's reason
        reason = results.loc[row, "reason"]
        assert [c for c in cells if f"{c}: " in reason] == list(cells), reason
    assert results.loc[12, "reason"] == "sex: a value is required"
    # The valid rows' features are those of the file, so the results join back on `row`.
    assert list(results.loc[valid, "age"]) == [int(applications.loc[r - 1, "age"]) for r in valid]
    back = pd.read_csv(io.BytesIO(batch_results.to_csv_bytes(results)), keep_default_na=False)
    assert len(back) == 30 and list(back["row"]) == list(range(1, 31))
    assert (back["status"] == INVALID).sum() == 11


def test_results_of_a_stopped_upload_say_which_rows_were_refused_and_not_sent(info, applications):
    """The state send_in_chunks leaves when the API refused the second chunk of five."""
    checked = parse_upload(csv_of(with_invalid_rows(applications)), info.features, max_bytes=MB)
    rows = checked.valid_rows  # 1, 3, 6, 7, 8 | 10, 11, 13, 14, 16 | 18, ...
    outcome = BatchOutcome(total=19, rows=rows)
    outcome.predictions.extend(prediction("1", 0.9) for _ in range(5))
    outcome.refused = (5, 10)
    outcome.problems = [CellProblem(row=13, column="age", value="30", message="too young here")]
    outcome.error = "The API refused the 5 valid rows among rows 10 to 16: ..."

    results = batch_results.results_frame(checked, outcome)
    assert list(results.loc[rows[:5], "status"]) == [PREDICTED] * 5
    assert list(results.loc[rows[5:10], "status"]) == [REFUSED] * 5
    assert results.loc[13, "reason"] == "refused by the API: age: too young here"
    assert results.loc[10, "reason"].startswith("refused with its chunk (the 5 valid rows among")
    assert list(results.loc[rows[10:], "status"]) == [NOT_SENT] * 9
    assert results.loc[18, "reason"] == "not sent: sending stopped at a chunk the API refused"
    assert results.loc[2, "status"] == INVALID


def test_row_lists_read_as_a_sentence():
    assert batch_results.row_list([3]) == "row 3"
    assert batch_results.row_list([3, 5, 9]) == "rows 3, 5 and 9"
    assert (
        batch_results.row_list(list(range(1, 15)))
        == "rows 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 and 4 more"
    )


def test_the_summary_lists_every_class_even_when_never_predicted():
    summary = batch_results.class_summary(["1", "1", "1"], ["0", "1"], positive="1")
    assert summary.to_dict("records") == [
        {"class": "0", "meaning": "negative", "count": 0, "share": 0.0},
        {"class": "1", "meaning": "positive", "count": 3, "share": 1.0},
    ]
