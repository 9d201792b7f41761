"""Clients that keep posting /predict while the API is restarted, and what they saw.

Used by bench/rolling_restart_bench.py and tests/service/test_rolling_restart.py. Each client
is a thread with its own keep-alive connection (httpx), alternating single predictions and
small batches, every request with its own Idempotency-Key as clients should send them
(docs/api.md): a client that resends after a connection error or a 502/503 sends the same
key, so the service stores the records once whatever happened to the first attempt.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field

import httpx
import orjson
import psycopg2

RETRY_STATUSES = frozenset({502, 503, 504})


@dataclass
class Outcome:
    """One logical request: its key, records, and every attempt until the last."""

    key: str
    records: int
    started: float  # time.monotonic() of the first attempt
    latency_s: float = 0.0  # first attempt to final answer, resends included
    status: int | None = None  # of the final attempt; None: no answer at all
    ids: list[int] = field(default_factory=list)  # prediction ids of a 200
    statuses: list[int] = field(default_factory=list)  # of every attempt that got an answer
    connection_errors: int = 0


class PredictLoad:
    """`clients` threads posting until `stop()`; `resends` extra attempts per request."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        records: list[dict],
        *,
        clients: int = 4,
        batch_every: int = 4,
        batch_size: int = 20,
        resends: int = 0,
        timeout_s: float = 30.0,
        run_id: str = "",
    ) -> None:
        self.base_url, self.headers, self.records = base_url, headers, records
        self.clients, self.batch_every, self.batch_size = clients, batch_every, batch_size
        self.resends, self.timeout_s = resends, timeout_s
        self.run_id = run_id or f"{time.time_ns():x}"
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)
        ]

    def start(self) -> PredictLoad:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for t in self._threads:
            t.join()
        return self.outcomes

    def _client(self, index: int) -> None:
        n = 0
        with httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout_s
        ) as http:
            while not self._stop.is_set():
                size = self.batch_size if n % self.batch_every == self.batch_every - 1 else 1
                first = (index * 7919 + n) % len(self.records)
                batch = [self.records[(first + i) % len(self.records)] for i in range(size)]
                body = orjson.dumps({"source": "webapp", "records": batch})
                outcome = Outcome(f"load-{self.run_id}-{index}-{n}", size, time.monotonic())
                self._send(http, body, outcome)
                with self._lock:
                    self.outcomes.append(outcome)
                n += 1

    def _send(self, http: httpx.Client, body: bytes, outcome: Outcome) -> None:
        headers = {"Content-Type": "application/json", "Idempotency-Key": outcome.key}
        for _ in range(1 + self.resends):
            try:
                answer = http.post("/predict", content=body, headers=headers)
            except httpx.TransportError:
                outcome.connection_errors += 1
                outcome.status = None
                continue
            outcome.status = answer.status_code
            outcome.statuses.append(answer.status_code)
            if answer.status_code == 200:
                outcome.ids = [p["id"] for p in answer.json()["predictions"]]
                break
            if answer.status_code not in RETRY_STATUSES:
                break
        outcome.latency_s = time.monotonic() - outcome.started


@dataclass(frozen=True)
class Tally:
    """What the clients saw and what the database holds, for one run on a fresh database."""

    requests: int  # logical requests (each with its key)
    attempts: int  # HTTP requests sent, resends included
    by_status: dict[str, int]  # final status of each logical request ("none": no answer)
    attempt_statuses: dict[str, int]  # status of every attempt that got an answer
    connection_errors: int  # attempts that got no answer at all
    lost: int  # logical requests never answered 200, or answered with ids not stored
    rows_stored: int
    rows_answered: int  # distinct prediction ids in the 200 answers
    duplicates: int  # rows stored beyond one per record of a key, or answered twice

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0


def tally(outcomes: list[Outcome], dsn: str) -> Tally:
    """Compare the answers with `predictions` (a database that holds this run's rows only)."""
    answered = [o for o in outcomes if o.status == 200]
    ids = [i for o in answered for i in o.ids]
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM predictions")
        rows = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM predictions WHERE id = ANY(%s)", (ids,))
        found = cur.fetchone()[0]
        # Every stored row must belong to one key's request (all requests here carry one),
        # and to one only.
        cur.execute(
            "SELECT count(*) FROM predictions"
            " WHERE id NOT IN (SELECT unnest(prediction_ids) FROM idempotent_requests)"
        )
        orphans = cur.fetchone()[0]
        cur.execute(
            "SELECT count(*) - count(DISTINCT i) FROM idempotent_requests, unnest(prediction_ids) i"
        )
        shared = cur.fetchone()[0]
    by_status: dict[str, int] = {}
    attempt_statuses: dict[str, int] = {}
    for o in outcomes:
        by_status[str(o.status or "none")] = by_status.get(str(o.status or "none"), 0) + 1
        for s in o.statuses:
            attempt_statuses[str(s)] = attempt_statuses.get(str(s), 0) + 1
    distinct = len(set(ids))
    return Tally(
        requests=len(outcomes),
        attempts=sum(len(o.statuses) + o.connection_errors for o in outcomes),
        by_status=dict(sorted(by_status.items())),
        attempt_statuses=dict(sorted(attempt_statuses.items())),
        connection_errors=sum(o.connection_errors for o in outcomes),
        lost=(len(outcomes) - len(answered)) + (distinct - found),
        rows_stored=rows,
        rows_answered=distinct,
        duplicates=orphans + shared + (len(ids) - distinct),
    )


def latency_ms(outcomes: list[Outcome], start: float, end: float) -> tuple[float, float, int]:
    """(p50, p99, count) of the logical requests started in [start, end] (monotonic s)."""
    window = sorted(o.latency_s * 1e3 for o in outcomes if start <= o.started <= end)
    if not window:
        return float("nan"), float("nan"), 0
    p99 = window[min(len(window) - 1, round(0.99 * (len(window) - 1)))]
    return statistics.median(window), p99, len(window)
