"""Split the data set into raw files, inject errors into some of them, write files + manifests.

The contract with the ingestion (docs/error_injection.md): CSV files appear in the raw-data
folder atomically (written under a temporary name that does not end in `.csv`, then renamed),
and each file's manifest is written to a separate folder *before* the file itself, so the
every-minute DAG never reads a half-written file and a manifest exists for every file it sees.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from error_injection import errors
from mlsys.features import FeatureSpec

MANIFEST_VERSION = 1
# Rows of the data set an error type is tried on to learn whether the schema can carry it.
PROBE_ROWS = 50

log = logging.getLogger(__name__)


class GenerationError(ValueError):
    """Bad arguments or a data set we cannot split; nothing has been written."""


@dataclass(frozen=True)
class Plan:
    """What one run generates. Exactly one of `files` / `rows_per_file` is set."""

    seed: int = 42
    files: int | None = 20
    rows_per_file: int | None = None
    error_share: float = 0.5  # share of the files that get an error
    row_share: float = 0.1  # share of the rows of a file a row-level error touches
    errors_per_file: int = 1  # row-level types per bad file (file-level types stay alone)
    types: tuple[str, ...] = field(default_factory=lambda: tuple(errors.REGISTRY))
    prefix: str | None = None  # file names: <prefix>-0001.csv; default 'raw-s<seed>'

    @property
    def name_prefix(self) -> str:
        return self.prefix if self.prefix is not None else f"raw-s{self.seed}"

    def check(self) -> None:
        if self.seed < 0:
            raise GenerationError(f"the seed must be a non-negative integer, got {self.seed}")
        if (self.files is None) == (self.rows_per_file is None):
            raise GenerationError("give either a number of files or a number of rows per file")
        if self.files is not None and self.files < 1:
            raise GenerationError(f"the number of files must be at least 1, got {self.files}")
        if self.rows_per_file is not None and self.rows_per_file < 1:
            raise GenerationError(f"rows per file must be at least 1, got {self.rows_per_file}")
        for name, share in (("error share", self.error_share), ("row share", self.row_share)):
            if not 0.0 <= share <= 1.0:
                raise GenerationError(f"the {name} must be between 0 and 1, got {share}")
        if self.errors_per_file < 1:
            raise GenerationError(f"errors per file must be at least 1, got {self.errors_per_file}")
        if not self.types:
            raise GenerationError("choose at least one error type")
        unknown = [t for t in self.types if t not in errors.REGISTRY]
        if unknown:
            raise GenerationError(
                f"unknown error type(s): {', '.join(unknown)}; known: {', '.join(errors.REGISTRY)}"
            )
        if self.prefix is not None and (not self.prefix or "/" in self.prefix):
            raise GenerationError(f"the prefix must be a non-empty file name part: {self.prefix!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "files": self.files,
            "rows_per_file": self.rows_per_file,
            "error_share": self.error_share,
            "row_share": self.row_share,
            "errors_per_file": self.errors_per_file,
            "types": list(self.types),
        }


@dataclass(frozen=True)
class GeneratedFile:
    name: str
    content: bytes
    manifest: dict[str, Any]

    @property
    def stem(self) -> str:
        return Path(self.name).stem


def load_source(dataset_path: Path, spec: FeatureSpec, target: str | None) -> pd.DataFrame:
    """The data set's serving features (target dropped), in schema order, as object dtype."""
    try:
        frame = pd.read_csv(dataset_path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise GenerationError(f"cannot read the data set {dataset_path}: {exc}") from exc
    missing = [name for name in spec.names if name not in frame.columns]
    if missing:
        raise GenerationError(
            f"the data set {dataset_path} lacks the schema's feature(s): {', '.join(missing)}"
        )
    if target and target in frame.columns:
        frame = frame.drop(columns=[target])
    return frame[spec.names].astype(object).reset_index(drop=True)


def split(n_rows: int, *, files: int | None = None, rows_per_file: int | None = None):
    """Half-open source row ranges, in data set order: `files` nearly equal parts, or parts of
    `rows_per_file` rows (the last one shorter)."""
    if n_rows < 1:
        raise GenerationError("the data set has no row")
    if files is not None:
        if files > n_rows:
            raise GenerationError(f"cannot split {n_rows} rows into {files} non-empty files")
        bounds = [round(i * n_rows / files) for i in range(files + 1)]
    elif rows_per_file is not None:
        bounds = list(range(0, n_rows, rows_per_file)) + [n_rows]
    else:
        raise GenerationError("give either a number of files or a number of rows per file")
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def assign_errors(n_files: int, plan: Plan) -> list[str | None]:
    """The error type of each file (None: clean). The types are dealt round-robin in a
    seeded random order, so every chosen type appears once there are enough bad files."""
    rng = np.random.default_rng(plan.seed)
    n_bad = min(n_files, math.floor(plan.error_share * n_files + 0.5))
    bad = rng.choice(n_files, size=n_bad, replace=False) if n_bad else []
    order = [plan.types[int(i)] for i in rng.permutation(len(plan.types))]
    chosen: list[str | None] = [None] * n_files
    for k, index in enumerate(sorted(int(i) for i in bad)):
        chosen[index] = order[k % len(order)]
    return chosen


def file_types(first: str, plan: Plan, index: int) -> list[str]:
    """The error types of one bad file: the type dealt to it, plus up to `errors_per_file - 1`
    other row-level types when it is row-level (a file-level error makes the rest moot)."""
    if plan.errors_per_file == 1 or errors.REGISTRY[first].level != errors.ROW:
        return [first]
    others = [t for t in plan.types if t != first and errors.REGISTRY[t].level == errors.ROW]
    rng = np.random.default_rng([plan.seed, index, 0])
    return [
        first,
        *(others[int(i)] for i in rng.permutation(len(others))[: plan.errors_per_file - 1]),
    ]


def inject_file(
    chunk: pd.DataFrame, types: list[str], spec: FeatureSpec, plan: Plan, index: int,
    source: pd.DataFrame,
) -> tuple[errors.Output, list[errors.Injection]]:  # fmt: skip
    """Apply a file's error types in turn, each on rows and features the others left alone.
    Duplicates go first: they insert rows, which would shift the rows of earlier injections."""
    output, injections = errors.Output(chunk), []
    avoid_rows: set[int] = set()
    avoid_columns: set[str] = set()
    for position, name in sorted(enumerate(types), key=lambda p: p[1] != "duplicate_rows"):
        # One generator per file and type, seeded by (seed, file index[, position]): a file's
        # injections depend on its seed, index, rows and types only, not on the build order.
        key = [plan.seed, index] if position == 0 else [plan.seed, index, position]
        ctx = errors.Context(
            spec, np.random.default_rng(key), plan.row_share, run_seed=plan.seed,
            reference=source, avoid_rows=frozenset(avoid_rows),
            avoid_columns=frozenset(avoid_columns),
        )  # fmt: skip
        try:
            output = errors.inject(name, output.frame, ctx)
        except errors.NotApplicable as exc:
            raise GenerationError(f"error type {name!r} cannot be injected: {exc}") from exc
        assert output.injection is not None
        injections.append(output.injection)
        avoid_rows |= set(output.injection.rows) | set(output.protect)
        avoid_columns |= set(output.injection.columns)
    return output, injections


def unsupported_types(
    types: Sequence[str], spec: FeatureSpec, source: pd.DataFrame, *, seed: int = 0
) -> dict[str, str]:
    """The error types this schema (and data set) cannot carry -> why, in `types` order.

    Each type is tried once on the first PROBE_ROWS rows with nothing to avoid: a type that
    still finds nothing to change there (`errors.NotApplicable`: no numeric range for
    `out_of_range`, no categorical feature for `unknown_category`...) can be injected into no
    file of this data set. Raises GenerationError when the data set has no row.
    """
    if len(source) == 0:
        raise GenerationError("the data set has no row")
    sample = source.iloc[:PROBE_ROWS].reset_index(drop=True)
    why: dict[str, str] = {}
    for name in types:
        ctx = errors.Context(spec, np.random.default_rng(seed), run_seed=seed, reference=source)
        try:
            errors.inject(name, sample, ctx)
        except errors.NotApplicable as exc:
            why[name] = str(exc)
    return why


def applicable(plan: Plan, spec: FeatureSpec, source: pd.DataFrame) -> tuple[Plan, dict[str, str]]:
    """The plan without the error types this schema cannot carry, and those types -> why.

    Raises GenerationError when none of the plan's types is left (nothing sensible to do).
    """
    plan.check()
    skipped = unsupported_types(plan.types, spec, source, seed=plan.seed)
    kept = tuple(t for t in plan.types if t not in skipped)
    if not kept:
        reasons = "; ".join(f"{name}: {why}" for name, why in skipped.items())
        raise GenerationError(f"no chosen error type can be injected with this schema ({reasons})")
    return replace(plan, types=kept), skipped


def build(
    source: pd.DataFrame,
    spec: FeatureSpec,
    plan: Plan,
    *,
    dataset_name: str = "",
    progress: Callable[[Iterable[Any]], Iterable[Any]] = iter,
) -> list[GeneratedFile]:
    """Every file of the run, in memory: nothing is written if any injection fails.

    Error types the schema cannot carry are left out with a logged warning (`applicable`);
    the manifests' plan lists the types actually used.
    """
    plan, skipped = applicable(plan, spec, source)
    for name, why in skipped.items():
        log.warning("error type %r skipped: %s", name, why)
    ranges = split(len(source), files=plan.files, rows_per_file=plan.rows_per_file)
    chosen = assign_errors(len(ranges), plan)
    width = max(4, len(str(len(ranges))))
    built = []
    for index in progress(range(len(ranges))):
        start, stop = ranges[index]
        name = f"{plan.name_prefix}-{index + 1:0{width}d}.csv"
        chunk = source.iloc[start:stop].reset_index(drop=True)
        error = chosen[index]
        if error is None:
            output, injections = errors.Output(chunk), []
        else:
            types = file_types(error, plan, index)
            output, injections = inject_file(chunk, types, spec, plan, index, source)
        rows_written = 0 if output.raw == b"" else len(output.frame)
        document = manifest(name, plan, dataset_name, (start, stop), rows_written, injections)
        built.append(GeneratedFile(name, output.render(), document))
    return built


def manifest(
    name: str,
    plan: Plan,
    dataset_name: str,
    source_rows: tuple[int, int],
    rows_written: int,
    injections: list[errors.Injection],
) -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "file": name,
        "seed": plan.seed,
        "dataset": dataset_name,
        "source_rows": {"start": source_rows[0], "stop": source_rows[1]},
        "rows_written": rows_written,
        "clean": not injections,
        "unusable": any(i.unusable for i in injections),
        "drift": any(i.drift for i in injections),
        "bad_rows": sorted({r for i in injections for r in i.rows}),
        "injections": [i.to_dict() for i in injections],
        "plan": plan.to_dict(),
    }


def write_atomic(path: Path, content: bytes) -> None:
    """Write under a temporary name (not ending in .csv, so the DAG's glob skips it) and
    rename: readers see the whole file or nothing."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def existing_outputs(
    files: Sequence[GeneratedFile], out_dir: Path, manifest_dir: Path
) -> list[Path]:
    """Files or manifests of this run that are already there (a run with the same names)."""
    found = []
    for item in files:
        for path in (out_dir / item.name, manifest_dir / f"{item.stem}.json"):
            if path.exists():
                found.append(path)
    return found


def write(
    files: Sequence[GeneratedFile],
    out_dir: Path,
    manifest_dir: Path,
    *,
    overwrite: bool = False,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = iter,
) -> None:
    """Write every manifest, then its file. Refuses to replace earlier output unless asked:
    the DAG may already have ingested files of those names."""
    if out_dir.resolve() == manifest_dir.resolve():
        raise GenerationError("manifests must not go to the raw-data folder the DAG empties")
    if not overwrite:
        clash = existing_outputs(files, out_dir, manifest_dir)
        if clash:
            shown = ", ".join(str(p) for p in clash[:3]) + (" ..." if len(clash) > 3 else "")
            raise GenerationError(
                f"{len(clash)} output(s) already exist ({shown}); choose another --seed or "
                "--prefix, or pass --overwrite"
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_dir.mkdir(parents=True, exist_ok=True)
    for item in progress(files):
        text = json.dumps(item.manifest, indent=2) + "\n"
        write_atomic(manifest_dir / f"{item.stem}.json", text.encode("utf-8"))
        write_atomic(out_dir / item.name, item.content)


def read_manifests(manifest_dir: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(manifest_dir.glob("*.json")):
        yield json.loads(path.read_text(encoding="utf-8"))
