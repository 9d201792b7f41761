"""Claim one raw file so that no other run takes it: an atomic rename into `processing/`."""

from __future__ import annotations

import os
import random
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

_CLAIMED = re.compile(r"--(\d{8}T\d{6})-[0-9a-f]{6}\.csv$")


def claimed_name(original: Path, now: datetime | None = None) -> str:
    """A name unique per ingestion: the same raw file name may arrive again later."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"{original.stem}--{stamp}-{secrets.token_hex(3)}.csv"


def claim_random_file(
    raw_dir: Path, processing_dir: Path, rng: random.Random | None = None
) -> Path | None:
    """Move one random `*.csv` of raw_dir into processing_dir and return its new path.

    rename() is atomic within a file system: when two runs race for the same file, exactly one
    rename succeeds and the other moves on to another file. Writers must create files under a
    name not ending in .csv and rename them when complete (as error_injection does), so a
    half-written file is never claimed. None when there is nothing to claim.
    """
    processing_dir.mkdir(parents=True, exist_ok=True)
    raw_dir.mkdir(parents=True, exist_ok=True)
    candidates = sorted(p for p in raw_dir.glob("*.csv") if p.is_file())
    (rng or random.Random()).shuffle(candidates)
    for path in candidates:
        target = processing_dir / claimed_name(path)
        try:
            os.rename(path, target)
        except FileNotFoundError:
            continue  # another run claimed it first
        return target
    return None


def claimed_at(path: Path) -> datetime | None:
    """When a file was claimed, from its claimed name (its mtime is the writer's, not ours)."""
    match = _CLAIMED.search(path.name)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)


def release_stale_claims(
    processing_dir: Path, raw_dir: Path, *, older_than_s: float, now: datetime | None = None
) -> list[Path]:
    """Put back into raw_dir the claimed files no run has finished for `older_than_s` seconds.

    A run that dies after claiming (killed worker, machine restart) would otherwise leave its
    file in processing/ for ever. A live run finishes a file in well under a minute and its
    retries in a few more, so a claim older than STALE_CLAIM_MINUTES is abandoned. The file goes
    back under its original name, or keeps its claimed name if the original is taken again.
    """
    if not processing_dir.exists():
        return []
    now = now or datetime.now(UTC)
    released = []
    for path in sorted(processing_dir.glob("*.csv")):
        when = claimed_at(path)
        if when is None or (now - when).total_seconds() < older_than_s:
            continue
        original = path.name.split("--", 1)[0] + ".csv"
        target = raw_dir / (path.name if (raw_dir / original).exists() else original)
        try:
            os.rename(path, target)
        except FileNotFoundError:
            continue  # finished or released by another run meanwhile
        released.append(target)
    return released
