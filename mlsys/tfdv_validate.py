"""File-level validation with TFDV: anomalies against the schema, drift against training.

Runs in the `tfdv` environment only (imported inside the `validate_data` task and by tests that
run in that interpreter). TFDV has no cheap per-row check, so rows are judged by
`mlsys.rowchecks`; TFDV judges the file and the distribution.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

SERVING = "SERVING"


@dataclass(frozen=True)
class FileAnomaly:
    feature: str  # '' for dataset-level anomalies
    types: tuple[str, ...]  # TFDV AnomalyInfo.Type names, e.g. ('SCHEMA_MISSING_COLUMN',)
    short_description: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DriftMeasure:
    feature: str
    metric: str  # 'jensen_shannon' | 'l_infinity'
    value: float
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_schema(schema):
    """The Schema proto of `schema`: a proto is returned as it is (what a validation pinned,
    `mlsys.schema_versions.SchemaSnapshot.proto`); a path is read now, never cached (a cache
    by path kept a replaced schema until the worker restarted)."""
    if isinstance(schema, str | Path):
        from mlsys.schema_versions import read_snapshot

        return read_snapshot(Path(schema)).proto
    return schema


def load_training_stats(path: str):
    """The training statistics, cached while the file is unchanged (mtime, size): a worker
    picks up `make schema-stats` without a restart."""
    st = os.stat(path)
    return _training_stats(path, st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=4)
def _training_stats(path: str, _mtime_ns: int, _size: int):
    import tensorflow_data_validation as tfdv

    return tfdv.load_stats_text(path)


def prepare_frame(frame, schema):
    """Make a frame read from CSV digestible by TFDV.

    - reset the index (else TFDV reports a column `__index_level_0__`);
    - an INT feature with missing values is read by pandas as float: give it a nullable
      integer type so TFDV reports the missing values, not a wrong type;
    - a FLOAT feature whose values in this file happen to be whole (ages 42, 30 in a small
      file of the Titanic data) is read as int64: make it float, or TFDV reports
      UNEXPECTED_DATA_TYPE for valid numbers.
    """
    import pandas as pd
    from tensorflow_metadata.proto.v0 import schema_pb2

    frame = frame.reset_index(drop=True)
    for feature in load_schema(schema).feature:
        if feature.name not in frame.columns:
            continue
        col = frame[feature.name]
        if feature.type == schema_pb2.FLOAT:
            if pd.api.types.is_integer_dtype(col):
                frame[feature.name] = col.astype("float64")
            continue
        if feature.type != schema_pb2.INT:
            continue
        if pd.api.types.is_float_dtype(col):
            present = col.dropna()
            if (present == present.round()).all():
                frame[feature.name] = col.astype("Int64")
    return frame


def statistics(frame):
    import tensorflow_data_validation as tfdv

    return tfdv.generate_statistics_from_dataframe(frame)


def file_anomalies(stats, schema) -> list[FileAnomaly]:
    """Anomalies of a file's statistics against the schema (a proto or a path), SERVING
    environment."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    anomalies = tfdv.validate_statistics(stats, load_schema(schema), environment=SERVING)
    found = [
        FileAnomaly(
            feature=name,
            types=tuple(anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason),
            short_description=info.short_description,
            description=info.description,
        )
        for name, info in sorted(anomalies.anomaly_info.items())
    ]
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        found.append(
            FileAnomaly(
                feature="",
                types=tuple(anomalies_pb2.AnomalyInfo.Type.Name(r.type) for r in info.reason),
                short_description=info.short_description,
                description=info.description,
            )
        )
    return found


def drift(stats, schema, training_stats_path: Path) -> list[DriftMeasure]:
    """Distance of each feature's distribution to training: always returned, not only when
    it crosses the threshold (TFDV 1.16 reports every measured value in drift_skew_info)."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    anomalies = tfdv.validate_statistics(
        stats,
        load_schema(schema),
        environment=SERVING,
        previous_statistics=load_training_stats(str(training_stats_path)),
    )
    names = {
        anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE: "jensen_shannon",
        anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY: "l_infinity",
    }
    return [
        DriftMeasure(
            feature=".".join(info.path.step),
            metric=names[m.type],
            value=float(m.value),
            threshold=float(m.threshold),
        )
        for info in anomalies.drift_skew_info
        for m in info.drift_measurements
        if m.type in names
    ]
