"""Each generator does exactly what its manifest entry says, on real rows of the data set."""

from __future__ import annotations

import dataclasses
import io
import logging

import numpy as np
import pandas as pd
import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2

from error_injection import errors
from error_injection.generate import GenerationError, Plan, build, unsupported_types
from mlsys import csvfile, rowchecks

ROW_CELL_TYPES = ["missing_value", "unknown_category", "out_of_range", "string_in_numeric",
                  "non_integer"]  # fmt: skip
SEEDS = range(6)  # several seeds: each type picks its feature at random


def run(name: str, source: pd.DataFrame, spec, seed: int, start: int = 0, rows: int = 50):
    chunk = source.iloc[start : start + rows].reset_index(drop=True)
    ctx = errors.Context(spec, np.random.default_rng(seed), row_share=0.1)
    out = errors.inject(name, chunk, ctx)
    return chunk, out, out.injection


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame as the ingestion reads a CSV: every cell text, nothing turned into NaN."""
    return rowchecks.read_raw_csv(io.BytesIO(frame.to_csv(index=False).encode()))


def read_back(content: bytes) -> pd.DataFrame:
    return rowchecks.read_raw_csv(io.BytesIO(content))


def test_the_registry_has_at_least_ten_documented_types_with_an_explicit_level():
    assert len(errors.REGISTRY) >= 10
    assert set(errors.ROW_LEVEL) | set(errors.FILE_LEVEL) == set(errors.REGISTRY)
    assert len(errors.ROW_LEVEL) >= 6 and len(errors.FILE_LEVEL) >= 6
    tfdv_names = set(anomalies_pb2.AnomalyInfo.Type.keys())
    rules = set(rowchecks.RULE_DESCRIPTIONS)
    for t in errors.REGISTRY.values():
        assert t.level in ("row", "file"), t.name
        assert len(t.description) > 30, f"{t.name} needs a docstring"
        assert set(t.tfdv_anomalies) <= tfdv_names | {errors.DRIFT}, t.name
        assert t.check in rules | {errors.DRIFT}, t.name
        assert not (t.unusable and t.level == "row"), t.name
        if not t.tfdv_anomalies:  # TFDV cannot see it: a rule of our own must
            assert t.check in rules, t.name


def test_an_unknown_type_gets_the_list_of_known_ones():
    with pytest.raises(KeyError, match="known types: missing_value"):
        errors.get("typo")


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ROW_CELL_TYPES)
def test_cell_errors_change_exactly_the_cells_of_the_manifest(name, seed, source, spec):
    chunk, out, inj = run(name, source, spec, seed, start=50 * seed)
    before, after = as_text(chunk), read_back(out.render())
    assert list(after.columns) == list(before.columns)
    changed = before.ne(after)
    cells = {(int(r), c) for r, c in zip(*np.nonzero(changed.to_numpy()), strict=True)}
    cells = {(r, before.columns[c]) for r, c in cells}
    assert cells == {(r, c) for r in inj.rows for c in inj.columns}
    assert inj.level == "row" and len(inj.columns) == 1 and len(inj.rows) == 5
    assert inj.expected_anomalies and set(inj.expected_anomalies) == set(inj.columns)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", list(errors.REGISTRY))
def test_the_row_checks_flag_exactly_the_rows_of_the_manifest(name, seed, source, spec):
    """What the ingestion's row checks (mlsys.rowchecks) will find, file by file."""
    _, out, inj = run(name, source, spec, seed, start=50 * seed)
    content = out.render()
    try:
        frame = read_back(content)
    except csvfile.CsvRefused as exc:
        assert inj.unusable and inj.check == exc.rule, exc.reason
        return
    checks = rowchecks.check_rows(frame, spec)
    if inj.unusable:
        assert checks.unusable or checks.rows_total == 0, name
        return
    assert checks.bad_rows == list(inj.rows)
    if inj.rows:
        assert {r.rule for r in checks.reasons} == {inj.check}
        assert {r.column for r in checks.reasons} == set(
            inj.columns
        ) or inj.check == "duplicate_row"
    assert checks.unexpected_columns == (list(inj.columns) if name == "extra_column" else [])


@pytest.mark.parametrize("seed", SEEDS)
def test_out_of_range_values_are_outside_the_schema_range(seed, source, spec):
    chunk, out, inj = run("out_of_range", source, spec, seed)
    feature = spec[inj.columns[0]]
    values = pd.to_numeric(read_back(out.render())[feature.name].iloc[list(inj.rows)])
    assert ((values < feature.minimum) | (values > feature.maximum)).all()


@pytest.mark.parametrize("seed", SEEDS)
def test_unknown_categories_are_outside_the_domain(seed, source, spec):
    _, out, inj = run("unknown_category", source, spec, seed)
    feature = spec[inj.columns[0]]
    values = read_back(out.render())[feature.name]
    assert not set(values.iloc[list(inj.rows)]) & set(feature.values)


@pytest.mark.parametrize("seed", SEEDS)
def test_duplicates_are_copies_of_earlier_rows_and_nothing_is_lost(seed, source, spec):
    chunk, out, inj = run("duplicate_rows", source, spec, seed)
    after = read_back(out.render())
    assert len(after) == len(chunk) + len(inj.rows)
    kept = after.drop(index=list(inj.rows)).reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, as_text(chunk))
    for row in inj.rows:
        earlier = after.iloc[:row]
        assert (earlier == after.iloc[row]).all(axis=1).any(), row


def test_missing_column_removes_exactly_that_column(source, spec):
    chunk, out, inj = run("missing_column", source, spec, 1)
    after = read_back(out.render())
    assert list(after.columns) == [c for c in chunk.columns if c not in inj.columns]
    assert inj.unusable and inj.rows == () and len(inj.columns) == 1


def test_extra_column_leaves_the_rows_usable(source, spec):
    chunk, out, inj = run("extra_column", source, spec, 1)
    after = read_back(out.render())
    assert list(after.columns) == [*inj.columns, *chunk.columns]
    pd.testing.assert_frame_equal(after.drop(columns=list(inj.columns)), as_text(chunk))
    assert not inj.unusable and inj.rows == ()


def test_empty_and_header_only_files(source, spec):
    _, out, inj = run("empty_file", source, spec, 1)
    assert out.render() == b"" and inj.unusable
    chunk, out, inj = run("header_only", source, spec, 1)
    assert out.render().decode() == ",".join(chunk.columns) + "\n" and inj.unusable


def test_wrong_delimiter_and_encoding_keep_the_rows_in_another_format(source, spec):
    chunk, out, inj = run("wrong_delimiter", source, spec, 1)
    text = pd.read_csv(io.BytesIO(out.render()), sep=";", dtype=str, keep_default_na=False)
    pd.testing.assert_frame_equal(text, as_text(chunk))
    with pytest.raises(csvfile.CsvRefused, match="separated by semicolons"):
        read_back(out.render())
    chunk, out, inj = run("wrong_encoding", source, spec, 1)
    with pytest.raises(UnicodeDecodeError):
        out.render().decode("utf-8")
    assert out.render().decode("utf-16") == chunk.to_csv(index=False, lineterminator="\n")


@pytest.mark.parametrize("seed", SEEDS)
def test_drift_changes_the_distribution_and_no_row_is_invalid(seed, source, spec):
    for name in ("numeric_drift", "category_drift"):
        chunk, out, inj = run(name, source, spec, seed, start=50 * seed)
        before, after = as_text(chunk), read_back(out.render())
        assert inj.drift and inj.rows == () and not inj.unusable
        checks = rowchecks.check_rows(after, spec)
        assert checks.bad_rows == [] and checks.unexpected_columns == []
        changed = before.ne(after)
        assert list(changed.columns[changed.any()]) == list(inj.columns)
        column = inj.columns[0]
        assert list(np.flatnonzero(changed[column].to_numpy())) == list(inj.changed_rows)
        if name == "numeric_drift":
            old, new = before[column].astype(float), after[column].astype(float)
            assert abs(new.mean() - old.mean()) >= old.std(ddof=0), column
        else:
            assert after[column].value_counts(normalize=True).iloc[0] >= errors.CATEGORY_SHIFT_SHARE


def test_the_same_seed_gives_the_same_injection(source, spec):
    for name in errors.REGISTRY:
        first, second = run(name, source, spec, 7), run(name, source, spec, 7)
        assert first[1].render() == second[1].render(), name
        assert first[2] == second[2], name


def test_drift_files_of_one_run_shift_the_same_feature(source, spec):
    """A population shift persists: the ingestion judges drift on a window of several files."""
    plan = Plan(seed=5, error_share=1.0, types=("numeric_drift", "category_drift"))
    files = build(source, spec, plan)
    for name in plan.types:
        columns = {
            tuple(i["columns"])
            for f in files
            for i in f.manifest["injections"]
            if i["error_type"] == name
        }
        assert len(columns) == 1, (name, columns)


def test_each_injection_agrees_with_its_registry_entry(source, spec):
    for name, kind in errors.REGISTRY.items():
        inj = run(name, source, spec, 3)[2]
        assert (inj.level, inj.check, inj.unusable, inj.drift) == (
            kind.level, kind.check, kind.unusable, kind.drift
        ), name  # fmt: skip
        for types in inj.expected_anomalies.values():
            assert set(types) <= set(kind.tfdv_anomalies), name
        assert bool(inj.expected_anomalies) == bool(kind.tfdv_anomalies), name


@pytest.mark.parametrize("seed", range(4))
def test_several_row_errors_in_one_file_each_keep_to_their_rows_and_feature(seed, source, spec):
    plan = Plan(seed=seed, error_share=1.0, errors_per_file=3, types=errors.ROW_LEVEL)
    for item in build(source, spec, plan):
        injections = item.manifest["injections"]
        assert len({i["error_type"] for i in injections}) == 3
        columns = [c for i in injections for c in i["columns"]]
        rows = [r for i in injections for r in i["rows"]]
        assert len(columns) == len(set(columns)) and len(rows) == len(set(rows))
        checks = rowchecks.check_rows(read_back(item.content), spec)
        assert checks.bad_rows == item.manifest["bad_rows"] == sorted(rows)
        for i in injections:  # each rule flags exactly its injection's rows
            assert sorted({r.row for r in checks.reasons if r.rule == i["check"]}) == i["rows"]


# --- a schema that cannot carry every type ------------------------------------------------------


def _without(spec, *, ranges: bool = True, categories: bool = True):
    """The spec as another data set's schema might be: no numeric range, or no category."""
    features = tuple(
        dataclasses.replace(f, minimum=None, maximum=None) if ranges else f
        for f in spec.features
        if categories or not f.is_categorical
    )
    return dataclasses.replace(spec, features=features)


def test_types_the_schema_cannot_carry_are_skipped_with_a_warning(source, spec, caplog):
    bare = _without(spec)
    assert unsupported_types(("out_of_range", "missing_value"), bare, source) == {
        "out_of_range": "the schema has no numeric feature with a range"
    }
    plan = Plan(seed=5, files=10, error_share=1.0)
    with caplog.at_level(logging.WARNING, logger="error_injection.generate"):
        files = build(source, bare, plan)
    assert "error type 'out_of_range' skipped" in caplog.text
    used = {i["error_type"] for f in files for i in f.manifest["injections"]}
    assert "out_of_range" not in used and len(used) >= 5
    assert all("out_of_range" not in f.manifest["plan"]["types"] for f in files)
    # The German Credit schema carries every type: nothing is skipped there.
    assert unsupported_types(tuple(errors.REGISTRY), spec, source) == {}


def test_no_type_left_is_an_error_naming_why(source, spec):
    numeric_only = _without(spec, categories=False)
    with pytest.raises(GenerationError, match="unknown_category: the schema has no categorical"):
        build(source, numeric_only, Plan(types=("unknown_category", "category_drift")))
