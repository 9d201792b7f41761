"""What the Teams channel has been told: one card per distinct problem, a digest in a storm,
a cooldown per problem, a "resolved" card, kept in PostgreSQL (sql/migrations/0006).

A *problem* is identified by its key (`data_quality:<rule or TFDV anomaly>:<column>`,
`drift:<feature>`, `pipeline:<dag>.<task>`, `pipeline:quarantined`, `pipeline:refused:<kind>`,
built in pipelines/ingestion/alerts.py). Each time a look (a judged file, a judged drift window,
a failed task) finds it, an *occurrence* is recorded, untold. Then, under one advisory lock (two
overlapping runs never decide on the same occurrences twice):

1. **resolved**: an open problem that looks could have seen but did not for
   `resolve_after_s` (pipeline problems: not seen for that long) is resolved; if a card had told
   of it, one "resolved" card names all problems resolved together.
2. **tell**: a problem is *due* when it has untold occurrences and no card told of it for
   `cooldown_s`. If one is due and fewer than `storm_cards` problem or digest cards went out in
   the last `window_s`, one card tells every untold occurrence: a problem card when they come
   from one source, a digest (counts, worst files) when from several. In a storm the budget is
   spent after `storm_cards` cards, the rest waits, and the next card, once the window has moved
   on, is the digest of everything since.
3. **volume digest**: when nothing is due (every problem cooling down) but at least
   `digest_min_files` files (or failed runs) wait untold, the oldest for `window_s`, a digest
   goes out, at most one per `cooldown_s`: "many files fail" is news even when the problem is not.

A card is recorded (and its occurrences marked told) only once delivered: a delivery that
raises rolls back that card's transaction, and the occurrences wait for the next decision. The
clock is a parameter (`now`): the rules are tested by moving it, not by sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from mlsys.schema_versions import SchemaVersion
from pipelines.ingestion.result import Criticality

log = logging.getLogger(__name__)

# pg_advisory_lock key of the alert decisions (any constant: only these sessions use it).
LOCK_KEY = 0x6D6C_616C  # "mlal"
KINDS = ("data_quality", "drift", "pipeline")


@dataclass(frozen=True)
class Policy:
    """The rules' settings (ALERT_* in .env.example), in seconds and counts."""

    cooldown_s: float = 3600.0
    window_s: float = 300.0
    storm_cards: int = 2
    digest_min_files: int = 5
    resolve_after_s: float = 1800.0
    keep_days: int = 30


@dataclass(frozen=True)
class Occurrence:
    """One problem seen once, in one source (a file's claimed name, a run's task)."""

    key: str
    kind: str  # one of KINDS
    title: str  # 'missing_value in age'
    source: str
    criticality: str | None = None  # the file's level (data_quality), None otherwise
    rows_total: int | None = None
    rows_affected: int | None = None
    detail: str = ""
    report_name: str | None = None  # the file's report (its link is signed per card)
    link: str | None = None  # another link (a task log)
    # The schema the source was judged by (data_quality, drift); None for pipeline problems.
    schema: SchemaVersion | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"alert kind {self.kind!r} is not one of {KINDS}")


@dataclass(frozen=True)
class Observation:
    """What one look found.

    looked_for: kinds this look judged in full, so that an open problem of that kind it did not
    find is absent from now on (a judged file: data_quality; a drift window with enough rows:
    drift). present: keys found but not worth telling (below ALERT_MIN_CRITICALITY): not absent.
    """

    occurrences: tuple[Occurrence, ...] = ()
    looked_for: frozenset[str] = frozenset()
    present: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ToldProblem:
    key: str
    kind: str
    title: str
    new: bool  # first card of this episode (not a reminder after its cooldown)
    sources: int  # distinct sources among the occurrences told
    rows_affected: int
    first_seen: datetime
    last_seen: datetime
    detail: str  # of its newest occurrence


@dataclass(frozen=True)
class SourceLine:
    """A file (or a failed run) of the card, worst first."""

    source: str
    criticality: str | None
    rows_total: int | None
    rows_affected: int  # the most rows one of its problems affected
    report_name: str | None
    link: str | None
    problems: tuple[str, ...]  # titles
    schema: SchemaVersion | None = None  # what the source was judged by


@dataclass(frozen=True)
class Card:
    """A card to post: `problem` (one source), `digest` (several) or `resolved`."""

    kind: str
    problems: tuple[ToldProblem, ...]
    sources: tuple[SourceLine, ...] = ()
    since: datetime | None = None  # the oldest occurrence told
    until: datetime | None = None
    occurrence_ids: tuple[int, ...] = field(default=(), repr=False)

    @property
    def occurrences(self) -> int:
        return len(self.occurrence_ids)

    @property
    def schemas(self) -> tuple[str, ...]:
        """The schema versions its sources were judged by ('v3 (1a2b3c4d)'), oldest number
        first: one, unless a new schema was approved between them."""
        found = {s.schema for s in self.sources if s.schema is not None}
        return tuple(v.short for v in sorted(found, key=lambda v: (int(v.version), v.sha256)))


# deliver(card) -> True when posted, False when only logged (no webhook); raises when the
# webhook refused or could not be reached (the card is then not recorded).
Deliver = Callable[[Card], bool]


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def process(
    conn,
    observation: Observation,
    policy: Policy,
    deliver: Deliver,
    *,
    now: datetime | None = None,
) -> list[Card]:
    """Record what a look found, then resolve, tell and prune. Returns the cards delivered.

    conn: a psycopg2 connection to the application database (not in autocommit; this commits).
    Raises what `deliver` raises, after committing the occurrences and any earlier card.
    """
    now = _now(now)
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    conn.commit()
    try:
        _record(conn, observation, now)
        cards = _resolve(conn, policy, deliver, now)
        cards += _tell(conn, policy, deliver, now)
        _prune(conn, policy, now)
        return cards
    finally:
        conn.rollback()  # whatever a failed delivery left open
        with conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        conn.commit()


def settle(conn, policy: Policy, deliver: Deliver, *, now: datetime | None = None) -> list[Card]:
    """Resolve and tell without a new look: a digest whose window has passed, a problem gone
    quiet. Called every ingestion run, files or not."""
    return process(conn, Observation(), policy, deliver, now=now)


def _record(conn, observation: Observation, now: datetime) -> None:
    with conn.cursor() as cur:
        for o in observation.occurrences:
            cur.execute(
                """INSERT INTO alert_problems (problem_key, kind, title, state, opened_at, last_seen)
                   VALUES (%(key)s, %(kind)s, %(title)s, 'open', %(now)s, %(now)s)
                   ON CONFLICT (problem_key) DO UPDATE SET
                       title = EXCLUDED.title,
                       last_seen = GREATEST(alert_problems.last_seen, EXCLUDED.last_seen),
                       absent_since = NULL,
                       opened_at = CASE WHEN alert_problems.state = 'resolved'
                                        THEN EXCLUDED.opened_at
                                        ELSE alert_problems.opened_at END,
                       state = 'open', resolved_at = NULL""",
                {"key": o.key, "kind": o.kind, "title": o.title, "now": now},
            )
            cur.execute(
                """INSERT INTO alert_occurrences
                       (problem_key, seen_at, source, criticality, rows_total, rows_affected,
                        detail, report_name, link, schema_version, schema_sha256)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
                   ON CONFLICT (problem_key, source) DO NOTHING""",
                (o.key, now, o.source, o.criticality, o.rows_total, o.rows_affected, o.detail,
                 o.report_name, o.link, o.schema.version if o.schema else None,
                 o.schema.sha256 if o.schema else None),
            )  # fmt: skip
        seen = sorted({o.key for o in observation.occurrences} | observation.present)
        if observation.present:
            cur.execute(
                """UPDATE alert_problems SET last_seen = GREATEST(last_seen, %s),
                          absent_since = NULL
                   WHERE problem_key = ANY(%s) AND state = 'open'""",
                (now, sorted(observation.present)),
            )
        if observation.looked_for:
            cur.execute(
                """UPDATE alert_problems SET absent_since = %s
                   WHERE state = 'open' AND absent_since IS NULL AND kind = ANY(%s)
                     AND NOT (problem_key = ANY(%s))""",
                (now, sorted(observation.looked_for), seen),
            )
    conn.commit()


def _resolve(conn, policy: Policy, deliver: Deliver, now: datetime) -> list[Card]:
    cut = now - timedelta(seconds=policy.resolve_after_s)
    with conn.cursor() as cur:
        cur.execute(
            """UPDATE alert_problems SET state = 'resolved', resolved_at = %(now)s
               WHERE state = 'open' AND (
                   (kind <> 'pipeline' AND absent_since <= %(cut)s)
                   OR (kind = 'pipeline' AND last_seen <= %(cut)s))
               RETURNING problem_key, kind, title, opened_at, last_seen, last_card_at""",
            {"now": now, "cut": cut},
        )
        rows = cur.fetchall()
        told = [r for r in rows if r[5] is not None and r[5] >= r[3]]
        if not told:
            conn.commit()  # resolved before any card told of them: nothing to say
            return []
        card = Card(
            kind="resolved",
            problems=tuple(
                ToldProblem(key, kind, title, False, 0, 0, opened, last, "")
                for key, kind, title, opened, last, _ in sorted(told)
            ),
            since=min(r[3] for r in told),
            until=now,
        )
        delivered = deliver(card)
        _insert_card(cur, card, delivered, now)
    conn.commit()
    return [card]


UNTOLD = """
SELECT o.id, o.problem_key, p.kind, p.title, p.opened_at, p.last_card_at, o.seen_at, o.source,
       o.criticality, o.rows_total, o.rows_affected, o.detail, o.report_name, o.link,
       o.schema_version, o.schema_sha256
FROM alert_occurrences o JOIN alert_problems p USING (problem_key)
WHERE o.card_id IS NULL
ORDER BY o.seen_at, o.id
"""


def _tell(conn, policy: Policy, deliver: Deliver, now: datetime) -> list[Card]:
    with conn.cursor() as cur:
        cur.execute(UNTOLD)
        untold = cur.fetchall()
        if not untold:
            conn.commit()
            return []
        cooled = now - timedelta(seconds=policy.cooldown_s)
        due = {r[1] for r in untold if r[5] is None or r[5] <= cooled}
        window_start = now - timedelta(seconds=policy.window_s)
        cur.execute(
            """SELECT count(*) FILTER (WHERE posted_at > %s), max(posted_at) FILTER (WHERE kind = 'digest')
               FROM alert_cards WHERE kind IN ('problem', 'digest')""",
            (window_start,),
        )
        spent, last_digest = cur.fetchone()
        if spent >= policy.storm_cards:
            conn.commit()
            return []  # the storm budget is spent: this waits for the window to move on
        if not due:
            volume = {r[7] for r in untold if r[2] != "drift"}
            if (
                len(volume) < policy.digest_min_files
                or untold[0][6] > window_start
                or (last_digest is not None and last_digest > cooled)
            ):
                conn.commit()
                return []
        card = _card(untold, due)
        delivered = deliver(card)
        card_id = _insert_card(cur, card, delivered, now)
        cur.execute(
            "UPDATE alert_occurrences SET card_id = %s WHERE id = ANY(%s)",
            (card_id, list(card.occurrence_ids)),
        )
        cur.execute(
            "UPDATE alert_problems SET last_card_at = %s WHERE problem_key = ANY(%s)",
            (now, [p.key for p in card.problems]),
        )
    conn.commit()
    return [card]


def _card(untold: list[tuple], due: set[str]) -> Card:
    problems: dict[str, ToldProblem] = {}
    sources: dict[str, SourceLine] = {}
    # A drift occurrence's rows_total is its window's (many files), not its source file's: a
    # file's own count, when one of its occurrences has it, wins over a window's.
    file_totals: dict[str, int] = {}
    for (_, key, kind, title, opened, last_card, seen, source, crit, total, affected, detail,
         report, link, schema_version, schema_sha256) in untold:  # fmt: skip
        schema = SchemaVersion(schema_version, schema_sha256) if schema_sha256 else None
        new = last_card is None or last_card < opened
        before = problems.get(key)
        problems[key] = ToldProblem(
            key, kind, title, new,
            (before.sources if before else 0) + 1,
            (before.rows_affected if before else 0) + (affected or 0),
            before.first_seen if before else seen, seen, detail,
        )  # fmt: skip
        if total is not None and kind != "drift":
            file_totals[source] = total
        line = sources.get(source)
        worse = line is None or _rank(crit) > _rank(line.criticality)
        sources[source] = SourceLine(
            source,
            crit if worse else line.criticality,
            total if total is not None else (line.rows_total if line else None),
            max(affected or 0, line.rows_affected if line else 0),
            report or (line.report_name if line else None),
            link or (line.link if line else None),
            (line.problems if line else ()) + (title,),
            schema or (line.schema if line else None),
        )
    sources = {
        name: replace(line, rows_total=file_totals.get(name, line.rows_total))
        for name, line in sources.items()
    }
    # Due (new or cooled down) problems first, then by how many sources they hit.
    ordered = sorted(problems.values(), key=lambda p: (p.key not in due, -p.sources, p.key))
    worst = sorted(
        sources.values(),
        key=lambda s: (-_rank(s.criticality), -_share(s), s.source),
    )
    return Card(
        kind="problem" if len(sources) == 1 else "digest",
        problems=tuple(ordered),
        sources=tuple(worst),
        since=untold[0][6],
        until=untold[-1][6],
        occurrence_ids=tuple(r[0] for r in untold),
    )


def _rank(level: str | None) -> int:
    return -1 if level is None else Criticality(level).rank


def _share(line: SourceLine) -> float:
    return line.rows_affected / line.rows_total if line.rows_total else 0.0


def _insert_card(cur, card: Card, delivered: bool, now: datetime) -> int:
    cur.execute(
        """INSERT INTO alert_cards (posted_at, kind, problem_keys, occurrences, delivered)
           VALUES (%s, %s, %s, %s, %s) RETURNING id""",
        (now, card.kind, [p.key for p in card.problems], card.occurrences, delivered),
    )
    return cur.fetchone()[0]


def _prune(conn, policy: Policy, now: datetime) -> None:
    """Forget told occurrences, cards and resolved problems older than `keep_days`."""
    cut = now - timedelta(days=policy.keep_days)
    with conn.cursor() as cur:
        cur.execute(
            "DELETE FROM alert_occurrences WHERE card_id IS NOT NULL AND seen_at < %s", (cut,)
        )
        cur.execute("DELETE FROM alert_cards WHERE posted_at < %s", (cut,))
        cur.execute(
            "DELETE FROM alert_problems WHERE state = 'resolved' AND resolved_at < %s", (cut,)
        )
    conn.commit()
