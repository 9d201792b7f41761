"""Which schema judged what: a version per `schema/schema.pbtxt`, read, written and watched.

A schema's version is a human number kept in a machine-readable comment line of the file,

    # schema-version: 3

plus the SHA-256 of the file's bytes (`SchemaVersion`; shown as "v3 (1a2b3c4d)"). A file
without that line is version "0" (a schema from before versions were kept). The hash tells
apart two texts that claim the same number (a hand edit that forgot to bump it).

- `read_snapshot(path)`: the text, its version and (lazily) its parsed forms from ONE read of
  the bytes, so that a validation judges with the text of the version it records.
- `write_schema(path, new_text, base=..., change_comment=...)`: the one way to write a new
  schema: keeps the comment header, bumps the version, logs the change in the header, writes
  atomically (temporary file, fsync, rename) and refuses (`SchemaChanged`) when the file is no
  longer the version the caller started from (compare-and-swap on the hash, under a lock).
- `SchemaWatch(path).current()`: the current snapshot for a long-running process (the TFDV
  worker, the API, the UI): one `os.stat` per call, the file re-read and re-hashed only when
  its mtime, size or inode changed. No restart needed after a schema is approved.
- `record_schema_version(conn, ...)`: the `schema_versions` table (migration 0009).

Standard library only at import time (hashlib, os): the `airflow` environment, which cannot
parse the schema (protobuf 7), still reads versions. Parsing imports `tensorflow-metadata`
lazily (`app` and `tfdv` environments).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from mlsys.features import FeatureSpec, SchemaError, parse_schema

VERSION_PREFIX = "# schema-version:"
# The header line: '# schema-version: 12' (whole number, surrounding blanks ignored).
VERSION_LINE = re.compile(r"^#\s*schema-version:\s*(\d{1,9})\s*$", re.MULTILINE)
UNVERSIONED = "0"
# The header's change log: one line per approved change, newest last, under this title.
CHANGES_TITLE = "# Changes (written by mlsys.schema_versions.write_schema):"


class SchemaChanged(RuntimeError):
    """The schema file is no longer the version the caller started from: nothing was written.

    `expected` / `found`: the `SchemaVersion`s. Re-read the file, redo the change, try again.
    """

    def __init__(self, path: Path, expected: SchemaVersion, found: SchemaVersion):
        super().__init__(
            f"{path} changed since {expected.short} (it is now {found.short}): "
            "nothing was written; re-read it and apply the change again"
        )
        self.expected, self.found = expected, found


@dataclass(frozen=True)
class SchemaVersion:
    """A schema's identity: `version` the human number ("3"; "0" for a file without the
    header line), `sha256` the hex SHA-256 of the file's bytes (64 characters)."""

    version: str
    sha256: str

    @property
    def short(self) -> str:
        """'v3 (1a2b3c4d)': what reports, cards and pages show."""
        return f"v{self.version} ({self.sha256[:8]})"

    def to_dict(self) -> dict[str, str]:
        return {"version": self.version, "sha256": self.sha256}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SchemaVersion:
        """From `to_dict`; ValueError when a field is missing or the hash is not 64 hex digits."""
        try:
            version, sha = str(data["version"]), str(data["sha256"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a schema version: {data!r:.200}") from exc
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise ValueError(f"schema sha256 {sha!r:.80} is not 64 lowercase hex digits")
        return cls(version, sha)


def version_of_text(data: bytes | str) -> SchemaVersion:
    """The version of a schema's content (bytes, or text encoded as UTF-8)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    text = raw.decode("utf-8", errors="replace")
    found = VERSION_LINE.search(_header(text))
    return SchemaVersion(found.group(1) if found else UNVERSIONED, hashlib.sha256(raw).hexdigest())


def _header(text: str) -> str:
    """The leading comment block (and blank lines) of a schema text."""
    lines = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


@dataclass(frozen=True)
class SchemaSnapshot:
    """One read of a schema file: its path, text and version; parsed forms on demand, cached
    (they are derived from `text`, so they always belong to `version`)."""

    path: Path
    text: str
    version: SchemaVersion
    mtime_ns: int = 0
    size: int = 0

    @cached_property
    def proto(self):
        """The `tensorflow_metadata` Schema proto (what `tfdv.load_schema_text` returns).
        Raises SchemaError when the text does not parse."""
        from google.protobuf import text_format
        from tensorflow_metadata.proto.v0 import schema_pb2

        try:
            return text_format.Parse(self.text, schema_pb2.Schema())
        except text_format.ParseError as exc:
            raise SchemaError(f"{self.path} is not a valid TFDV schema: {exc}") from exc

    def feature_spec(self, target: str | None = None) -> FeatureSpec:
        """The serving features (`mlsys.features.parse_schema`), cached per target; SchemaError
        (naming this file) when the text is not a schema we can serve."""
        cache = self.__dict__.setdefault("_specs", {})
        if target not in cache:
            try:
                cache[target] = parse_schema(self.text, target=target)
            except SchemaError as exc:  # name the file: the message alone says "schema"
                raise SchemaError(f"{self.path}: {exc}") from exc
        return cache[target]


def read_snapshot(path: Path) -> SchemaSnapshot:
    """Read the file once; SchemaError when it cannot be read or is not UTF-8."""
    path = Path(path)
    try:
        with open(path, "rb") as src:
            stat = os.fstat(src.fileno())
            raw = src.read()
    except OSError as exc:
        raise SchemaError(f"cannot read schema {path}: {exc.strerror}") from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"schema {path} is not UTF-8 text: {exc}") from exc
    return SchemaSnapshot(path, text, version_of_text(raw), stat.st_mtime_ns, stat.st_size)


def read_schema_version(path: Path) -> SchemaVersion:
    """The version of the file as it is now; SchemaError when it cannot be read."""
    return read_snapshot(path).version


def load_schema(path: Path):
    """(Schema proto, SchemaVersion) from one read of the file: the proto is the text the
    version names. SchemaError when unreadable or not a TFDV schema."""
    snapshot = read_snapshot(path)
    return snapshot.proto, snapshot.version


# --- writing --------------------------------------------------------------------------------


def _body(text: str) -> str:
    """A schema text without its leading comment header."""
    return text[len(_header(text)) :]


def new_header(old_text: str, new_version: str, change: str) -> str:
    """The old header with the version line set to `new_version` (added at the top when
    absent) and `change` appended to the change log (a titled list at the header's end)."""
    header = _header(old_text)
    if VERSION_LINE.search(header):
        header = VERSION_LINE.sub(f"{VERSION_PREFIX} {new_version}", header, count=1)
    else:
        header = f"{VERSION_PREFIX} {new_version}\n" + header
    header = header.rstrip("\n") + "\n"
    if CHANGES_TITLE not in header:
        header += CHANGES_TITLE + "\n"
    return header + change + "\n"


def change_line(version: str, comment: str, *, author: str | None, when: datetime) -> str:
    """'#   v4 2026-12-01 by alice: purpose gains "vacation" (proposal 7)' (one line)."""
    flat = " ".join(comment.split())
    if not flat:
        raise ValueError("a schema change needs a comment saying what changed and why")
    by = f" by {' '.join(author.split())}" if author else ""
    return f"#   v{version} {when.strftime('%Y-%m-%d')}{by}: {flat}"


def write_schema(
    path: Path,
    new_text: str,
    *,
    base: SchemaVersion,
    change_comment: str,
    author: str | None = None,
    now: datetime | None = None,
    target: str | None = None,
) -> SchemaVersion:
    """Write `new_text` as the next version of the schema at `path`; returns the new version.

    `new_text`: the new schema; its own leading comments are dropped (TFDV's writer has none;
    the file's header, with the version line and the change log, is kept and extended).
    Comments inside the body (per feature) are kept as given. `base`: the version the change
    was made from: when the file is no longer exactly that (sha256), `SchemaChanged` is raised
    and nothing is written. The version becomes int(base.version) + 1.

    Atomic: a temporary file in the same folder, fsync, `os.replace`, under an exclusive
    `flock` on `<path>.lock` so that two writers cannot both pass the check. Raises
    SchemaError when `new_text` is not a schema with serving features (`target`: the label
    column, left out of them) and ValueError for an empty comment.
    """
    path = Path(path)
    when = now or datetime.now(UTC)
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        current = read_snapshot(path)
        if current.version.sha256 != base.sha256:
            raise SchemaChanged(path, base, current.version)
        number = str(int(current.version.version) + 1)
        body = _body(new_text).lstrip("\n")
        parse_schema(body, target=target)  # refuse what the readers would refuse
        text = new_header(current.text, number, change_line(number, change_comment,
                                                            author=author, when=when)) + body  # fmt: skip
        raw = text.encode("utf-8")
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(raw)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, os.stat(path).st_mode & 0o777)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself survives a crash
        finally:
            os.close(dir_fd)
        return version_of_text(raw)


# --- watching -------------------------------------------------------------------------------


class SchemaWatch:
    """The current snapshot of one schema file, for a process that lives across changes.

    `current()` costs one `os.stat` when nothing changed; a changed mtime, size or inode (an
    `os.replace` gives a new inode) makes it re-read the file. A file that cannot be read or
    parsed keeps the last good snapshot (logged by the caller through `error`), so that a
    half-edited schema never stops a running service; at the first read it raises SchemaError.
    Thread-safe. Hold on to the returned snapshot for the whole of one validation.
    """

    def __init__(self, path: Path, *, target: str | None = None):
        self.path = Path(path)
        self.target = target
        self.error: str | None = None
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._snapshot = self._read()
        self._key = self._stat_key()

    def _stat_key(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> SchemaSnapshot:
        snapshot = read_snapshot(self.path)
        snapshot.feature_spec(self.target)  # parse now: a bad text is refused here
        return snapshot

    def current(self) -> SchemaSnapshot:
        """The snapshot of the file as it is now (or the last good one, see the class)."""
        key = self._stat_key()
        if key == self._key:
            return self._snapshot
        with self._lock:
            if key != self._key:
                try:
                    snapshot = self._read()
                except SchemaError as exc:
                    self.error = str(exc)
                else:
                    self.error = None
                    if snapshot.version != self._snapshot.version:
                        self._snapshot = snapshot
                self._key = key
            return self._snapshot


# --- the database ---------------------------------------------------------------------------

RECORD_VERSION = """
INSERT INTO schema_versions (sha256, version, schema_text, approved_by, reason, proposal_id)
VALUES (%(sha256)s, %(version)s, %(text)s, %(approved_by)s, %(reason)s, %(proposal_id)s)
ON CONFLICT (sha256) DO UPDATE SET
    schema_text = COALESCE(schema_versions.schema_text, EXCLUDED.schema_text),
    approved_by = COALESCE(schema_versions.approved_by, EXCLUDED.approved_by),
    reason = COALESCE(schema_versions.reason, EXCLUDED.reason),
    proposal_id = COALESCE(schema_versions.proposal_id, EXCLUDED.proposal_id)
"""


def record_schema_version(
    conn,
    sv: SchemaVersion,
    *,
    text: str | None = None,
    approved_by: str | None = None,
    reason: str | None = None,
    proposal_id: int | None = None,
) -> None:
    """Make sure `schema_versions` has a row for `sv` (keyed by sha256), filling in what it
    lacks (text, who approved it, why, the proposal) and never overwriting what it has.

    `conn`: a psycopg2 connection; runs in the caller's transaction (no commit). `text`, when
    given, must be the content `sv` names (ValueError otherwise).
    """
    if text is not None and version_of_text(text).sha256 != sv.sha256:
        raise ValueError(f"the text given is not the content of {sv.short}")
    with conn.cursor() as cur:
        cur.execute(
            RECORD_VERSION,
            {"sha256": sv.sha256, "version": sv.version, "text": text,
             "approved_by": approved_by, "reason": reason, "proposal_id": proposal_id},
        )  # fmt: skip
