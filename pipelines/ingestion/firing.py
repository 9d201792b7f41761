"""When the raw-data trigger fires: one ingestion run per waiting file, never a busy loop.

Airflow makes one run of `ingest_data` from the raw-data asset events queued when the scheduler
looks (an AssetDagRunQueue row per asset and DAG; the events that arrive meanwhile, or while
the DAG is at `max_active_runs`, collapse into that one run), and each run claims one file. A
trigger that fires only when the set of waiting files changes therefore keeps as many runs
going as there were events at the start: each run's claim fires the next one, and a backlog of
500 files drained with three or four runs in flight while `max_active_runs` allowed six and the
cores were half idle (docs/ingestion.md, "Backlog").

`FiringPolicy` counts the events still unanswered (fired, not yet followed by a claim, and
younger than `claim_window_s`) and fires at a poll when:
- a file has settled since the last poll (a new file: its run should start at once); or
- files have been claimed or have settled within the last `repeat_s` (the backlog is moving)
  and more files wait than events are unanswered: one more run for one more file, so a
  backlog fills the runs `max_active_runs` allows, one event per poll at most; or
- files have waited `repeat_s` since the last event (a lost event, a run that found nothing,
  a paused DAG): a slow retry.
A stalled backlog (paused DAG, scheduler down) therefore costs an event per poll for at most
`repeat_s`, then one per `repeat_s`. Plain standard library: unit-tested in-process
(tests/pipelines/test_raw_data_events.py).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Set
from dataclasses import dataclass, field


@dataclass
class FiringPolicy:
    """The trigger's memory between polls; `should_fire` is called once per poll.

    Args:
        repeat_s: seconds of no progress after which the backlog rule stops and only the
            slow retry (one event per `repeat_s`) remains (INGEST_TRIGGER_REPEAT_SECONDS).
        claim_window_s: seconds after which an event not followed by a claim is no longer
            counted as a run on its way (collapsed by the scheduler, or a run that found
            nothing): from an event to its run's claim takes 2-5 s on a quiet machine.
    """

    repeat_s: float
    claim_window_s: float = 10.0
    announced: frozenset = frozenset()
    unanswered: deque = field(default_factory=deque)  # monotonic times of events
    last_fired: float = float("-inf")
    last_progress: float = float("-inf")

    def should_fire(self, waiting: Set[Hashable], now: float) -> bool:
        """Whether to fire an event now, given the settled, unclaimed files `waiting` (any
        hashable names) at monotonic time `now` (seconds); records the event if so."""
        waiting = frozenset(waiting)
        settled_now = waiting - self.announced
        gone = len(self.announced - waiting)
        for _ in range(min(gone, len(self.unanswered))):
            self.unanswered.popleft()  # a claim answers the oldest event
        while self.unanswered and now - self.unanswered[0] >= self.claim_window_s:
            self.unanswered.popleft()
        if settled_now or gone:
            self.last_progress = now
        self.announced = waiting
        if not waiting:
            return False
        fire = (
            bool(settled_now)
            or (now - self.last_progress < self.repeat_s and len(waiting) > len(self.unanswered))
            or now - self.last_fired >= self.repeat_s
        )
        if fire:
            self.unanswered.append(now)
            self.last_fired = now
        return fire
