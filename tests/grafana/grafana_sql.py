"""What Grafana does to a panel's SQL before PostgreSQL sees it, and what a panel needs back.

No Grafana server runs on the development machines (no package in PyPI, npm or Debian), so the
tests play Grafana's part: expand the dashboard variables, the global variables and the
PostgreSQL macros exactly as Grafana's backend does (pkg/tsdb/grafana-postgresql-datasource:
`sqleng.Interpolate`, then `macros.go`), run the result on the real database, and check that the
columns that come back are the ones the panel type can draw.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from mlsys.config import ROOT

PROVISIONING_DIR = ROOT / "grafana-provisioning"
DASHBOARDS_DIR = PROVISIONING_DIR / "dashboards"
EXPRESSION_UID = "__expr__"  # Grafana's server-side expressions (math, reduce, threshold)

# `$name(args)`: Grafana's macro syntax (macros.go: `\$([_a-zA-Z0-9]+)\(([^\)]*)\)`).
_MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^)]*)\)")
# Dashboard variables: `$name`, `${name}`, `${name:format}`, `[[name]]`.
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
_UNITS = {
    "ms": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
    "y": timedelta(days=365),
}


class MacroError(ValueError):
    """A macro or variable Grafana would refuse (unknown name, missing argument, bad interval)."""


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @classmethod
    def last(cls, span: str, *, now: datetime) -> TimeRange:
        """The range Grafana gives a panel for `now-<span>` .. `now`."""
        return cls(now - parse_duration(span), now)


def parse_duration(text: str) -> timedelta:
    """Grafana's interval syntax (`30s`, `5m`, `1h`, `1d`), as gtime.ParseInterval reads it."""
    match = _DURATION.match(text.strip().strip("'"))
    if not match:
        raise MacroError(f"error parsing interval {text!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def format_duration(value: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit, as `$__interval` is written."""
    for unit in ("y", "d", "h", "m", "s", "ms"):
        if value >= _UNITS[unit]:
            return f"{value // _UNITS[unit]}{unit}"
    return "1ms"


def rfc3339(moment: datetime) -> str:
    """Go's time.RFC3339Nano in UTC: fractional seconds without trailing zeros, then `Z`."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _seconds(value: timedelta) -> str:
    """Go's `%v` of a float64 number of seconds: `300`, not `300.0`."""
    seconds = value.total_seconds()
    return str(int(seconds)) if seconds.is_integer() else repr(seconds)


def expand(
    sql: str,
    time_range: TimeRange,
    *,
    interval: timedelta = timedelta(minutes=1),
    variables: Mapping[str, str] | None = None,
) -> str:
    """Expand a panel's SQL as Grafana does before sending it to PostgreSQL.

    Args:
        sql: the panel's `rawSql`.
        time_range: the panel's time range (the dashboard's, or the panel's `timeFrom` override).
        interval: what Grafana computes for `$__interval` from the range and the panel width.
        variables: the dashboard's template variables (name -> value), interpolated first, by
            the browser, as Grafana does.
    Returns:
        The SQL PostgreSQL receives.
    Raises:
        MacroError: for an unknown macro or variable, a missing argument, or a bad interval,
            where Grafana would show an error on the panel.
    """
    sql = _interpolate_variables(sql, time_range, variables or {})
    # sqleng.Interpolate: global substitutions, `$__interval_ms` before `$__interval`.
    sql = sql.replace("$__interval_ms", str(int(interval.total_seconds() * 1000)))
    sql = sql.replace("$__interval", format_duration(interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(time_range.start.timestamp())))
    sql = sql.replace("$__unixEpochTo()", str(int(time_range.end.timestamp())))

    def replace(match: re.Match[str]) -> str:
        name, raw_args = match.group(1), match.group(2)
        # Grafana < 5.3 compatibility, kept by macros.go: `$__timeGroup(...)` directly followed
        # by a comma is read as `$__timeGroupAlias(...)`.
        if name == "__timeGroup" and sql[match.end() : match.end() + 1] == ",":
            name = "__timeGroupAlias"
        args = [a.strip() for a in raw_args.split(",")]
        return _macro(name, args, time_range)

    expanded = _MACRO.sub(replace, sql)
    leftover = re.search(r"\$\w+", expanded)
    if leftover:
        raise MacroError(f"{leftover.group(0)!r} is left in the SQL after expansion")
    return expanded


def _interpolate_variables(sql: str, time_range: TimeRange, variables: Mapping[str, str]) -> str:
    builtin = {
        "__from": str(int(time_range.start.timestamp() * 1000)),
        "__to": str(int(time_range.end.timestamp() * 1000)),
        "__range_s": str(int((time_range.end - time_range.start).total_seconds())),
        "__range_ms": str(int((time_range.end - time_range.start).total_seconds() * 1000)),
    }

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in variables:
            return variables[name]
        if name in builtin:
            return builtin[name]
        if name.startswith("__"):
            return match.group(0)  # a macro or a global variable, for the backend
        raise MacroError(f"dashboard variable ${name} is not defined")

    return _VARIABLE.sub(replace, sql)


def _macro(name: str, args: list[str], time_range: TimeRange) -> str:
    column = args[0] if args and args[0] else None
    start, end = rfc3339(time_range.start), rfc3339(time_range.end)
    if name in ("__time", "__timeEpoch", "__timeFilter", "__unixEpochFilter") and column is None:
        raise MacroError(f"missing time column argument for macro {name}")
    if name == "__time":
        return f'{column} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {column}) as "time"'
    if name == "__timeFilter":
        return f"{column} BETWEEN '{start}' AND '{end}'"
    if name == "__timeFrom":
        return f"'{start}'"
    if name == "__timeTo":
        return f"'{end}'"
    if name in ("__timeGroup", "__timeGroupAlias", "__unixEpochGroup", "__unixEpochGroupAlias"):
        if len(args) < 2:
            raise MacroError(f"macro {name} needs time column and interval and optional fill value")
        step = _seconds(parse_duration(args[1]))
        # A third argument (fill mode) changes how Grafana post-processes the frame, not the SQL.
        if name.startswith("__unixEpoch"):
            group = f"floor(({column})/{step})*{step}"
        else:
            group = f"floor(extract(epoch from {column})/{step})*{step}"
        return group + (' AS "time"' if name.endswith("Alias") else "")
    if name == "__unixEpochFilter":
        low, high = int(time_range.start.timestamp()), int(time_range.end.timestamp())
        return f"{column} >= {low} AND {column} <= {high}"
    raise MacroError(f"unknown macro {name!r}")


# --- provisioning files ---------------------------------------------------------------------


def load_yaml_dir(folder: str) -> dict[Path, dict[str, Any]]:
    """Every YAML file of a provisioning folder (datasources, dashboards, alerting)."""
    files = sorted((PROVISIONING_DIR / folder).glob("*.y*ml"))
    return {path: yaml.safe_load(path.read_text(encoding="utf-8")) for path in files}


def load_dashboards() -> dict[Path, dict[str, Any]]:
    return {
        path: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(DASHBOARDS_DIR.glob("*.json"))
    }


def datasource_uids() -> set[str]:
    return {
        ds["uid"]
        for content in load_yaml_dir("datasources").values()
        for ds in content.get("datasources", [])
    }


def panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_variables(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """Template variables with the value a freshly opened dashboard has."""
    found = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        current = variable.get("current", {}).get("value")
        found[variable["name"]] = str(current if current is not None else variable.get("query", ""))
    return found


def alert_rules() -> Iterator[tuple[str, dict[str, Any]]]:
    """(group name, rule) for every provisioned alert rule."""
    for content in load_yaml_dir("alerting").values():
        for group in content.get("groups", []):
            for rule in group["rules"]:
                yield group["name"], rule


# --- what a panel needs back ----------------------------------------------------------------

# PostgreSQL type OIDs, as Grafana's frame conversion (sql_engine.go) classifies them.
NUMERIC_OIDS = frozenset({20, 21, 23, 700, 701, 1700})  # int8 int2 int4 float4 float8 numeric
TIME_OIDS = frozenset({1082, 1114, 1184})  # date timestamp timestamptz
STRING_OIDS = frozenset({18, 19, 25, 1042, 1043})  # char name text bpchar varchar


@dataclass(frozen=True)
class Column:
    name: str
    oid: int

    @property
    def numeric(self) -> bool:
        return self.oid in NUMERIC_OIDS

    @property
    def string(self) -> bool:
        return self.oid in STRING_OIDS


@dataclass(frozen=True)
class Result:
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]

    def column(self, name: str) -> list[Any]:
        index = [c.name for c in self.columns].index(name)
        return [row[index] for row in self.rows]


def run(cursor, sql: str) -> Result:
    cursor.execute(sql)
    columns = tuple(Column(d.name, d.type_code) for d in cursor.description)
    return Result(columns, tuple(cursor.fetchall()))


def problems(panel_type: str, fmt: str, result: Result) -> list[str]:
    """Why this result cannot feed a panel of this type and query format (empty: it can)."""
    names = [c.name for c in result.columns]
    numeric = [c for c in result.columns if c.numeric and c.name not in ("time", "time_sec")]
    found: list[str] = []
    if len(set(names)) != len(names):
        found.append(f"duplicate column names {names}")
    if not result.rows:
        found.append("no rows on the seeded data, so nothing was checked")
    if fmt == "time_series" or panel_type == "timeseries":
        if fmt != "time_series":
            found.append(f"a {panel_type} panel needs format time_series, not {fmt}")
        if "time" not in names:
            found.append(f"no column named 'time' in {names}")
        else:
            time_column = result.columns[names.index("time")]
            if not (time_column.oid in TIME_OIDS or time_column.numeric):
                found.append("column 'time' is neither a timestamp nor an epoch number")
            times = [t for t in result.column("time") if t is not None]
            if len(times) != len(result.rows):
                found.append("null values in column 'time'")
            elif times != sorted(times):
                # Long-to-wide conversion refuses unsorted series (data.ErrorSeriesUnsorted).
                found.append("rows are not ordered by time")
        others = [c for c in result.columns if c.name != "time" and not c.numeric and not c.string]
        if others:
            found.append(f"columns neither numeric nor text: {[c.name for c in others]}")
        if not numeric:
            found.append("no numeric value column")
    elif panel_type in ("stat", "gauge", "bargauge", "piechart"):
        if not numeric:
            found.append(f"a {panel_type} panel needs a numeric column, got {names}")
    elif panel_type == "barchart":
        if not numeric or not any(c.string or c.oid in TIME_OIDS for c in result.columns):
            found.append(f"a bar chart needs a text or time column and a numeric one, got {names}")
    elif panel_type != "table":
        found.append(f"panel type {panel_type!r} is not one these tests know how to check")
    return found


def alert_problems(result: Result) -> list[str]:
    """Grafana alerts on a SQL table ("numeric data") only with exactly one numeric column,
    the text columns becoming labels that must tell the rows apart."""
    numeric = [c for c in result.columns if c.numeric]
    text = [c for c in result.columns if c.string]
    found = []
    if len(numeric) != 1:
        found.append(f"needs exactly one numeric column, got {[c.name for c in numeric]}")
    if len(numeric) + len(text) != len(result.columns):
        found.append("columns other than numbers and text")
    labels = [tuple(row[result.columns.index(c)] for c in text) for row in result.rows]
    if len(set(labels)) != len(labels):
        found.append("rows with the same labels: Grafana refuses duplicate series")
    return found


def threshold_fires(evaluator: Mapping[str, Any], value: float) -> bool:
    """Grafana's threshold expression for one number."""
    kind, params = evaluator["type"], [float(p) for p in evaluator["params"]]
    if kind == "gt":
        return value > params[0]
    if kind == "lt":
        return value < params[0]
    if kind == "within_range":
        return params[0] < value < params[1]
    if kind == "outside_range":
        return value < params[0] or value > params[1]
    raise ValueError(f"unknown threshold evaluator {kind!r}")


def steps(field_config: Mapping[str, Any]) -> list[tuple[float | None, str]]:
    """The (value, colour) threshold steps of a field configuration."""
    thresholds = field_config.get("thresholds", {})
    return [(s.get("value"), s.get("color", "")) for s in thresholds.get("steps", [])]


def colors(panel: Mapping[str, Any]) -> set[str]:
    """Every threshold colour a panel uses, in its defaults and overrides."""
    found = {color for _, color in steps(panel.get("fieldConfig", {}).get("defaults", {}))}
    for override in panel.get("fieldConfig", {}).get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "thresholds":
                found |= {s.get("color", "") for s in prop["value"].get("steps", [])}
    return found


def queries(panel: Mapping[str, Any]) -> Sequence[dict[str, Any]]:
    return [t for t in panel.get("targets", []) if t.get("rawSql")]
