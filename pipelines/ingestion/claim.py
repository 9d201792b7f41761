"""Which entries of raw-data may be claimed, and the claim itself: an atomic rename into
`processing/` under a safe, unique name.

The contract with writers (docs/ingestion.md, "What raw-data accepts"):
- a name that ends in `.csv`, in any case, is a data file; temporary names (`.name`, `~$name`,
  `*.tmp`, `*.part`, `*.partial`, `*.crdownload`, `*.download`, `*.filepart`) are ignored until
  they are renamed: writing under such a name and renaming when done is always safe;
- a file written in place is claimed only once its size and mtime have not changed for
  INGEST_SETTLE_SECONDS, measured with the monotonic clock inside one `read_data`: a writer
  that pauses longer than that between two writes must use a temporary name;
- anything else (another extension, a symlink, a fifo, a folder, a device) is refused with a
  reason, and never opened or followed (`os.lstat`, `os.rename` only).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import secrets
import stat
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_CLAIMED = re.compile(r"--(\d{8}T\d{6})-[0-9a-f]{6}\.csv$")
TEMP_PREFIXES = (".", "~$")
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".download", ".filepart")
SLUG_MAX = 80  # keeps a claimed name well under the 255-byte limit of file names


def slug(text: str, *, fallback: str = "file", max_len: int = SLUG_MAX) -> str:
    """A portable, case-preserving file-name part: ASCII letters, digits, `.`, `_`, `-`.

    Accents are dropped (é -> e), every other run of characters becomes one `_`, `--` never
    appears (it separates the parts of a claimed name), and the result starts with a letter
    or digit. Different texts may give the same slug: callers add a hash where that matters.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    out = re.sub(r"[^A-Za-z0-9._-]+", "_", ascii_text)
    out = re.sub(r"-{2,}", "-", out)
    out = out.lstrip("._-")[:max_len].rstrip("._-")
    return out or fallback


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:length]


def is_temporary(name: str) -> bool:
    """A name a writer uses while the file is incomplete: ignored, neither claimed nor refused."""
    lower = name.lower()
    return name.startswith(TEMP_PREFIXES) or lower.endswith(TEMP_SUFFIXES)


def is_csv_name(name: str) -> bool:
    return name.lower().endswith(".csv") and len(name) > 4


@dataclass(frozen=True)
class Refusal:
    """An entry of raw-data that will not be ingested, and why (never opened)."""

    path: Path
    kind: str  # 'symlink' | 'fifo' | 'directory' | 'special' | 'not_csv'
    reason: str


@dataclass(frozen=True)
class Scan:
    candidates: dict[Path, tuple[int, int, int, int]]  # path -> (size, mtime_ns, inode, device)
    refused: list[Refusal]


def _describe(mode: int) -> tuple[str, str]:
    if stat.S_ISLNK(mode):
        return "symlink", "a symbolic link: links are never followed"
    if stat.S_ISFIFO(mode):
        return "fifo", "a named pipe (fifo), not a file: never opened"
    if stat.S_ISDIR(mode):
        return "directory", "a folder, not a file: raw-data takes files only"
    return "special", "not a regular file (socket or device): never opened"


def scan(raw_dir: Path) -> Scan:
    """Classify raw-data's entries with lstat() only: CSV candidates and refusals."""
    candidates, refused = {}, []
    with os.scandir(raw_dir) as entries:
        for entry in entries:
            if is_temporary(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # claimed or renamed meanwhile
            path = Path(entry.path)
            if not stat.S_ISREG(st.st_mode):
                kind, reason = _describe(st.st_mode)
                if kind == "symlink":
                    reason += f" (it points to {os.readlink(path)!r})"
                refused.append(Refusal(path, kind, reason))
            elif not is_csv_name(entry.name):
                refused.append(
                    Refusal(path, "not_csv", "not a CSV by name: raw-data takes files named *.csv")
                )
            else:
                candidates[path] = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev)
    return Scan(candidates, sorted(refused, key=lambda r: r.path.name))


def boot_id() -> str:
    """Changes at every boot of the machine (Linux); '' where unknown. The monotonic clock
    counts from the boot, so monotonic times are comparable only within one boot id."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


SIGHTINGS_NAME = ".raw-data-sightings.json"  # in processing/: ours, never taken for data


@dataclass(frozen=True)
class Sightings:
    """When each raw-data candidate was first seen with its current (size, mtime, inode,
    device), on the monotonic clock, as recorded in a small JSON file shared by every
    observer (each `read_data`, the raw-data trigger): the evidence that a file is settled is
    gathered once, by whoever looked first, instead of by a wait in every run.

    The rule is the one `settled_scan` always applied: two observations at least `settle_s`
    apart, same signature. Only observations are compared (never an mtime against "now"), and
    only within one boot (the monotonic clock restarts at boot). Two observers writing at once
    may lose each other's new sightings (the last rename wins): that only delays a claim, as
    every recorded sighting is a real observation.
    """

    boot: str
    seen: dict[str, tuple[int, int, int, int, float]]  # name -> (*signature, first seen)

    @classmethod
    def load(cls, path: Path) -> Sightings:
        boot = boot_id()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("boot") != boot or not boot:
                return cls(boot, {})
            seen = {str(k): tuple(v) for k, v in data["seen"].items() if len(v) == 5}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return cls(boot, {})  # absent or unreadable: no evidence yet, nothing claimed early
        return cls(boot, seen)  # type: ignore[arg-type]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}-{secrets.token_hex(3)}.tmp")
        tmp.write_text(json.dumps({"boot": self.boot, "seen": self.seen}), encoding="utf-8")
        os.replace(tmp, path)


def observe(
    raw_dir: Path,
    sightings_path: Path,
    settle_s: float,
    *,
    now: Callable[[], float] = time.monotonic,
) -> tuple[Scan, float | None]:
    """Scan raw-data once and record what was seen; the candidates settled by the recorded
    evidence, and the seconds until the next unsettled candidate could settle (None when
    every candidate is settled or there is none).

    A candidate is settled when it was first seen with its current signature at least
    `settle_s` ago (by this or another observer). The file is rewritten only when a sighting
    is new or changed, so polling an unchanged folder writes nothing.
    """
    found = scan(raw_dir)
    if settle_s <= 0:
        return found, None
    recorded = Sightings.load(sightings_path)
    t = now()
    seen: dict[str, tuple[int, int, int, int, float]] = {}
    settled: dict[Path, tuple[int, int, int, int]] = {}
    changed = False
    wait: float | None = None
    for path, sig in found.candidates.items():
        old = recorded.seen.get(path.name)
        if old is not None and tuple(old[:4]) == sig and old[4] <= t:
            first = old[4]
        else:
            first, changed = t, True
        seen[path.name] = (*sig, first)
        age = t - first
        if age >= settle_s:
            settled[path] = sig
        else:
            wait = settle_s - age if wait is None else min(wait, settle_s - age)
    if changed:
        # Entries of files gone (claimed, renamed) are dropped at the same time.
        Sightings(recorded.boot, seen).save(sightings_path)
    return Scan(settled, found.refused), wait


def settled_scan(
    raw_dir: Path,
    settle_s: float,
    *,
    sightings_path: Path | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.monotonic,
) -> Scan:
    """The CSV files of raw-data whose size and mtime did not change for `settle_s`.

    With `sightings_path`, earlier observations count (`observe`): files already seen settled
    by the trigger or an earlier run are returned at once, without a wait. Only when no
    candidate is settled yet does it wait, on the monotonic clock (time.sleep), until the
    first could be, and look again; a clock jump neither shortens nor stretches the wait.
    Without `sightings_path` it scans twice, `settle_s` apart (the observations of this call
    only). No sleep when there is nothing to wait for.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    if sightings_path is not None:
        found, wait = observe(raw_dir, sightings_path, settle_s, now=now)
        if found.candidates or wait is None:
            return found
        sleep(wait)
        return observe(raw_dir, sightings_path, settle_s, now=now)[0]
    first = scan(raw_dir)
    if settle_s <= 0 or not first.candidates:
        return first
    sleep(settle_s)
    second = scan(raw_dir)
    stable = {p: sig for p, sig in second.candidates.items() if first.candidates.get(p) == sig}
    return Scan(stable, second.refused)


def claimed_name(original: str, now: datetime | None = None) -> str:
    """A name unique per ingestion and safe anywhere: `<slug of the stem>--<UTC time>-<random>.csv`.

    The same raw file name may arrive again later; the original name itself is kept in the
    claim's database row (lifecycle.py) and in `ingestion_files.original_name`.
    """
    stem = original[:-4] if is_csv_name(original) else original
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"{slug(stem)}--{stamp}-{secrets.token_hex(3)}.csv"


def take(source: Path, target: Path) -> bool:
    """Rename source to target; False when another run took source first.

    rename() is atomic within a file system: when two runs race for one file exactly one
    rename succeeds. It moves the entry itself, so a link or fifo is never followed or opened.
    """
    try:
        os.rename(source, target)
    except FileNotFoundError:
        return False
    return True


def claim_random_file(
    raw_dir: Path,
    processing_dir: Path,
    rng: random.Random | None = None,
    *,
    candidates: list[Path] | None = None,
    before_take: Callable[[Path, Path], None] | None = None,
    after_lost: Callable[[Path, Path], None] | None = None,
) -> Path | None:
    """Move one random claimable file of raw_dir into processing_dir; its new path, or None.

    candidates: the files to choose from (default: every CSV by name, unsettled; read_data
    passes `settled_scan(...).candidates`). before_take(source, target) runs before the rename
    (lifecycle records the claim there, so that a claim never exists unrecorded) and
    after_lost(source, target) when another run won the race.
    """
    processing_dir.mkdir(parents=True, exist_ok=True)
    raw_dir.mkdir(parents=True, exist_ok=True)
    pool = sorted(scan(raw_dir).candidates if candidates is None else candidates)
    (rng or random.Random()).shuffle(pool)
    for path in pool:
        target = processing_dir / claimed_name(path.name)
        if before_take is not None:
            before_take(path, target)
        if take(path, target):
            return target
        if after_lost is not None:
            after_lost(path, target)
    return None


def claimed_at(path: Path) -> datetime | None:
    """When a file was claimed, from its claimed name (its mtime is the writer's, not ours)."""
    match = _CLAIMED.search(path.name)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
