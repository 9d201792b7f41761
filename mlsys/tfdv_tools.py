"""TFDV commands for the data engineers who curate `schema/schema.pbtxt`.

Runs in the `tfdv` environment only:
    .venvs/tfdv/bin/python -m mlsys.tfdv_tools draft      # write schema/schema.inferred.pbtxt
    .venvs/tfdv/bin/python -m mlsys.tfdv_tools stats      # write the training statistics
    .venvs/tfdv/bin/python -m mlsys.tfdv_tools check      # validate the data set against the schema
The curated schema is never overwritten: `draft` writes beside it, for a diff by hand.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlsys.config import Settings, get_settings

TRAINING, SERVING = "TRAINING", "SERVING"


def read_dataset(path: Path):
    import pandas as pd

    # Reset the index: TFDV reports a non-default index as a column `__index_level_0__`.
    return pd.read_csv(path).reset_index(drop=True)


def training_statistics(settings: Settings):
    import tensorflow_data_validation as tfdv

    return tfdv.generate_statistics_from_dataframe(read_dataset(settings.dataset_path))


def infer_draft(settings: Settings, out: Path) -> Path:
    """Infer a schema from the training data: the starting point of a curation, not a result."""
    import tensorflow_data_validation as tfdv

    schema = tfdv.infer_schema(training_statistics(settings))
    tfdv.write_schema_text(schema, str(out))
    return out


def write_training_statistics(settings: Settings) -> Path:
    import tensorflow_data_validation as tfdv

    tfdv.write_stats_text(training_statistics(settings), str(settings.training_stats_path))
    return settings.training_stats_path


def anomalies_of_dataset(settings: Settings, environment: str) -> dict[str, str]:
    """Validate the whole data set against the curated schema; returns {feature: description}."""
    import tensorflow_data_validation as tfdv

    frame = read_dataset(settings.dataset_path)
    if environment == SERVING:
        frame = frame.drop(columns=[settings.target_column])
    schema = tfdv.load_schema_text(str(settings.schema_path))
    stats = tfdv.generate_statistics_from_dataframe(frame)
    anomalies = tfdv.validate_statistics(stats, schema, environment=environment)
    return {
        name: f"{info.short_description}: {info.description}"
        for name, info in anomalies.anomaly_info.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlsys.tfdv_tools", description=__doc__)
    parser.add_argument("command", choices=["draft", "stats", "check"])
    parser.add_argument("--out", type=Path, help="draft: output path")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "draft":
        out = args.out or settings.schema_path.with_name("schema.inferred.pbtxt")
        if out.resolve() == settings.schema_path.resolve():
            parser.error("refusing to overwrite the curated schema; choose another --out")
        print(f"inferred draft written to {infer_draft(settings, out)}")
    elif args.command == "stats":
        print(f"training statistics written to {write_training_statistics(settings)}")
    else:
        failed = False
        for env in (TRAINING, SERVING):
            found = anomalies_of_dataset(settings, env)
            for feature, text in found.items():
                print(f"{env}: {feature}: {text}")
            failed = failed or bool(found)
            print(f"{env}: {len(found)} anomalies")
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
