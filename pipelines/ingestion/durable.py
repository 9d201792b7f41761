"""Make written files survive a crash before their source is removed: fsync file, then folder.

A rename is atomic but not durable: after a power cut the new name (or the data behind it)
may be gone while the unlink of the raw file made it to disk. Flushing each output and the
folder holding its name, before the raw file goes, closes that window.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (names created, renamed or removed in it)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a regular file's data and metadata (not its name: see `fsync_dir`)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_paths(paths: Iterable[Path | str | None]) -> None:
    """fsync every existing path given (None skipped), then each of their folders once.

    Raises OSError when a flush fails: the caller must then keep its source file.
    """
    folders: dict[Path, None] = {}
    for path in paths:
        if path is None:
            continue
        path = Path(path)
        if path.is_file() and not path.is_symlink():
            fsync_file(path)
        folders[path.parent] = None
    for folder in folders:
        fsync_dir(folder)
