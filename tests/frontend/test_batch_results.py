"""The results of a predicted file (frontend/batch_results.py)."""

from __future__ import annotations

import io

import pandas as pd

from frontend import batch_results
from frontend.upload_checks import parse_upload
from tests.frontend.conftest import MB, csv_of, prediction


def test_results_sit_next_to_their_features_and_download_as_csv(info, applications):
    parsed = parse_upload(csv_of(applications.iloc[:3]), info.features, max_bytes=MB)
    results = batch_results.results_frame(
        parsed.frame, [prediction("1", 0.9), prediction("0", 0.2), prediction("1", 0.7)]
    )
    assert list(results.columns[:3]) == ["prediction", "probability", "sex"]
    assert list(results["prediction"]) == ["1", "0", "1"]
    back = pd.read_csv(io.BytesIO(batch_results.to_csv_bytes(results)))
    assert list(back["row"]) == [1, 2, 3]
    assert list(back["age"]) == list(applications["age"].iloc[:3])


def test_the_summary_lists_every_class_even_when_never_predicted():
    summary = batch_results.class_summary(["1", "1", "1"], ["0", "1"], positive="1")
    assert summary.to_dict("records") == [
        {"class": "0", "meaning": "negative", "count": 0, "share": 0.0},
        {"class": "1", "meaning": "positive", "count": 3, "share": 1.0},
    ]
