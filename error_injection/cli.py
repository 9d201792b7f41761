"""The command line: `python -m error_injection generate|types` (thin: parses and calls)."""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections import Counter
from pathlib import Path

from error_injection import errors
from error_injection.generate import (
    GenerationError,
    Plan,
    applicable,
    build,
    load_source,
    write,
)
from mlsys.config import ConfigError, get_settings
from mlsys.features import SchemaError, load_feature_spec

EPILOG = """examples:
  python -m error_injection generate                      # 20 files of 50 rows, half with errors
  python -m error_injection generate --rows-per-file 100 --error-share 1 --seed 7
  python -m error_injection generate --types missing_value,wrong_delimiter --out /tmp/raw
  python -m error_injection types                         # list the error types
"""


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not between 0 and 1")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _types(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    unknown = [n for n in names if n not in errors.REGISTRY]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown error type(s): {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(errors.REGISTRY)}"
        )
    return names


def parser() -> argparse.ArgumentParser:
    settings = get_settings()
    root = argparse.ArgumentParser(
        prog="python -m error_injection",
        description="Split the data set into raw CSV files with synthetic errors.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = root.add_subparsers(dest="command", required=True)
    gen = sub.add_parser(
        "generate",
        help="write raw files and their manifests",
        description=(
            "Split the data set (DATASET_PATH, target TARGET_COLUMN dropped) into CSV files and "
            "inject errors into a share of them, reproducibly from --seed. Files are written "
            "atomically; each gets a JSON manifest saying what was injected where."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    size = gen.add_mutually_exclusive_group()
    size.add_argument("--files", type=_positive, help="number of files (default 20)")
    size.add_argument("--rows-per-file", type=_positive, help="rows per file instead of --files")
    gen.add_argument(
        "--error-share", type=_share, default=0.5,
        help="share of the files that get an error (default 0.5)",
    )  # fmt: skip
    gen.add_argument(
        "--row-share", type=_share, default=0.1,
        help="share of a bad file's rows a row-level error touches, at least one (default 0.1)",
    )  # fmt: skip
    gen.add_argument(
        "--errors-per-file", type=_positive, default=1,
        help="row-level error types per bad file, on distinct rows and features (default 1); "
        "file-level errors always come alone",
    )  # fmt: skip
    gen.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    gen.add_argument(
        "--types", type=_types, default=tuple(errors.REGISTRY),
        help="comma-separated error types to use (default: all; see `types`)",
    )  # fmt: skip
    gen.add_argument(
        "--out", type=Path, default=settings.raw_data_dir,
        help=f"folder of the CSV files (default DATA_DIR/raw-data: {settings.raw_data_dir})",
    )  # fmt: skip
    gen.add_argument(
        "--manifests", type=Path, default=settings.data_dir / "manifests",
        help="folder of the manifests, never the raw-data folder (default DATA_DIR/manifests)",
    )  # fmt: skip
    gen.add_argument("--prefix", help="file name prefix (default raw-s<seed>)")
    gen.add_argument(
        "--overwrite", action="store_true",
        help="replace files and manifests of the same names (refused by default)",
    )  # fmt: skip
    gen.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub.add_parser("types", help="list the error types", description="List the error types.")
    return root


def list_types() -> None:
    for t in errors.REGISTRY.values():
        what = "unusable file" if t.unusable else "drift only" if t.drift else ""
        seen = ", ".join(t.tfdv_anomalies) or "not by TFDV"
        print(f"{t.name:18} {t.level:4}  check={t.check:17} TFDV: {seen}")
        text = t.summary + (f" [{what}]" if what else "")
        print(textwrap.fill(text, width=100, initial_indent=" " * 4, subsequent_indent=" " * 4))


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "types":
        list_types()
        return 0

    from tqdm import tqdm

    def bar(desc: str):
        return lambda items: tqdm(items, desc=desc, unit="file", disable=args.no_progress or None)

    plan = Plan(
        seed=args.seed,
        files=None if args.rows_per_file else (args.files or 20),
        rows_per_file=args.rows_per_file,
        error_share=args.error_share,
        row_share=args.row_share,
        errors_per_file=args.errors_per_file,
        types=args.types,
        prefix=args.prefix,
    )
    try:
        settings = get_settings()
        spec = load_feature_spec(settings.schema_path, target=settings.target_column)
        source = load_source(settings.dataset_path, spec, settings.target_column)
        plan, skipped = applicable(plan, spec, source)
        # Another data set's schema may lack what a type needs (a numeric range, a category):
        # say so and go on with the others rather than stop `make up`.
        for name, why in skipped.items():
            print(f"skipped error type {name}: {why}", file=sys.stderr)
        files = build(
            source, spec, plan, dataset_name=settings.dataset_path.name, progress=bar("injecting")
        )
        write(files, args.out, args.manifests, overwrite=args.overwrite, progress=bar("writing"))
    except (GenerationError, ConfigError, SchemaError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    counts = Counter(i["error_type"] for f in files for i in f.manifest["injections"])
    bad = sum(not f.manifest["clean"] for f in files)
    print(f"wrote {len(files)} files ({bad} with an error) to {args.out}")
    print(f"manifests in {args.manifests}")
    for name, count in sorted(counts.items()):
        print(f"  {name}: {count}")
    missing = [t for t in plan.types if t not in counts]
    if missing:
        print(f"  not used (too few bad files): {', '.join(missing)}")
    return 0
