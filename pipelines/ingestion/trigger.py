"""The raw-data event trigger: an ingestion run seconds after a file lands, on top of the
every-minute schedule.

`RawDataTrigger` runs in Airflow's triggerer, behind an `AssetWatcher` of the raw-data asset
(pipelines/assets.py). It polls raw-data with `os.scandir` (`claim.observe`: one directory
listing and one `lstat` per entry, no file opened) every `poll_s` and yields a `TriggerEvent`,
which Airflow turns into a raw-data asset event, hence an `ingest_data` run, by the rule of
`pipelines/ingestion/firing.py`: at once when a file settles (seen with the same size, mtime
and inode for `settle_s`, by the same rule as `read_data`); while a backlog is moving, at each
poll where more files wait than events are still unanswered by a claim (so a backlog fills
the runs `max_active_runs` allows); and once per `repeat_s` while files wait with nothing
moving (a lost event, a run that found nothing): a slow retry, never a busy loop.

Temporary names are ignored and claimed files are no longer in raw-data, so an event means
"there is a file a run can claim now". The trigger claims nothing: `read_data` still does, with
its atomic rename, so an event that arrives twice costs a skipped run, never a double ingestion.
Its observations go to the shared sightings file (claim.Sightings), so the run that follows
finds the file already settled and does not wait INGEST_SETTLE_SECONDS again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from pipelines.ingestion import claim
from pipelines.ingestion.firing import FiringPolicy

NAMES_IN_EVENT = 5  # the payload names a few files, for the run's "triggered by" view


class RawDataTrigger(BaseEventTrigger):
    """Fires while raw-data holds settled, unclaimed CSV files (see the module docstring).

    Args:
        raw_dir: the raw-data folder (absolute path).
        sightings_path: the shared sightings file (`PipelineSettings.sightings_path`).
        settle_s: INGEST_SETTLE_SECONDS.
        poll_s: seconds between two scans.
        repeat_s: seconds after which unchanged, still unclaimed files fire again.
    """

    def __init__(
        self,
        raw_dir: str,
        sightings_path: str,
        settle_s: float,
        poll_s: float = 1.0,
        repeat_s: float = 30.0,
    ) -> None:
        super().__init__()
        self.raw_dir = raw_dir
        self.sightings_path = sightings_path
        self.settle_s = float(settle_s)
        self.poll_s = float(poll_s)
        self.repeat_s = float(repeat_s)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "raw_dir": self.raw_dir,
                "sightings_path": self.sightings_path,
                "settle_s": self.settle_s,
                "poll_s": self.poll_s,
                "repeat_s": self.repeat_s,
            },
        )

    def _look(self) -> dict[Path, tuple[int, int, int, int]]:
        raw = Path(self.raw_dir)
        if not raw.is_dir():
            return {}
        found, _wait = claim.observe(raw, Path(self.sightings_path), self.settle_s)
        return found.candidates

    async def run(self) -> AsyncIterator[TriggerEvent]:
        policy = FiringPolicy(repeat_s=self.repeat_s)
        while True:
            # A scan is a directory listing and a small JSON write at most, but it is still
            # file-system I/O: off the triggerer's event loop, which other triggers share.
            settled = await asyncio.to_thread(self._look)
            if policy.should_fire(settled.keys(), time.monotonic()):
                names = sorted(p.name for p in settled)
                yield TriggerEvent({"files": len(names), "names": names[:NAMES_IN_EVENT]})
            await asyncio.sleep(self.poll_s)
