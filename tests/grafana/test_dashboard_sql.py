"""Every panel's and alert rule's SQL, with Grafana's macros expanded, on seeded databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest
from psycopg2.extras import execute_values

from mlsys import model
from mlsys.db import migrate, psycopg2_dsn
from tests.conftest import fresh_database
from tests.grafana.grafana_sql import (
    EXPRESSION_UID,
    Result,
    TimeRange,
    alert_problems,
    alert_rules,
    dashboard_variables,
    expand,
    load_dashboards,
    panels,
    problems,
    queries,
    run,
    threshold_fires,
)

DASHBOARDS = {d["uid"]: d for d in load_dashboards().values()}


def _panel_cases():
    return [
        pytest.param(uid, p["id"], t["refId"], id=f"{uid}#{p['id']}{t['refId']}")
        for uid, d in DASHBOARDS.items()
        for p in panels(d)
        for t in queries(p)
    ]


def _panel(uid: str, panel_id: int) -> dict:
    return next(p for p in panels(DASHBOARDS[uid]) if p["id"] == panel_id)


def _run_panel(seeded, scenario: str, uid: str, panel_id: int, ref: str = "A") -> Result:
    dsn, planned = seeded[scenario]
    panel = _panel(uid, panel_id)
    target = next(t for t in panel["targets"] if t["refId"] == ref)
    span = panel.get("timeFrom") or DASHBOARDS[uid]["time"]["from"].removeprefix("now-")
    sql = expand(
        target["rawSql"],
        TimeRange.last(span, now=planned.now),
        variables=dashboard_variables(DASHBOARDS[uid]),
    )
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")  # as Grafana's SELECT-only user
        return run(cur, sql)


@pytest.mark.parametrize("scenario", ["healthy", "degraded"])
@pytest.mark.parametrize(("uid", "panel_id", "ref"), _panel_cases())
def test_panel_sql_returns_what_its_panel_draws(seeded, scenario, uid, panel_id, ref):
    panel = _panel(uid, panel_id)
    target = next(t for t in panel["targets"] if t["refId"] == ref)
    result = _run_panel(seeded, scenario, uid, panel_id, ref)
    assert problems(panel["type"], target["format"], result) == []


@pytest.mark.parametrize(("uid", "panel_id", "ref"), _panel_cases())
def test_panel_sql_runs_when_ingestion_has_stopped(seeded, uid, panel_id, ref):
    result = _run_panel(seeded, "stalled", uid, panel_id, ref)
    assert result.columns  # ran; an empty window is allowed here


# --- the figures shown are the right ones --------------------------------------------------------


@pytest.mark.parametrize("scenario", ["healthy", "degraded", "stalled"])
def test_data_quality_figures(seeded, scenario):
    _, planned = seeded[scenario]
    recent = planned.files_since(timedelta(minutes=15))
    total = sum(f["rows_total"] for f in recent)
    share = sum(f["rows_invalid"] for f in recent) / total if total else 0.0
    assert _run_panel(seeded, scenario, "mlsys-data-quality", 1).rows[0][0] == pytest.approx(share)
    files = _run_panel(seeded, scenario, "mlsys-data-quality", 2).rows[0][0]
    assert files == len(planned.files_since(timedelta(minutes=10)))
    by_level = _run_panel(seeded, scenario, "mlsys-data-quality", 3)
    half_hour = planned.files_since(timedelta(minutes=30))
    for level in ("none", "low", "medium", "high"):
        expected = sum(f["criticality"] == level for f in half_hour)
        assert by_level.column(level) == [expected], level
    table = _run_panel(seeded, scenario, "mlsys-data-quality", 7)
    newest = sorted(planned.files, key=lambda f: f["ingested_at"], reverse=True)[:20]
    assert table.column("file") == [f["file_name"] for f in newest]
    assert table.column("report") == [f["file_name"].replace(".csv", ".html") for f in newest]


@pytest.mark.parametrize("scenario", ["healthy", "degraded"])
def test_prediction_figures(seeded, scenario, model_metadata):
    _, planned = seeded[scenario]
    prior = model_metadata["positive_rate_train"]  # what the service recorded in the database
    recent = planned.predictions_since(timedelta(minutes=30))
    positive = sum(p["probability"] >= 0.5 for p in recent) / len(recent)
    shift = _run_panel(seeded, scenario, "mlsys-drift-predictions", 4)
    assert shift.column("shift") == [pytest.approx(abs(positive - prior))]
    assert shift.column("predictions") == [len(recent)]
    confidence = sum(max(p["probability"], 1 - p["probability"]) for p in recent) / len(recent)
    gauge = _run_panel(seeded, scenario, "mlsys-drift-predictions", 5)
    assert gauge.rows[0][0] == pytest.approx(confidence)
    volume = _run_panel(seeded, scenario, "mlsys-drift-predictions", 8)
    assert sum(volume.column("predictions")) == len(planned.predictions_since(timedelta(hours=1)))
    assert set(volume.column("metric")) == {"webapp", "scheduled"}


@pytest.mark.parametrize("scenario", ["healthy", "degraded"])
def test_predictions_with_unseen_values_by_feature(seeded, scenario):
    _, planned = seeded[scenario]
    result = _run_panel(seeded, scenario, "mlsys-drift-predictions", 9)
    counted: dict[str, int] = {}
    for feature, n in zip(result.column("metric"), result.column("predictions with unseen values"), strict=True):  # fmt: skip
        counted[feature] = counted.get(feature, 0) + n
    expected: dict[str, int] = {}
    for p in planned.predictions_since(timedelta(hours=1)):
        for feature in p["unseen_features"]:
            expected[feature] = expected.get(feature, 0) + 1
    assert counted == expected
    # The degraded scenario's newly approved category shows; the healthy one has none.
    assert ("purpose" in counted) == (scenario == "degraded")


def test_latest_drift_per_feature(seeded):
    _, planned = seeded["degraded"]
    result = _run_panel(seeded, "degraded", "mlsys-drift-predictions", 2)
    latest = {}
    for d in planned.drift:  # in file order: the last one seen is the newest
        if d["status"] != "insufficient_data":
            latest[d["feature"]] = d["value"] / d["threshold"]
    assert dict(result.rows) == pytest.approx(latest)
    over = {f for f, ratio in result.rows if ratio > 1}
    assert over == set(planned.drifting_features)


# --- alert rules ---------------------------------------------------------------------------------

EXPECTED_FIRING = {
    "healthy": set(),
    "stalled": {"mlsys-ingestion-stalled"},
    "degraded": {
        "mlsys-invalid-share",
        "mlsys-high-criticality",
        "mlsys-feature-drift",
        "mlsys-class-shift",
        "mlsys-low-confidence",
    },
}


def _evaluate(seeded, scenario: str, rule: dict) -> list[tuple[dict, float, bool]]:
    """(labels, value, firing) for each alert instance, as Grafana's numeric-data rules do."""
    dsn, planned = seeded[scenario]
    (query,) = [q for q in rule["data"] if q["datasourceUid"] != EXPRESSION_UID]
    window = query["relativeTimeRange"]
    time_range = TimeRange(
        planned.now - timedelta(seconds=window["from"]),
        planned.now - timedelta(seconds=window["to"]),
    )
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        result = run(cur, expand(query["model"]["rawSql"], time_range))
    assert alert_problems(result) == [], rule["uid"]
    condition = next(q for q in rule["data"] if q["refId"] == rule["condition"])
    assert condition["model"]["expression"] == query["refId"]
    (check,) = condition["model"]["conditions"]
    labels = [c for c in result.columns if c.string]
    value_at = next(i for i, c in enumerate(result.columns) if c.numeric)
    return [
        (
            {c.name: row[result.columns.index(c)] for c in labels},
            float(row[value_at]),
            threshold_fires(check["evaluator"], float(row[value_at])),
        )
        for row in result.rows
    ]


@pytest.mark.parametrize("scenario", sorted(EXPECTED_FIRING))
def test_alert_rules_fire_exactly_when_they_should(seeded, scenario):
    firing = set()
    for _, rule in alert_rules():
        instances = _evaluate(seeded, scenario, rule)
        if any(fires for _, _, fires in instances):
            firing.add(rule["uid"])
        if rule["noDataState"] == "Alerting" and not instances:
            firing.add(rule["uid"])
    assert firing == EXPECTED_FIRING[scenario]


def test_drift_alert_names_the_drifting_features(seeded):
    _, planned = seeded["degraded"]
    (rule,) = [r for _, r in alert_rules() if r["uid"] == "mlsys-feature-drift"]
    instances = _evaluate(seeded, "degraded", rule)
    assert {labels["feature"] for labels, _, fires in instances if fires} == set(
        planned.drifting_features
    )
    assert len(instances) > len(planned.drifting_features)  # one instance per judged feature


# --- the prior comes from the model's metadata in the database -----------------------------------


def _predictions(cur, version: str, positives: int, total: int, now: datetime) -> None:
    """`total` webapp predictions of `version` in the last ten minutes, `positives` of them >= 0.5."""
    rows = [
        (now - timedelta(seconds=5 * i), "webapp", json.dumps({}), "x",
         0.9 if i < positives else 0.1, version)
        for i in range(total)
    ]  # fmt: skip
    execute_values(
        cur,
        """INSERT INTO predictions (created_at, source, features, prediction, probability,
                                    model_version) VALUES %s""",
        rows,
    )


@pytest.mark.parametrize(("other_positives", "fires"), [(20, False), (60, True)])
def test_the_prior_is_that_of_the_model_behind_each_prediction(
    pg_server, model_metadata, other_positives, fires
):
    """Two models of two data sets (priors ~0.70 and 0.32) served in the same half hour: each
    prediction is compared with its own model's prior; a model nobody recorded is left out."""
    url = fresh_database(pg_server, f"grafana_priors_{other_positives}")
    migrate(url)
    other = model_metadata | {"version": "lgbm-second-data-set", "positive_rate_train": 0.32}
    now = datetime.now(UTC)
    conn = psycopg2.connect(psycopg2_dsn(url))
    try:
        for metadata in (model_metadata, other):
            model.record_metadata(conn, metadata)
        with conn, conn.cursor() as cur:
            first = round(60 * model_metadata["positive_rate_train"])
            _predictions(cur, model_metadata["version"], first, 60, now)
            _predictions(cur, other["version"], other_positives, 60, now)
            _predictions(cur, "lgbm-never-recorded", 30, 30, now)
    finally:
        conn.close()
    expected = abs(
        (first + other_positives) / 120 - (model_metadata["positive_rate_train"] + 0.32) / 2
    )
    window = TimeRange(now - timedelta(minutes=30), now + timedelta(seconds=1))
    with psycopg2.connect(psycopg2_dsn(url)) as conn, conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        panel = _panel("mlsys-drift-predictions", 4)
        shift = run(cur, expand(panel["targets"][0]["rawSql"], window))
        assert shift.column("predictions") == [120]
        assert shift.column("shift") == [pytest.approx(expected)]
        band = run(
            cur, expand(_panel("mlsys-drift-predictions", 3)["targets"][0]["rawSql"], window)
        )
        assert problems("timeseries", "time_series", band) == []
        (rule,) = [r for _, r in alert_rules() if r["uid"] == "mlsys-class-shift"]
        (query,) = [q for q in rule["data"] if q["datasourceUid"] != EXPRESSION_UID]
        [(value,)] = run(cur, expand(query["model"]["rawSql"], window)).rows
    assert value == pytest.approx(expected)
    condition = next(q for q in rule["data"] if q["refId"] == rule["condition"])
    assert threshold_fires(condition["model"]["conditions"][0]["evaluator"], value) is fires
