"""The LightGBM model: encoding from the schema, training, saving and loading.

Categorical features are encoded as their index in the schema's domain and declared to
LightGBM as categorical, so training and serving share one encoding that comes from the
schema, and serving can build a numpy matrix without pandas (single rows stay fast).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mlsys import training_values
from mlsys.features import FeatureSpec
from mlsys.schema_versions import SchemaVersion

MODEL_FILE = "model.txt"
METADATA_FILE = "metadata.json"
SEED = 42
PARAMS: dict[str, Any] = {
    # Lightly tuned: on German Credit, 5-fold ROC AUC 0.75 against 0.73 for LightGBM's defaults.
    "objective": "binary",
    "learning_rate": 0.03,
    "num_leaves": 15,
    "min_data_in_leaf": 20,
    "cat_smooth": 10,
    "seed": SEED,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbose": -1,
}
NUM_ROUNDS = 300


class ModelNotFoundError(FileNotFoundError):
    """No trained model in the model folder: run `make train`."""


def encode_frame(frame, spec: FeatureSpec) -> np.ndarray:
    """A pandas frame of raw features -> float matrix in schema order (unknown category: NaN)."""
    columns = []
    for feature in spec.features:
        col = frame[feature.name]
        if feature.is_categorical:
            codes = col.astype("object").map(feature.code_of())
            columns.append(codes.astype("float64").to_numpy())
        else:
            columns.append(col.astype("float64").to_numpy())
    return np.column_stack(columns)


def encode_records(records: list[dict[str, Any]], spec: FeatureSpec) -> np.ndarray:
    """Validated records (dicts) -> float matrix, without pandas."""
    matrix = np.empty((len(records), len(spec.features)), dtype=np.float64)
    encoders = [(f.name, f.code_of() if f.is_categorical else None) for f in spec.features]
    for i, record in enumerate(records):
        row = matrix[i]
        for j, (name, codes) in enumerate(encoders):
            value = record[name]
            row[j] = codes[value] if codes is not None else value
    return matrix


def labels_of(frame, target: str, positive_class: str) -> np.ndarray:
    return (frame[target].astype(str) == str(positive_class)).astype(int).to_numpy()


@dataclass
class TrainResult:
    booster: Any
    metadata: dict[str, Any]


def train(
    frame,
    spec: FeatureSpec,
    *,
    target: str,
    positive_class: str,
    dataset: str,
    schema_version: SchemaVersion | None = None,
) -> TrainResult:
    """Train on 80% of the rows (stratified, fixed seed) and evaluate on the other 20%.

    `schema_version`: the version of the schema `spec` was read from (`training.train` reads
    both from one snapshot of the file), recorded in the metadata and hashed into the model's
    version; None only for models trained outside `make train` (some tests, benches).
    """
    import lightgbm as lgb
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, train_test_split

    X = encode_frame(frame, spec)
    y = labels_of(frame, target, positive_class)
    categorical = [i for i, f in enumerate(spec.features) if f.is_categorical]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=SEED
    )

    def fit(X_fit: np.ndarray, y_fit: np.ndarray):
        data = lgb.Dataset(
            X_fit,
            y_fit,
            feature_name=spec.names,
            categorical_feature=categorical,
            free_raw_data=False,
        )
        return lgb.train(PARAMS, data, num_boost_round=NUM_ROUNDS)

    # Cross-validated AUC on the training part: the spread tells how much one split can vary.
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=SEED)
    cv_auc = []
    for fit_idx, val_idx in folds.split(X_train, y_train):
        cv_auc.append(
            roc_auc_score(
                y_train[val_idx], fit(X_train[fit_idx], y_train[fit_idx]).predict(X_train[val_idx])
            )
        )

    booster = fit(X_train, y_train)
    proba = booster.predict(X_test)
    negatives = [v for v in spec.target_values if v != str(positive_class)]
    metadata = {
        "model_type": "lightgbm",
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dataset": dataset,
        "target": target,
        "classes": {
            "positive": str(positive_class),
            "negative": negatives[0] if negatives else "0",
        },
        "schema_version": None if schema_version is None else schema_version.to_dict(),
        "features": spec.to_dict()["features"],
        # The values of the rows the model is fitted on, for the service's unseen-value flag.
        training_values.METADATA_KEY: training_values.to_metadata(
            training_values.seen_in_training(X_train, spec)
        ),
        "params": PARAMS | {"num_boost_round": NUM_ROUNDS},
        "rows": {"train": int(len(y_train)), "test": int(len(y_test))},
        "positive_rate_train": float(y_train.mean()),
        "metrics": {
            "roc_auc": float(roc_auc_score(y_test, proba)),
            "accuracy": float(accuracy_score(y_test, proba >= 0.5)),
            "log_loss": float(log_loss(y_test, proba)),
            "cv_roc_auc_mean": float(np.mean(cv_auc)),
            "cv_roc_auc_std": float(np.std(cv_auc)),
        },
    }
    return TrainResult(booster=booster, metadata=metadata)


def model_version(model_text: str, schema_version: dict[str, Any] | None) -> str:
    """'lgbm-' and 12 hex digits of the SHA-256 of the model text and, when known, of the
    schema's content hash: the same trees trained under another schema (a domain that grew,
    say: LightGBM's text does not change) are another artefact, with other codes."""
    digest = hashlib.sha256(model_text.encode())
    if schema_version is not None:
        digest.update(b"\nschema-sha256:" + str(schema_version["sha256"]).encode())
    return "lgbm-" + digest.hexdigest()[:12]


def save(result: TrainResult, model_dir: Path) -> dict[str, Any]:
    """Write model and metadata atomically; the version is a hash of the model itself (and
    of the schema it was trained with: `model_version`)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    text = result.booster.model_to_string()
    metadata = result.metadata | {
        "version": model_version(text, result.metadata.get("schema_version"))
    }
    for name, content in ((MODEL_FILE, text), (METADATA_FILE, json.dumps(metadata, indent=2))):
        tmp = model_dir / f".{name}.tmp"
        tmp.write_text(content, encoding="utf-8")
        os.replace(tmp, model_dir / name)
    return metadata


# Up to this many rows, LightGBM's single-row API beats one `Booster.predict` call.
SINGLE_ROW_MAX = 8


class SingleRowPredictor:
    """LightGBM's `...SingleRowFast` C API: one row in about 10 µs instead of 30 µs.

    `Booster.predict` spends most of a single row's time in Python-side checks and
    conversions; this calls the library directly (through the ctypes handle the lightgbm
    package itself uses) with a configuration prepared once. The result is the same number
    (a test compares them over the training data). One instance per thread: LightGBM's
    FastConfig must not be used concurrently.
    """

    def __init__(self, booster: Any, num_features: int):
        import ctypes

        from lightgbm.basic import _LIB, _safe_call

        self._lib, self._check = _LIB, _safe_call
        self.num_features = num_features
        self._config = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(0),  # C_API_PREDICT_NORMAL: the probability
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(-1),  # all iterations
                ctypes.c_int(1),  # C_API_DTYPE_FLOAT64
                ctypes.c_int32(num_features),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        self._booster = booster  # the config points into it: keep it alive
        # Our own typed pointer to the function (the package's `_LIB` attributes stay as
        # they are), and fixed buffers: a call is then one copy and one foreign call.
        signature = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
        )
        self._predict = signature(("LGBM_BoosterPredictForMatSingleRowFast", _LIB))
        self._row = np.zeros(num_features, dtype=np.float64)
        self._out = np.zeros(1, dtype=np.float64)
        self._out_len = np.zeros(1, dtype=np.int64)
        self._args = (
            self._config,
            self._row.ctypes.data,
            self._out_len.ctypes.data,
            self._out.ctypes.data,
        )

    def predict(self, row: np.ndarray) -> float:
        if row.shape != (self.num_features,):
            raise ValueError(f"expected {self.num_features} values, got shape {row.shape}")
        self._row[:] = row
        self._check(self._predict(*self._args))
        return float(self._out[0])

    def __del__(self) -> None:
        config = getattr(self, "_config", None)
        if config is not None and config.value:
            self._lib.LGBM_FastConfigFree(config)


def category_maps(metadata: dict[str, Any], spec: FeatureSpec) -> list[tuple[int, np.ndarray]]:
    """How to turn category codes of the serving schema into the model's codes.

    The model keeps the codes of the schema it was trained with (its metadata's `features`);
    a schema approved since may list more categories, or list them in another order. Returns
    (column, table) for each categorical column whose domains differ, where table[serving
    code] is the model's code; a category the model's domain lacks gets a code past its end,
    which no training row had, so LightGBM treats it as any category it never saw. The last
    entry of a table maps a missing value (NaN) to NaN. Empty when the domains are the same.
    """
    trained = {f["name"]: list(f.get("values") or []) for f in metadata.get("features", [])}
    maps = []
    for j, feature in enumerate(spec.features):
        values = trained.get(feature.name)
        if not feature.is_categorical or values is None or list(feature.values) == values:
            continue
        code = {v: i for i, v in enumerate(values)}
        table = [float(code.get(v, len(values))) for v in feature.values] + [math.nan]
        maps.append((j, np.array(table, dtype=np.float64)))
    return maps


@dataclass
class LoadedModel:
    booster: Any
    metadata: dict[str, Any]
    _single: SingleRowPredictor | None = field(default=None, repr=False, compare=False)
    # Which features of a record hold values no training row had (built once per load).
    unseen: training_values.UnseenCheck = field(init=False, repr=False, compare=False)
    _maps: tuple[FeatureSpec, list] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        domains = {f["name"]: f.get("values") or [] for f in self.metadata.get("features", [])}
        self.unseen = training_values.UnseenCheck(
            training_values.from_metadata(self.metadata), domains
        )

    def to_model_codes(self, matrix: np.ndarray, spec: FeatureSpec) -> np.ndarray:
        """`matrix` (encoded with `spec`'s category codes, modified in place) in the model's
        codes (`category_maps`); unchanged, at no cost, when the domains are the same."""
        cached = self._maps
        if cached is None or cached[0] is not spec:
            cached = self._maps = (spec, category_maps(self.metadata, spec))
        for j, table in cached[1]:
            column = matrix[:, j]
            index = np.where(np.isnan(column), len(table) - 1, column).astype(np.intp)
            matrix[:, j] = table[index]
        return matrix

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def positive_label(self) -> str:
        return str(self.metadata["classes"]["positive"])

    @property
    def negative_label(self) -> str:
        return str(self.metadata["classes"]["negative"])

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        """Probability of the positive class; one thread (fast for single rows, fork-safe)."""
        return self.booster.predict(matrix, num_threads=1)

    def predict_rows(self, matrix: np.ndarray) -> list[float]:
        """Like `predict_proba` as plain floats, faster for a few rows (see SingleRowPredictor).

        Must not be called from two threads at once for the same model (the service calls it
        from its event loop only); `predict_proba` has no such limit.
        """
        if len(matrix) > SINGLE_ROW_MAX:
            return self.predict_proba(matrix).tolist()
        if self._single is None:
            self._single = SingleRowPredictor(self.booster, matrix.shape[1])
        return [self._single.predict(row) for row in matrix]

    def label(self, probability: float) -> str:
        return self.positive_label if probability >= 0.5 else self.negative_label


def load(model_dir: Path) -> LoadedModel:
    import lightgbm as lgb

    model_file, meta_file = model_dir / MODEL_FILE, model_dir / METADATA_FILE
    if not model_file.exists() or not meta_file.exists():
        raise ModelNotFoundError(f"no trained model in {model_dir}: run `make train`")
    booster = lgb.Booster(model_str=model_file.read_text(encoding="utf-8"))
    metadata = json.loads(meta_file.read_text(encoding="utf-8"))
    if math.isnan(float(metadata.get("metrics", {}).get("roc_auc", "nan"))):
        raise ModelNotFoundError(f"model metadata in {model_dir} has no ROC AUC")
    # Malformed training values or schema version: ValueError now, not at each request.
    training_values.from_metadata(metadata)
    trained_schema_version(metadata)
    return LoadedModel(booster=booster, metadata=metadata)


# Written once per version: a version is a hash of the model text, so its metadata never
# changes (sql/migrations/0007.model-versions.sql).
RECORD_SQL = """
INSERT INTO model_versions
    (version, trained_at, target, positive_class, positive_rate_train, features, metrics, metadata,
     schema_version, schema_sha256)
VALUES (%(version)s, %(trained_at)s, %(target)s, %(positive_class)s, %(positive_rate_train)s,
        %(features)s, %(metrics)s, %(metadata)s, %(schema_version)s, %(schema_sha256)s)
ON CONFLICT (version) DO NOTHING
"""


def trained_schema_version(metadata: dict[str, Any]) -> SchemaVersion | None:
    """The schema version a model was trained with (metadata.json's `schema_version`); None
    for a model trained before it was recorded. ValueError when malformed."""
    raw = metadata.get("schema_version")
    return None if raw is None else SchemaVersion.from_dict(raw)


def metadata_row(metadata: dict[str, Any]) -> dict[str, Any]:
    """The `model_versions` row of a model's metadata (metadata.json as `train`/`save` write it).

    Raises KeyError/ValueError when the metadata lacks the version, target, positive class or
    training prior (a model.txt from elsewhere): such a model cannot be described to Grafana.
    """
    rate = float(metadata["positive_rate_train"])
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"positive_rate_train {rate} is not a share")
    schema = trained_schema_version(metadata)
    return {
        "schema_version": None if schema is None else schema.version,
        "schema_sha256": None if schema is None else schema.sha256,
        "version": str(metadata["version"]),
        "trained_at": metadata.get("trained_at"),
        "target": str(metadata["target"]),
        "positive_class": str(metadata["classes"]["positive"]),
        "positive_rate_train": rate,
        "features": json.dumps(metadata.get("features", [])),
        "metrics": json.dumps(metadata.get("metrics", {})),
        "metadata": json.dumps(metadata),
    }


def record_metadata(conn, metadata: dict[str, Any]) -> bool:
    """Record a model's metadata in `model_versions` and commit; True if it was new.

    `conn`: an open psycopg2 connection whose role may insert there (the service's, the
    owner's). Raises psycopg2 errors as they come, KeyError/ValueError as `metadata_row`.
    """
    row = metadata_row(metadata)
    with conn.cursor() as cur:
        cur.execute(RECORD_SQL, row)
        new = cur.rowcount == 1
    conn.commit()
    return new
