"""The same cells through the ingestion, the UI and the live API: one verdict, one rule, one
message (`mlsys.rules` is the one definition of a valid value).

Each case is a one-row CSV file: a real application from the training data with one cell
replaced (or one column dropped or added). The three consumers read it as they do in
production:
- ingestion: `mlsys.csvfile` reader + `mlsys.rowchecks.check_rows` (what `validate_data` splits
  rows with);
- UI: `frontend.upload_checks.parse_upload` with the features of the API's /model-info;
- API: the prediction DAG's conversion (`pipelines.prediction.records.to_records` with the kinds
  of /model-info) posted to a real uvicorn process of the service.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from mlsys import rules
from mlsys.api_auth import Role
from mlsys.db import migrate
from mlsys.features import get_feature_spec
from mlsys.rowchecks import check_rows, read_raw_csv
from ops import pg
from pipelines.prediction import records as dag_records
from service import launch
from tests.conftest import auth_headers, fresh_database
from tests.service.conftest import service_env, start_api

pytestmark = pytest.mark.timeout(300)
MB = 1024 * 1024

MISSING_COLUMN = "<drop the column>"
EXTRA_COLUMN = "<add a column 'comment'>"

# (case, column, cell as written in the file, expected rule; None: the row is valid)
CASES = [
    ("NA in a numeric column", "age", "NA", rules.MISSING_VALUE),
    ("None in a categorical column", "sex", "None", rules.MISSING_VALUE),
    ("nan in a numeric column", "age", "nan", rules.MISSING_VALUE),
    ("empty string", "housing", "", rules.MISSING_VALUE),
    ("blank cell", "duration", "   ", rules.MISSING_VALUE),
    ("spaces around a number", "age", " 35 ", None),
    ("spaces around a category", "sex", " male ", None),
    ("5.0 for an integer", "job", "2.0", None),
    ("exponent for an integer", "credit_amount", "1e3", None),
    ("exponent out of range", "age", "1e3", rules.OUT_OF_RANGE),
    ("beyond 2**53", "credit_amount", "1e20", rules.OUT_OF_RANGE),
    ("fraction for an integer", "job", "2.5", rules.NOT_AN_INTEGER),
    ("inf", "duration", "inf", rules.NOT_A_NUMBER),
    ("-inf", "duration", "-inf", rules.NOT_A_NUMBER),
    ("text in a numeric column", "age", "abc", rules.NOT_A_NUMBER),
    ("underscore digits", "credit_amount", "1_000", rules.NOT_A_NUMBER),
    ("below the minimum", "age", "17", rules.OUT_OF_RANGE),
    ("above the maximum", "job", "4", rules.OUT_OF_RANGE),
    ("unknown category", "purpose", "alien", rules.UNKNOWN_CATEGORY),
    ("wrong case category", "sex", "Male", rules.UNKNOWN_CATEGORY),
    ("a number for a category", "housing", "1", rules.UNKNOWN_CATEGORY),
    ("missing column", "age", MISSING_COLUMN, rules.MISSING_COLUMN),
    ("extra column", "comment", EXTRA_COLUMN, rules.UNEXPECTED_COLUMN),
]


@dataclass(frozen=True)
class Verdict:
    """What one consumer made of a one-row file: valid or not, and (column, rule, message)
    for each problem (message None where that consumer states none)."""

    valid: bool
    problems: frozenset[tuple[str, str, str | None]]

    @property
    def rules(self) -> set[tuple[str, str]]:
        return {(c, r) for c, r, _ in self.problems}

    def messages(self) -> set[tuple[str, str, str]]:
        return {(c, r, m) for c, r, m in self.problems if m is not None}


@pytest.fixture(scope="module")
def api_url(pg_server, trained_model_dir, tmp_path_factory) -> Iterator[str]:
    url = fresh_database(pg_server, "rules_agree")
    migrate(url)
    tmp = tmp_path_factory.mktemp("rules-agree-api")
    proc, base = start_api(tmp, service_env(url, trained_model_dir, tmp, pg.free_port()))
    yield base
    launch.stop(proc)


@pytest.fixture(scope="module")
def model_info(api_url) -> dict:
    answer = requests.get(f"{api_url}/model-info", headers=auth_headers(Role.WEBAPP), timeout=10)
    answer.raise_for_status()
    return answer.json()


@pytest.fixture(scope="module")
def base_row(settings) -> dict[str, str]:
    """The first application of the training data, as text; valid (checked below)."""
    import pandas as pd

    frame = pd.read_csv(settings.dataset_path, dtype=str, keep_default_na=False)
    return {f.name: frame.iloc[0][f.name] for f in get_feature_spec().features}


def csv_for(base: dict[str, str], column: str, cell: str) -> bytes:
    import csv
    import io

    row = dict(base)
    if cell == MISSING_COLUMN:
        del row[column]
    elif cell == EXTRA_COLUMN:
        row[column] = "a note"
    else:
        row[column] = cell
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
    writer.writeheader()
    writer.writerow(row)
    return out.getvalue().encode()


def ingestion_verdict(path) -> Verdict:
    checks = check_rows(read_raw_csv(path), get_feature_spec())
    problems = {(c, rules.MISSING_COLUMN, None) for c in checks.missing_columns}
    problems |= {(c, rules.UNEXPECTED_COLUMN, None) for c in checks.unexpected_columns}
    if checks.table is not None:
        t = checks.table
        problems |= set(zip(t["column"], t["rule"], t["message"], strict=True))
    return Verdict(valid=not checks.bad_rows, problems=frozenset(problems))


def ui_verdict(data: bytes, model_info: dict) -> Verdict:
    from frontend.api_client import parse_model_info
    from frontend.upload_checks import CsvError, parse_upload

    features = parse_model_info(model_info).features
    try:
        parsed = parse_upload(data, features, max_bytes=MB)
    except CsvError as refused:
        return Verdict(False, frozenset((p.column, p.rule, p.message) for p in refused.problems))
    # An ignored column is said in a note naming the column, with the rule's message.
    message = rules.unexpected_column_message([f.name for f in features])
    ignored = {
        (note.split("'")[1], rules.UNEXPECTED_COLUMN, message)
        for note in parsed.notes
        if note.startswith("Column '") and message in note
    }
    # Invalid values do not refuse the file: their rows are listed, the valid rows predicted.
    p = parsed.problems
    cells = set(zip(p["column"], p["rule"], p["problem"], strict=True))
    return Verdict(parsed.all_valid, frozenset(ignored | cells))


def api_verdict(path, api_url: str, model_info: dict) -> Verdict:
    batch = dag_records.to_records(read_raw_csv(path), dag_records.feature_kinds(model_info))
    answer = requests.post(
        f"{api_url}/predict",
        json={"source": "webapp", "records": batch},
        headers=auth_headers(Role.WEBAPP),
        timeout=30,
    )
    if answer.status_code == 200:
        return Verdict(True, frozenset())
    assert answer.status_code == 422, answer.text
    errors = answer.json()["errors"]
    return Verdict(False, frozenset((e["field"], e["rule"], e["message"]) for e in errors))


def test_the_base_row_is_valid_everywhere(base_row, api_url, model_info, tmp_path):
    path = tmp_path / "base.csv"
    path.write_bytes(csv_for(base_row, "age", base_row["age"]))
    for verdict in (
        ingestion_verdict(path),
        ui_verdict(path.read_bytes(), model_info),
        api_verdict(path, api_url, model_info),
    ):
        assert verdict == Verdict(True, frozenset())


@pytest.mark.parametrize(("case", "column", "cell", "rule"), CASES, ids=[c[0] for c in CASES])
def test_ingestion_ui_and_api_agree(
    case, column, cell, rule, base_row, api_url, model_info, tmp_path
):
    path = tmp_path / "case.csv"
    path.write_bytes(csv_for(base_row, column, cell))
    ingestion = ingestion_verdict(path)
    ui = ui_verdict(path.read_bytes(), model_info)
    api = api_verdict(path, api_url, model_info)

    expected = set() if rule is None else {(column, rule)}
    assert ingestion.rules == ui.rules == api.rules == expected
    messages = [v.messages() for v in (ingestion, ui, api) if v.messages()]
    assert all(m == messages[0] for m in messages)
    if rule is None:
        assert ingestion.valid and ui.valid and api.valid
    elif rule == rules.UNEXPECTED_COLUMN:
        # The one intended difference: a file's unknown column is dropped (ingestion) or
        # ignored (UI), so the row stays valid; the API, whose contract is the exact list of
        # features, refuses a record holding an unknown field. Same rule, same message.
        assert ingestion.valid and ui.valid and not api.valid
        assert len(messages) == 2  # the UI's note and the API's error
    else:
        assert not ingestion.valid and not ui.valid and not api.valid
        assert len(messages) >= 2  # the UI and the API always state it
