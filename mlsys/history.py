"""The prediction history's months: partitions created ahead, old months dropped.

`predictions` is partitioned by month of `created_at` (sql/migrations/0012), with two catch-all
partitions below the oldest month (`predictions_before`) and above the newest one
(`predictions_after`), so that an insert never fails for want of a month. This module is its
maintenance, run as the tables' owner (`make up`/`make migrate` create the months ahead;
`make prune-predictions` prunes and creates), and it never blocks writers:
- `ensure_partitions`: the months from now to PREDICTIONS_MONTHS_AHEAD months ahead exist.
  A catch-all's bound moves by `DETACH PARTITION ... CONCURRENTLY` of it, then one
  transaction of `predictions_attach_months` (new months, their waiting rows moved in, the
  catch-all attached back: ATTACH takes SHARE UPDATE EXCLUSIVE, which writers do not wait for);
- `prune`: the months wholly older than PREDICTIONS_RETENTION_MONTHS are removed: their keys
  deleted, `DETACH PARTITION ... CONCURRENTLY` (which waits for the queries that use the month
  instead of locking the table), then `DROP TABLE` of the detached table.
PostgreSQL refuses DETACH CONCURRENTLY while a DEFAULT partition exists: hence range
catch-alls (the migration's comment says more).

`python -m mlsys.history [maintain|status]` is the command line (`make prune-predictions`).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime

from mlsys.config import env_int

# One maintenance at a time: a second DETACH CONCURRENTLY on the same table would fail.
_LOCK_KEY = "mlsys.history.maintenance"


@dataclass(frozen=True)
class HistorySettings:
    """PREDICTIONS_RETENTION_MONTHS (0: keep forever) and PREDICTIONS_MONTHS_AHEAD."""

    retention_months: int
    months_ahead: int


def load_history_settings(env: dict[str, str] | None = None) -> HistorySettings:
    env = dict(os.environ if env is None else env)
    return HistorySettings(
        retention_months=env_int(env, "PREDICTIONS_RETENTION_MONTHS", 0, low=0, high=1200),
        months_ahead=env_int(env, "PREDICTIONS_MONTHS_AHEAD", 3, low=0, high=120),
    )


@dataclass(frozen=True)
class Partition:
    name: str
    range_from: datetime | None  # inclusive; None: MINVALUE
    range_to: datetime | None  # exclusive; None: MAXVALUE
    catch_all: bool
    detach_pending: bool


BEFORE, AFTER = "predictions_before", "predictions_after"


def partitions(conn) -> list[Partition]:
    """The partitions of `predictions`, oldest first (`predictions_before` first)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT partition::text, range_from, range_to, catch_all, detach_pending"
            " FROM predictions_partitions()"
        )
        return [Partition(*row) for row in cur.fetchall()]


def month_start(moment: datetime, shift: int = 0) -> datetime:
    """The first instant (UTC) of the month of `moment`, `shift` months later."""
    moment = moment.astimezone(UTC)
    index = moment.year * 12 + (moment.month - 1) + shift
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def retention_cutoff(now: datetime, retention_months: int) -> datetime:
    """The first instant kept: the start (UTC) of the month `retention_months` before now's.

    With 12 on 2026-12-15, months from 2025-12-01 on are kept: the current month and the 12
    before it, so a prediction is kept at least `retention_months` whole months.
    """
    if retention_months < 1:
        raise ValueError(f"retention_months must be >= 1, got {retention_months}")
    return month_start(now, -retention_months)


def _autocommit(dsn: str):
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True  # DETACH ... CONCURRENTLY cannot run inside a transaction
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (_LOCK_KEY,))
        if not cur.fetchone()[0]:
            conn.close()
            raise RuntimeError("another maintenance of predictions is running; try later")
    return conn


def _detach(cur, part: Partition) -> None:
    from psycopg2 import sql

    how = "FINALIZE" if part.detach_pending else "CONCURRENTLY"
    cur.execute(
        sql.SQL("ALTER TABLE predictions DETACH PARTITION {} {}").format(
            sql.Identifier(part.name), sql.SQL(how)
        )
    )


def _move_bound(
    cur, catch_all: Partition | None, name: str, months: list[datetime],
    lower: datetime | None, upper: datetime | None,
) -> list[str]:  # fmt: skip
    """Detach the catch-all (unless an interrupted run left it detached: `catch_all` None),
    attach `months` and the catch-all back from `lower` to `upper`."""
    if catch_all is not None:
        _detach(cur, catch_all)
    naive = [m.replace(tzinfo=None) for m in months]  # `timestamp` months, UTC
    cur.execute(
        "SELECT predictions_attach_months(%s, %s::timestamp[], %s, %s)", (name, naive, lower, upper)
    )
    return [n for (n,) in cur.fetchall()]


def ensure_partitions(
    dsn: str, months_ahead: int, *, since: datetime | None = None, now: datetime | None = None
) -> list[str]:
    """Make sure a month exists from the month of `since` (default: now) to `months_ahead`
    months after now's; returns the partitions created, oldest first. Idempotent. Also
    re-attaches a catch-all that an interrupted run left detached. Raises psycopg2.Error
    (e.g. not the tables' owner), RuntimeError while another maintenance runs."""
    now = now or datetime.now(UTC)
    conn = _autocommit(dsn)
    created: list[str] = []
    try:
        with conn.cursor() as cur:
            parts = partitions(conn)
            months = [p for p in parts if not p.catch_all]
            by_name = {p.name: p for p in parts}
            if not months:
                raise RuntimeError("predictions has no month partition: was 0012 applied?")
            for name in (BEFORE, AFTER):
                pending = by_name.get(name)
                if pending is not None and pending.detach_pending:
                    _detach(cur, pending)  # FINALIZE; attached back just below
                    del by_name[name]
                if name not in by_name:
                    lower, upper = (None, months[0].range_from) if name == BEFORE else (
                        months[-1].range_to, None)  # fmt: skip
                    _move_bound(cur, None, name, [], lower, upper)
            later, month = [], months[-1].range_to
            while month <= month_start(now, months_ahead):
                later.append(month)
                month = month_start(month, 1)
            if later:
                created += _move_bound(cur, by_name[AFTER], AFTER, later, month, None)
            earlier, month = [], month_start(since or now)
            while month < months[0].range_from:
                earlier.append(month)
                month = month_start(month, 1)
            if earlier:
                created = (
                    _move_bound(cur, by_name[BEFORE], BEFORE, earlier, None, earlier[0]) + created
                )
    finally:
        conn.close()
    return created


@dataclass(frozen=True)
class PruneReport:
    cutoff: datetime
    dropped: list[str]
    keys_deleted: int
    rows_deleted: int  # older than the cutoff, from the catch-all below the months


def prune(dsn: str, retention_months: int, *, now: datetime | None = None) -> PruneReport:
    """Drop the months wholly before `retention_cutoff(now, retention_months)`.

    Writers and readers of the kept months go on meanwhile: the key deletion takes row locks
    only, DETACH CONCURRENTLY takes SHARE UPDATE EXCLUSIVE on `predictions`, and DROP locks
    only the detached table. Keys go first, so that a row re-sent while its month is being
    dropped is answered from the stored prediction, never refused. A detach left pending by
    an interrupted run is finalised. Rows older than the cutoff in `predictions_before` are
    deleted, and its bound moves up to the oldest month kept (for those seconds, a row dated
    before that month would be refused: it is older than what is kept anyway).
    Raises psycopg2.Error, RuntimeError while another maintenance runs.
    """
    from psycopg2 import sql

    cutoff = retention_cutoff(now or datetime.now(UTC), retention_months)
    conn = _autocommit(dsn)
    dropped: list[str] = []
    try:
        with conn.cursor() as cur:
            cur.execute("DELETE FROM prediction_keys WHERE created_at < %s", (cutoff,))
            keys = cur.rowcount
            parts = partitions(conn)
            old = [p for p in parts if not p.catch_all and p.range_to <= cutoff]
            for part in old:
                _detach(cur, part)
                cur.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(part.name)))
                dropped.append(part.name)
            before = next((p for p in parts if p.name == BEFORE), None)
            kept = [p for p in parts if not p.catch_all and p.range_to > cutoff]
            if old and before is not None:
                _detach(cur, before)
                cur.execute(
                    sql.SQL("DELETE FROM {} WHERE created_at < %s").format(sql.Identifier(BEFORE)),
                    (cutoff,),
                )
                rows = cur.rowcount
                _move_bound(cur, None, BEFORE, [], None, kept[0].range_from if kept else cutoff)
            else:
                cur.execute("DELETE FROM predictions WHERE created_at < %s", (cutoff,))
                rows = cur.rowcount
    finally:
        conn.close()
    return PruneReport(cutoff, dropped, keys, rows)


def maintain(dsn: str, settings: HistorySettings, *, now: datetime | None = None) -> list[str]:
    """Prune (when a retention is set), then create the months ahead; lines for the user."""
    lines = []
    if settings.retention_months:
        report = prune(dsn, settings.retention_months, now=now)
        lines.append(
            f"retention {settings.retention_months} months: kept from "
            f"{report.cutoff:%Y-%m-%d}; dropped {', '.join(report.dropped) or 'no month'}"
            f" ({report.keys_deleted} keys, {report.rows_deleted} older rows deleted)"
        )
    else:
        lines.append("retention: keep forever (PREDICTIONS_RETENTION_MONTHS=0)")
    created = ensure_partitions(dsn, settings.months_ahead, now=now)
    lines.append(f"partitions created: {', '.join(created) or 'none missing'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlsys.history", description=__doc__)
    parser.add_argument("command", nargs="?", default="maintain", choices=("maintain", "status"))
    args = parser.parse_args(argv)

    import psycopg2

    from mlsys.config import get_settings

    dsn = get_settings().owner_database_dsn
    if args.command == "maintain":
        for line in maintain(dsn, load_history_settings()):
            print(line)
        return 0
    conn = psycopg2.connect(dsn)
    try:
        for part in partitions(conn):
            low = "MINVALUE" if part.range_from is None else f"{part.range_from:%Y-%m-%d}"
            high = "MAXVALUE" if part.range_to is None else f"{part.range_to:%Y-%m-%d}"
            pending = " (detach pending)" if part.detach_pending else ""
            print(f"{part.name:<28} {low} .. {high}{pending}")
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
