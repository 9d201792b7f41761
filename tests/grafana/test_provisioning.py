"""Structure of every provisioning file: what Grafana would refuse, or show wrong, at start."""

from __future__ import annotations

import json
import re

import pytest

from tests.grafana.grafana_sql import (
    DASHBOARDS_DIR,
    EXPRESSION_UID,
    PROVISIONING_DIR,
    alert_rules,
    colors,
    dashboard_variables,
    datasource_uids,
    load_dashboards,
    load_yaml_dir,
    panels,
    parse_duration,
    queries,
    steps,
)

UID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")  # what Grafana accepts as a uid
ENV_REFERENCE = re.compile(r"^\$\{?[A-Z][A-Z0-9_]*\}?$")
DASHBOARDS = load_dashboards()
TRAFFIC_LIGHTS = {"green", "orange", "red"}


def _all_panels():
    return [
        pytest.param(d, p, id=f"{d['uid']}#{p['id']}")
        for d in DASHBOARDS.values()
        for p in panels(d)
        if p.get("type") != "row"
    ]


def test_every_file_loads_and_has_a_version():
    yaml_files = [*PROVISIONING_DIR.glob("*/*.yaml"), *PROVISIONING_DIR.glob("*/*.yml")]
    assert {p.parent.name for p in yaml_files} == {"datasources", "dashboards", "alerting"}
    for folder in ("datasources", "dashboards", "alerting"):
        for path, content in load_yaml_dir(folder).items():
            assert content.get("apiVersion") == 1, path
    assert len(DASHBOARDS) == 2, sorted(p.name for p in DASHBOARDS)


def test_datasource_comes_from_the_environment():
    (content,) = load_yaml_dir("datasources").values()
    (ds,) = content["datasources"]
    assert ds["type"] == "grafana-postgresql-datasource" and UID.match(ds["uid"])
    assert ENV_REFERENCE.match(ds["secureJsonData"]["password"]), "a password in the repository"
    assert ENV_REFERENCE.match(ds["user"]) and ENV_REFERENCE.match(ds["jsonData"]["database"])
    assert all(ENV_REFERENCE.match(part) for part in ds["url"].split(":"))


def test_dashboard_provider_points_at_the_dashboards():
    (content,) = load_yaml_dir("dashboards").values()
    (provider,) = content["providers"]
    assert provider["type"] == "file" and provider["folder"]
    # docker-compose.yml mounts grafana-provisioning/ at /etc/grafana/provisioning.
    assert provider["options"]["path"] == "/etc/grafana/provisioning/" + DASHBOARDS_DIR.name


def test_dashboards_have_unique_uids_and_at_least_four_charts():
    uids = [d["uid"] for d in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids) and all(UID.match(u) for u in uids)
    for dashboard in DASHBOARDS.values():
        charts = [p for p in panels(dashboard) if queries(p)]
        assert len(charts) >= 4, dashboard["uid"]
        assert len({p["title"] for p in charts}) == len(charts), "two charts with one title"
        assert len({p["type"] for p in charts}) >= 3, "charts should not all look alike"
        ids = [p["id"] for p in panels(dashboard)]
        assert len(set(ids)) == len(ids), f"duplicate panel ids in {dashboard['uid']}"


@pytest.mark.parametrize(("dashboard", "panel"), _all_panels())
def test_every_panel_queries_a_provisioned_datasource(dashboard, panel):
    known = datasource_uids()
    assert panel["datasource"]["uid"] in known
    assert queries(panel), "a panel without SQL"
    for target in panel["targets"]:
        assert target.get("datasource", panel["datasource"])["uid"] in known
        assert target["format"] in ("table", "time_series")
    refs = [t["refId"] for t in panel["targets"]]
    assert len(set(refs)) == len(refs)


@pytest.mark.parametrize(("dashboard", "panel"), _all_panels())
def test_every_panel_is_a_time_based_statistic_with_traffic_lights(dashboard, panel):
    for target in queries(panel):
        assert "$__timeFilter(" in target["rawSql"], "the panel ignores the time range"
    if panel["type"] == "timeseries":
        groups = re.findall(
            r"\$__timeGroup(?:Alias)?\([^,]+,\s*'?(\w+)'?", queries(panel)[0]["rawSql"]
        )
        times = 'f.ingested_at AS "time"' in queries(panel)[0]["rawSql"]
        assert groups or times, "a time series neither bucketed nor per file"
        assert all(parse_duration(g).total_seconds() <= 300 for g in groups)
    else:
        # A single figure over a recent window: the last 10 to 30 minutes.
        window = parse_duration(panel.get("timeFrom", "0s")).total_seconds()
        assert (600 <= window <= 1800) or panel["type"] == "table", panel.get("timeFrom")
    assert colors(panel) >= TRAFFIC_LIGHTS, f"thresholds {colors(panel)}"
    defaults = panel["fieldConfig"]["defaults"]
    assert defaults["thresholds"]["mode"] == "absolute"
    values = [v for v, _ in steps(defaults)]
    assert values[0] is None and values[1:] == sorted(values[1:])


def test_variables_that_panels_use_are_defined():
    for dashboard in DASHBOARDS.values():
        names = set(dashboard_variables(dashboard))
        for panel in panels(dashboard):
            text = json.dumps(panel)
            used = set(re.findall(r"\$\{?([a-z]\w*)", text))
            assert used <= names, f"{dashboard['uid']}#{panel['id']}: {used - names}"


# --- alerting ---------------------------------------------------------------------------------


def _alerting(key):
    return [item for c in load_yaml_dir("alerting").values() for item in c.get(key, [])]


def test_alert_rules_reference_existing_queries_and_panels():
    rules = [rule for _, rule in alert_rules()]
    uids = [r["uid"] for r in rules]
    assert len(set(uids)) == len(uids) and all(UID.match(u) for u in uids)
    by_uid = {d["uid"]: d for d in DASHBOARDS.values()}
    for rule in rules:
        refs = {q["refId"] for q in rule["data"]}
        assert rule["condition"] in refs, rule["uid"]
        for query in rule["data"]:
            assert query["model"]["refId"] == query["refId"]
            if query["datasourceUid"] == EXPRESSION_UID:
                assert query["model"]["expression"] in refs - {query["refId"]}, rule["uid"]
            else:
                assert query["datasourceUid"] in datasource_uids()
                assert query["model"]["format"] == "table"  # Grafana's numeric-data alerting
                assert 600 <= query["relativeTimeRange"]["from"] <= 1800
                assert "$__timeFilter(" in query["model"]["rawSql"]
        dashboard = by_uid[rule["dashboardUid"]]
        assert rule["panelId"] in {p["id"] for p in panels(dashboard)}, rule["uid"]
        parse_duration(rule["for"])
        assert rule["annotations"]["summary"]
    assert {r["dashboardUid"] for r in rules} == set(by_uid), "a dashboard without an alert"


def test_alert_thresholds_are_the_red_bands_of_their_panels():
    by_uid = {d["uid"]: d for d in DASHBOARDS.values()}
    for _, rule in alert_rules():
        panel = next(p for p in panels(by_uid[rule["dashboardUid"]]) if p["id"] == rule["panelId"])
        threshold = next(q for q in rule["data"] if q["model"].get("type") == "threshold")
        (condition,) = threshold["model"]["conditions"]
        kind, (limit,) = condition["evaluator"]["type"], condition["evaluator"]["params"]
        sets = [steps(panel["fieldConfig"]["defaults"])] + [
            [(s.get("value"), s["color"]) for s in prop["value"]["steps"]]
            for o in panel["fieldConfig"]["overrides"]
            for prop in o["properties"]
            if prop["id"] == "thresholds"
        ]
        if kind == "gt":  # red from `limit` (or from limit + 1 for counts: "> 1" is ">= 2")
            red = [v for s in sets for v, c in s if c == "red" and v is not None]
            assert any(abs(v - limit) < 1e-9 or abs(v - limit - 1) < 1e-9 for v in red), rule["uid"]
        else:  # lt: red below `limit`, i.e. the first step after a red base starts at it
            starts = [s[1][0] for s in sets if len(s) > 1 and s[0][1] == "red"]
            assert any(abs(v - limit) < 1e-9 for v in starts), rule["uid"]


def test_teams_contact_point_takes_its_url_from_the_environment():
    (point,) = _alerting("contactPoints")
    (receiver,) = point["receivers"]
    assert receiver["type"] == "teams" and UID.match(receiver["uid"])
    assert ENV_REFERENCE.match(receiver["settings"]["url"])
    for path in (PROVISIONING_DIR / "alerting").glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"https?://", text), f"a literal URL in {path.name}"


def test_notification_policy_deduplicates_and_cools_down():
    (policy,) = _alerting("policies")
    assert policy["receiver"] in {c["name"] for c in _alerting("contactPoints")}
    assert "alertname" in policy["group_by"]
    assert parse_duration(policy["group_wait"]).total_seconds() >= 30
    assert parse_duration(policy["group_interval"]).total_seconds() >= 300
    assert parse_duration(policy["repeat_interval"]).total_seconds() >= 3600


def test_alert_folder_is_the_dashboards_folder():
    (content,) = load_yaml_dir("dashboards").values()
    folder = content["providers"][0]["folder"]
    assert {
        g["folder"] for c in load_yaml_dir("alerting").values() for g in c.get("groups", [])
    } == {folder}


# --- constants that must agree with the model and the schema -------------------------------------


def _sqls() -> list[tuple[str, str]]:
    found = [
        (f"{d['uid']}#{p['id']}", t["rawSql"])
        for d in DASHBOARDS.values()
        for p in panels(d)
        for t in queries(p)
    ]
    for _, rule in alert_rules():
        found += [
            (rule["uid"], q["model"]["rawSql"]) for q in rule["data"] if "rawSql" in q["model"]
        ]
    return found


def test_the_training_prior_is_read_from_the_models_metadata_never_written_in():
    """Another data set has another prior: every query comparing with it joins model_versions
    on the prediction's model, and no dashboard holds a constant of one data set."""
    using = [(where, sql) for where, sql in _sqls() if "positive_rate_train" in sql]
    assert {where for where, _ in using} >= {"mlsys-class-shift"}
    assert len(using) >= 3  # the two panels and the alert rule
    for where, sql in using:
        assert "JOIN model_versions m ON m.version = p.model_version" in sql, where
    for where, sql in _sqls():
        assert not re.search(r"probability >= 0\.5\)::int\)? - 0\.\d", sql), where
    for dashboard in DASHBOARDS.values():
        assert not [
            v for v in dashboard.get("templating", {}).get("list", []) if v["type"] == "constant"
        ], dashboard["uid"]


def test_the_prior_bands_are_around_zero():
    (band,) = [
        p for d in DASHBOARDS.values() for p in panels(d)
        if p.get("type") == "timeseries" and "positive_rate_train" in json.dumps(p)
    ]  # fmt: skip
    values = [v for v, _ in steps(band["fieldConfig"]["defaults"])][1:]
    assert values == pytest.approx([-0.15, -0.10, 0.10, 0.15])


def test_drift_is_judged_against_each_features_own_threshold():
    for dashboard in DASHBOARDS.values():
        for panel in panels(dashboard):
            for target in queries(panel):
                if "feature_drift" in target["rawSql"]:
                    assert "d.value / d.threshold" in target["rawSql"]
