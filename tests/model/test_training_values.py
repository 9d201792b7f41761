"""What the model saw in training (mlsys/training_values.py) and the serving codes (mlsys/model.py)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from mlsys import model, training_values
from mlsys.features import Feature, FeatureSpec, Kind
from mlsys.rules import compile_features
from mlsys.schema_versions import SchemaVersion
from mlsys.training_values import SeenFeature, UnseenCheck

TRAINED = FeatureSpec(
    (
        Feature("color", Kind.CATEGORICAL, values=("a", "b", "c")),
        Feature("n", Kind.INTEGER, required=False, minimum=0, maximum=100),
        Feature("x", Kind.FLOAT, minimum=-10, maximum=10),
    )
)
# Approved after training: "new" first (every other code moves), "c" kept.
SERVING = FeatureSpec(
    (
        Feature("color", Kind.CATEGORICAL, values=("new", "a", "b", "c")),
        *TRAINED.features[1:],
    )
)


def _seen() -> list[SeenFeature]:
    # Training rows: colors a and b (c is in the domain but in no row), n 1..10 never missing,
    # x -1.5..2.5.
    rows = np.array([[0, 1, -1.5], [1, 10, 2.5], [0, 5, 0.0]], dtype=np.float64)
    return training_values.seen_in_training(rows, TRAINED)


def test_training_values_are_those_of_the_rows_and_survive_the_metadata():
    seen = _seen()
    assert seen == [
        SeenFeature("color", True, categories=("a", "b")),
        SeenFeature("n", False, minimum=1.0, maximum=10.0),
        SeenFeature("x", False, minimum=-1.5, maximum=2.5),
    ]
    metadata = {training_values.METADATA_KEY: training_values.to_metadata(seen)}
    assert training_values.from_metadata(metadata) == seen
    assert training_values.from_metadata({}) is None
    with pytest.raises(ValueError, match="malformed"):
        training_values.from_metadata({training_values.METADATA_KEY: {"n": {"minimum": "x"}}})
    missing = np.array([[0, np.nan, 0.0]], dtype=np.float64)
    assert training_values.seen_in_training(missing, TRAINED)[1].missing


def test_what_counts_as_unseen():
    check = UnseenCheck(_seen(), {"color": TRAINED["color"].values})
    records = [
        {"color": "a", "n": 1, "x": 2.5},  # the training bounds themselves are seen
        {"color": "c", "n": 5, "x": 0.1},  # in the domain, in no training row
        {"color": "new", "n": 5, "x": 0.1},  # approved after training
        {"color": "b", "n": 11, "x": -1.6},  # both numbers outside the training range
        {"color": "b", "n": None, "x": 0.0},  # missing where training had no missing value
        {"color": "b", "n": 7, "x": 1.234},  # never seen exactly, inside the range
    ]
    expected = [(), ("color",), ("color",), ("n", "x"), ("n",), ()]
    assert check.flags_of_records(records) == expected
    assert [check.flags_of_records([r])[0] for r in records] == expected  # the one-record path
    assert UnseenCheck(None).flags_of_records(records) == [()] * len(records)


def _encode(records: list[dict], spec: FeatureSpec) -> np.ndarray:
    columns = compile_features(spec)
    matrix = np.array([[c.judge_json(r[c.name])[0] for c in columns] for r in records])
    assert not any(c.judge_json(r[c.name])[2] for r in records for c in columns)  # all valid
    return matrix


def test_the_matrix_path_agrees_with_the_values_path_under_a_newer_schema():
    rng = random.Random(5)
    records = [
        {
            "color": rng.choice(SERVING["color"].values),
            "n": rng.choice([None, *range(0, 15)]),
            "x": rng.choice([round(rng.uniform(-3, 4), 2), -1.5, 2.5]),
        }
        for _ in range(500)
    ]
    metadata = {
        "features": TRAINED.to_dict()["features"],
        training_values.METADATA_KEY: training_values.to_metadata(_seen()),
    }
    loaded = model.LoadedModel(booster=None, metadata=metadata)
    matrix = loaded.to_model_codes(_encode(records, SERVING), SERVING)
    # In the model's codes: what the training spec would have encoded, "new" past the end.
    trained_codes = [TRAINED["color"].code_of().get(r["color"], 3) for r in records]
    assert matrix[:, 0].tolist() == trained_codes
    by_values = loaded.unseen.flags_of_records(records)
    assert loaded.unseen.flags_of_matrix(matrix) == by_values
    assert loaded.unseen.flags(records, matrix) == by_values  # > 64 records: the matrix path
    assert {f for flags in by_values for f in flags} == {"color", "n", "x"}
    assert by_values.count(()) > 50


def test_the_same_schema_leaves_the_codes_alone():
    metadata = {"features": TRAINED.to_dict()["features"]}
    assert model.category_maps(metadata, TRAINED) == []
    [(column, table)] = model.category_maps(metadata, SERVING)
    assert column == 0
    assert table[:-1].tolist() == [3.0, 0.0, 1.0, 2.0] and math.isnan(table[-1])


def test_the_version_names_the_schema_too():
    one = SchemaVersion("1", "a" * 64)
    two = SchemaVersion("2", "b" * 64)
    text = "tree\n"
    assert model.model_version(text, one.to_dict()) != model.model_version(text, two.to_dict())
    assert model.model_version(text, one.to_dict()) == model.model_version(text, one.to_dict())
    row = model.metadata_row(
        {"version": "v", "target": "t", "classes": {"positive": "1"}, "positive_rate_train": 0.5,
         "schema_version": two.to_dict()}
    )  # fmt: skip
    assert (row["schema_version"], row["schema_sha256"]) == ("2", "b" * 64)
