"""The model as the service holds it: loaded inside each worker, checked against the schema.

A missing or mismatched model does not stop the service from starting: `/health` says what is
wrong and `/predict` answers 503, and the service retries loading (at most every
API_MODEL_RETRY_S seconds), so that `make train` is enough to bring predictions back.

A model that loads is recorded in the database's `model_versions` (its metadata.json), so
that Grafana reads the training prior of the model behind each prediction.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from mlsys import model as mlmodel
from mlsys.features import FeatureSpec

log = logging.getLogger("service.model_store")
RECORD_CONNECT_TIMEOUT_S = 5


class ModelUnavailable(RuntimeError):
    """No usable model: the message says why (missing, unreadable, other features)."""


def check_matches_spec(metadata: dict, spec: FeatureSpec) -> None:
    """The model must have been trained on the features we serve, of the same kinds.

    Their categories may differ: a schema approved after training may add categories (or
    order them otherwise); the model keeps its own codes (`LoadedModel.to_model_codes`) and
    the predictions of a category it never saw are flagged (`mlsys.training_values`).
    """
    trained = [(f["name"], f["kind"]) for f in metadata.get("features", [])]
    serving = [(f.name, f.kind.value) for f in spec.features]
    if trained != serving:
        trained_names = [t[0] for t in trained]
        if trained_names != spec.names:
            why = f"features {trained_names} differ from the schema's {spec.names}"
        else:
            why = "the kinds of some features differ from the schema's"
        raise ModelUnavailable(
            f"the model was trained on another feature spec ({why}): run `make train`"
        )


class ModelStore:
    def __init__(
        self, model_dir: Path, spec: FeatureSpec, *, retry_s: float, database_url: str | None = None
    ):
        self.model_dir = model_dir
        self.database_url = database_url  # where to record a loaded model; None: nowhere
        self.spec = spec
        self.retry_s = retry_s
        self._model: mlmodel.LoadedModel | None = None
        self._error = "not loaded yet"
        self._last_try = -float("inf")
        self._lock = threading.Lock()

    def load(self) -> None:
        try:
            loaded = mlmodel.load(self.model_dir)
            check_matches_spec(loaded.metadata, self.spec)
        # Any failure (missing file, corrupt text, LightGBM error, other features) means the
        # same thing to a client, "no usable model", and its message says which.
        except Exception as exc:
            self._error = str(exc) or type(exc).__name__
            self._model = None
        else:
            self._model, self._error = loaded, ""
            self._record(loaded.metadata)
        self._last_try = time.monotonic()

    def _record(self, metadata: dict) -> None:
        """Record the model in `model_versions`. A database that is down does not stop the
        model from serving (predictions then fail with 503 anyway); the next start records it."""
        if self.database_url is None:
            return
        import psycopg2

        from mlsys.db import psycopg2_dsn

        try:
            conn = psycopg2.connect(
                psycopg2_dsn(self.database_url), connect_timeout=RECORD_CONNECT_TIMEOUT_S
            )
            try:
                mlmodel.record_metadata(conn, metadata)
            finally:
                conn.close()
        except (psycopg2.Error, KeyError, ValueError) as exc:
            log.warning("model %s not recorded in model_versions: %s", metadata.get("version"), exc)

    def get(self) -> mlmodel.LoadedModel:
        """The loaded model, or `ModelUnavailable` (after a retry if the last one is old)."""
        model = self._model
        if model is not None:
            return model
        with self._lock:
            if self._model is None and time.monotonic() - self._last_try >= self.retry_s:
                self.load()
            if self._model is None:
                raise ModelUnavailable(self._error)
            return self._model
