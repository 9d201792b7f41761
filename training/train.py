"""Train the LightGBM classifier: `python -m training.train [--if-missing]`.

Reproducible (fixed seed, deterministic LightGBM): the same data and schema give the same
model and so the same version. Writes model.txt and metadata.json to MODEL_DIR; the metadata
records the schema version trained with and the values of the training rows
(`mlsys.training_values`). `model_versions` gets its row from the service when it loads the
model (the database need not run to train).
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from mlsys import model
from mlsys.config import get_settings
from mlsys.schema_versions import read_snapshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    parser.add_argument("--if-missing", action="store_true", help="do nothing if a model exists")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.if_missing and (settings.model_dir / model.METADATA_FILE).exists():
        print(f"model present in {settings.model_dir}; not retraining")
        return 0
    # One read of the schema: the features trained on are those of the version recorded.
    snapshot = read_snapshot(settings.schema_path)
    spec = snapshot.feature_spec(settings.target_column)
    frame = pd.read_csv(settings.dataset_path)
    missing = [c for c in [*spec.names, settings.target_column] if c not in frame.columns]
    if missing:
        print(f"error: {settings.dataset_path} lacks columns {missing}", file=sys.stderr)
        return 2
    result = model.train(
        frame,
        spec,
        target=settings.target_column,
        positive_class=settings.positive_class,
        dataset=str(settings.dataset_path),
        schema_version=snapshot.version,
    )
    metadata = model.save(result, settings.model_dir)
    print(
        f"model {metadata['version']} (schema {snapshot.version.short}) "
        f"written to {settings.model_dir}"
    )
    print(json.dumps(metadata["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
