"""Claim one raw file so that no other run takes it: an atomic rename into `processing/`."""

from __future__ import annotations

import os
import random
import secrets
from datetime import UTC, datetime
from pathlib import Path


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
