"""The macro expansion the dashboard tests rely on, against Grafana's documented output."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.grafana.grafana_sql import (
    MacroError,
    TimeRange,
    expand,
    format_duration,
    parse_duration,
    rfc3339,
)

RANGE = TimeRange(
    datetime(2026, 11, 26, 7, 0, 0, tzinfo=UTC),
    datetime(2026, 11, 26, 7, 30, 0, 500000, tzinfo=UTC),
)


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("WHERE $__timeFilter(created_at)",
         "WHERE created_at BETWEEN '2026-11-26T07:00:00Z' AND '2026-11-26T07:30:00.5Z'"),
        ("SELECT $__timeGroupAlias(t, '5m')", "SELECT floor(extract(epoch from t)/300)*300 AS \"time\""),
        ("SELECT $__timeGroupAlias(t, 1h)", "SELECT floor(extract(epoch from t)/3600)*3600 AS \"time\""),
        ("GROUP BY $__timeGroup(t, '1m')", "GROUP BY floor(extract(epoch from t)/60)*60"),
        # Grafana < 5.3 compatibility: a comma right after $__timeGroup means the alias.
        ("SELECT $__timeGroup(t, '1m'), v", "SELECT floor(extract(epoch from t)/60)*60 AS \"time\", v"),
        ("SELECT $__timeGroupAlias(t, '5m', 0)", "SELECT floor(extract(epoch from t)/300)*300 AS \"time\""),
        ("SELECT $__time(t)", "SELECT t AS \"time\""),
        ("SELECT $__timeEpoch(t)", "SELECT extract(epoch from t) as \"time\""),
        ("$__timeFrom() .. $__timeTo()", "'2026-11-26T07:00:00Z' .. '2026-11-26T07:30:00.5Z'"),
        ("$__unixEpochFilter(e)", "e >= 1795676400 AND e <= 1795678200"),
        ("$__unixEpochFrom() $__unixEpochTo()", "1795676400 1795678200"),
        ("$__interval $__interval_ms", "1m 60000"),
        ("SELECT $__timeGroupAlias(t, $__interval)", "SELECT floor(extract(epoch from t)/60)*60 AS \"time\""),
    ],
)  # fmt: skip
def test_expansion_matches_grafana(sql, expected):
    assert expand(sql, RANGE) == expected


def test_dashboard_variables_are_interpolated_in_every_syntax():
    sql = "SELECT $prior, ${prior}, ${prior:raw}, [[prior]], $__from, $__to"
    out = expand(sql, RANGE, variables={"prior": "0.70"})
    assert out == "SELECT 0.70, 0.70, 0.70, 0.70, 1795676400000, 1795678200500"


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("WHERE $__timeFiltr(t)", "unknown macro"),
        ("WHERE $__timeFilter()", "missing time column"),
        ("SELECT $__timeGroup(t)", "needs time column and interval"),
        ("SELECT $__timeGroup(t, '5 minutes')", "error parsing interval"),
        ("SELECT $prior", r"variable \$prior is not defined"),
        ("SELECT $__unknownGlobal", "left in the SQL"),
    ],
)
def test_what_grafana_would_refuse_is_refused(sql, message):
    with pytest.raises(MacroError, match=message):
        expand(sql, RANGE)


def test_time_formats_follow_go():
    paris = timezone(timedelta(hours=1))
    assert rfc3339(datetime(2026, 1, 2, 4, 5, 6, tzinfo=paris)) == "2026-01-02T03:05:06Z"
    assert rfc3339(datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)) == "2026-01-02T03:04:05.12Z"
    assert [format_duration(parse_duration(t)) for t in ("90s", "5m", "2h", "1d", "250ms")] == [
        "1m", "5m", "2h", "1d", "250ms",
    ]  # fmt: skip
    assert TimeRange.last("30m", now=RANGE.end).start == RANGE.end - timedelta(minutes=30)


def test_expanded_macros_filter_and_bucket_on_postgresql(db_conn):
    """What the expansion means to PostgreSQL: inclusive bounds, buckets on epoch multiples."""
    sql = expand(
        """
        WITH t(at) AS (VALUES (timestamptz '2026-11-26 06:59:59.999+00'),
                              (timestamptz '2026-11-26 07:00:00+00'),
                              (timestamptz '2026-11-26 07:04:59+00'),
                              (timestamptz '2026-11-26 07:05:00+00'),
                              (timestamptz '2026-11-26 07:30:00.5+00'),
                              (timestamptz '2026-11-26 07:30:00.6+00'))
        SELECT $__timeGroupAlias(at, '5m'), COUNT(*) AS n
        FROM t WHERE $__timeFilter(at) GROUP BY 1 ORDER BY 1
        """,
        RANGE,
    )
    with db_conn.cursor() as cur:
        cur.execute(sql)
        rows = [(int(t), n) for t, n in cur.fetchall()]
    start = int(RANGE.start.timestamp())
    assert rows == [(start, 2), (start + 300, 1), (start + 1800, 1)]
