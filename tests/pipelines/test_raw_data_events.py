"""The raw-data trigger and the shared settle evidence.

`RawDataTrigger.run()` is driven directly (no triggerer) in a subprocess of the `airflow`
environment, on a real folder, by a script that writes files and records which events came
and when; the assertions are made here. The sightings (claim.observe / settled_scan) are plain
standard library and tested in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from mlsys.config import ROOT
from pipelines.ingestion import claim
from pipelines.ingestion.firing import FiringPolicy
from tests.conftest import AIRFLOW_PYTHON

DRIVE = r"""
import asyncio, json, os, sys, time
from pathlib import Path
from pipelines.ingestion.trigger import RawDataTrigger

raw, processing = Path(sys.argv[1]), Path(sys.argv[2])
SETTLE, POLL = 0.6, 0.1
trigger = RawDataTrigger(raw_dir=str(raw), sightings_path=str(processing / ".sightings.json"),
                         settle_s=SETTLE, poll_s=POLL, repeat_s=3600)
events = []
started = time.monotonic()

async def collect():
    async for event in trigger.run():
        events.append({"t": round(time.monotonic() - started, 2), "payload": event.payload})

def mark(step):
    events.append({"t": round(time.monotonic() - started, 2), "step": step})

async def script():
    # Temporary names and a file still being written: no event.
    (raw / ".hidden.csv").write_text("a\n1\n")
    (raw / "upload.csv.part").write_text("a\n1\n")
    mark("temp names")
    growing = raw / "growing.csv"
    with open(growing, "w") as f:
        for i in range(20):  # 2 s of writes, 0.1 s apart: never settled for 0.6 s
            f.write(f"{i}\n")
            f.flush()
            await asyncio.sleep(0.1)
    mark("growing stopped")
    await asyncio.sleep(1.5)  # growing.csv settles: one event
    # A run claims it (rename out of raw-data): no event for an empty folder.
    os.rename(growing, processing / "growing--claimed.csv")
    mark("claimed")
    await asyncio.sleep(1.0)
    # Two files land at once: an event for each (one when they settle, one at the next poll);
    # the runs claim them: nothing more.
    (raw / "a.csv").write_text("a\n1\n")
    (raw / "b.csv").write_text("a\n2\n")
    mark("two landed")
    await asyncio.sleep(1.5)
    os.rename(raw / "a.csv", processing / "a--claimed.csv")
    mark("a claimed")
    await asyncio.sleep(0.8)
    os.rename(raw / "b.csv", processing / "b--claimed.csv")
    mark("b claimed")
    await asyncio.sleep(1.0)

async def main():
    task = asyncio.create_task(collect())
    await script()
    task.cancel()

asyncio.run(main())
print(json.dumps(events))
"""


def drive(tmp_path: Path) -> list[dict]:
    raw, processing = tmp_path / "raw-data", tmp_path / "processing"
    raw.mkdir()
    processing.mkdir()
    result = subprocess.run(
        [str(AIRFLOW_PYTHON), "-c", DRIVE, str(raw), str(processing)],
        cwd=ROOT, env=os.environ | {"PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def between(events: list[dict], start: str, end: str | None) -> list[dict]:
    """The trigger events after step `start` and before step `end`."""
    steps = {e["step"]: e["t"] for e in events if "step" in e}
    low, high = steps[start], steps[end] if end else float("inf")
    return [e["payload"] for e in events if "payload" in e and low <= e["t"] < high]


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    return drive(tmp_path_factory.mktemp("trigger"))


@pytest.mark.timeout(180)
def test_trigger_fires_for_settled_unclaimed_files_only(events: list[dict]):
    # Temporary names never fire; a file written every 0.1 s never settles while written.
    assert between(events, "temp names", "growing stopped") == []
    # Once settled (0.6 s unchanged), exactly one event, naming it.
    assert between(events, "growing stopped", "claimed") == [{"files": 1, "names": ["growing.csv"]}]
    # Claimed (gone from raw-data): nothing to announce.
    assert between(events, "claimed", "two landed") == []
    # Two files settling together: an event when they settle, and one more at the next poll,
    # for the second file's own run.
    both = {"files": 2, "names": ["a.csv", "b.csv"]}
    assert between(events, "two landed", "a claimed") == [both, both]
    # A run claimed one; the other's event is still unanswered: no third event.
    assert between(events, "a claimed", "b claimed") == []
    assert between(events, "b claimed", None) == []


def test_trigger_events_wait_for_the_settle_time(events: list[dict]):
    steps = {e["step"]: e["t"] for e in events if "step" in e}
    fired = [e["t"] for e in events if "payload" in e]
    # The first event comes no sooner than the settle time after the last write.
    assert fired[0] >= steps["growing stopped"] + 0.6 - 0.1
    assert fired[0] <= steps["growing stopped"] + 0.6 + 1.0


# --- shared settle evidence ---------------------------------------------------------------


def test_a_file_already_seen_settled_is_claimable_without_a_wait(tmp_path: Path):
    raw, sightings = tmp_path / "raw", tmp_path / "processing" / ".sightings.json"
    raw.mkdir()
    (raw / "a.csv").write_text("a\n1\n")
    clock = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    # First look (e.g. the trigger's): recorded, not yet settled.
    found, wait = claim.observe(raw, sightings, 5.0, now=lambda: clock[0])
    assert found.candidates == {} and wait == pytest.approx(5.0)
    clock[0] += 6.0
    # A run 6 s later: settled by the recorded evidence, no sleep at all.
    found = claim.settled_scan(raw, 5.0, sightings_path=sightings, sleep=sleep,
                               now=lambda: clock[0])  # fmt: skip
    assert [p.name for p in found.candidates] == ["a.csv"] and waits == []


def test_without_evidence_a_run_waits_only_until_the_first_file_settles(tmp_path: Path):
    raw, sightings = tmp_path / "raw", tmp_path / "processing" / ".sightings.json"
    raw.mkdir()
    clock = [100.0]
    waits: list[float] = []
    (raw / "old.csv").write_text("a\n1\n")
    claim.observe(raw, sightings, 5.0, now=lambda: clock[0])
    clock[0] += 3.0
    (raw / "new.csv").write_text("a\n1\n")

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds

    found = claim.settled_scan(raw, 5.0, sightings_path=sightings, sleep=sleep,
                               now=lambda: clock[0])  # fmt: skip
    # old.csv was seen 3 s ago: 2 s more, not 5; new.csv is not settled yet.
    assert waits == [pytest.approx(2.0)]
    assert [p.name for p in found.candidates] == ["old.csv"]


def test_a_file_that_changed_since_it_was_seen_starts_its_settle_time_again(tmp_path: Path):
    raw, sightings = tmp_path / "raw", tmp_path / "processing" / ".sightings.json"
    raw.mkdir()
    path = raw / "a.csv"
    path.write_text("a\n1\n")
    clock = [100.0]
    claim.observe(raw, sightings, 5.0, now=lambda: clock[0])
    clock[0] += 10.0
    with open(path, "a") as f:  # still being written (size and mtime change)
        f.write("2\n")
    found, wait = claim.observe(raw, sightings, 5.0, now=lambda: clock[0])
    assert found.candidates == {} and wait == pytest.approx(5.0)


def test_sightings_of_another_boot_are_no_evidence(tmp_path: Path):
    raw, sightings = tmp_path / "raw", tmp_path / "processing" / ".sightings.json"
    raw.mkdir()
    (raw / "a.csv").write_text("a\n1\n")
    sig = claim.scan(raw).candidates[raw / "a.csv"]
    sightings.parent.mkdir()
    # Seen "long ago" by the monotonic clock of a boot that is not this one.
    sightings.write_text(json.dumps({"boot": "another-boot", "seen": {"a.csv": [*sig, 0.0]}}))
    found, wait = claim.observe(raw, sightings, 5.0, now=time.monotonic)
    assert found.candidates == {} and wait == pytest.approx(5.0)
    # A damaged file is no evidence either, and is replaced.
    sightings.write_text("{not json")
    found, _ = claim.observe(raw, sightings, 5.0, now=time.monotonic)
    assert found.candidates == {}
    assert json.loads(sightings.read_text())["boot"] == claim.boot_id()


# --- when the trigger fires (FiringPolicy, plain standard library) ---------------------------


def _polls(policy: FiringPolicy, timeline: list[tuple[float, set[str]]]) -> list[float]:
    """The times of the polls at which `policy` fires, over (time, waiting files) polls."""
    return [now for now, waiting in timeline if policy.should_fire(waiting, now)]


def test_a_single_file_gets_one_event_until_its_claim_is_overdue():
    policy = FiringPolicy(repeat_s=30, claim_window_s=10)
    timeline = [(float(t), {"a.csv"}) for t in range(15)] + [(15.0, set()), (16.0, set())]
    # At once when it settles; again only when no claim came within the claim window.
    assert _polls(policy, timeline) == [0.0, 10.0]


def test_a_backlog_gets_an_event_per_poll_while_it_drains():
    policy = FiringPolicy(repeat_s=30, claim_window_s=10)
    waiting = {f"{i:03}.csv" for i in range(500)}
    timeline = []
    for t in range(60):
        if t >= 3:  # runs claim a file a second from the third second on
            waiting = waiting - {min(waiting)}
        timeline.append((float(t), set(waiting)))
    # An event at every poll: far more files wait than runs are on their way.
    assert _polls(policy, timeline) == [float(t) for t in range(60)]


def test_the_tail_of_a_backlog_gets_no_more_events_than_files():
    policy = FiringPolicy(repeat_s=30, claim_window_s=10)
    fired = _polls(policy, [(0.0, {"a", "b", "c"}), (1.0, {"a", "b", "c"}), (2.0, {"a", "b", "c"})])
    fired += _polls(policy, [(3.0, {"a", "b", "c"}), (4.0, {"b", "c"}), (5.0, {"c"}), (6.0, set())])
    assert fired == [0.0, 1.0, 2.0]  # one per file, none while their runs are on their way


def test_a_stalled_backlog_falls_back_to_the_slow_retry():
    """A paused DAG (nothing claims): an event per poll for at most repeat_s, then one per
    repeat_s, never a busy loop."""
    policy = FiringPolicy(repeat_s=30, claim_window_s=10)
    waiting = {f"{i:03}.csv" for i in range(500)}
    fired = _polls(policy, [(float(t), waiting) for t in range(300)])
    assert fired[:30] == [float(t) for t in range(30)]
    assert fired[30:] == [59.0 + 30 * k for k in range(9)]  # 30 s after the last one


def test_a_new_file_fires_at_once_even_when_the_backlog_is_stalled():
    policy = FiringPolicy(repeat_s=30, claim_window_s=10)
    _polls(policy, [(float(t), {"a", "b"}) for t in range(100)])
    assert policy.should_fire({"a", "b", "new"}, 100.5)
