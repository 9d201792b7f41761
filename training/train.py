"""Train the LightGBM classifier: `python -m training.train [--if-missing]`.

Reproducible (fixed seed, deterministic LightGBM): the same data and schema give the same
model and so the same version. Writes model.txt and metadata.json to MODEL_DIR.
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from mlsys import model
from mlsys.config import get_settings
from mlsys.features import load_feature_spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train", description=__doc__)
    parser.add_argument("--if-missing", action="store_true", help="do nothing if a model exists")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.if_missing and (settings.model_dir / model.METADATA_FILE).exists():
        print(f"model present in {settings.model_dir}; not retraining")
        return 0
    spec = load_feature_spec(settings.schema_path, target=settings.target_column)
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
    )
    metadata = model.save(result, settings.model_dir)
    print(f"model {metadata['version']} written to {settings.model_dir}")
    print(json.dumps(metadata["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
