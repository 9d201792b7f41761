"""GET /model-info: the loaded model's version, the schema versions, metrics and features."""

# No `from __future__ import annotations`: FastAPI evaluates the route signatures.

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mlsys import api_auth
from mlsys.model import trained_schema_version
from mlsys.schema_versions import SchemaVersion
from service.auth import require
from service.responses import AUTH_ERRORS, ERRORS, json_response

router = APIRouter()


def _described(version: SchemaVersion | None) -> dict | None:
    return None if version is None else version.to_dict() | {"short": version.short}


@router.get(
    "/model-info",
    responses={**AUTH_ERRORS, 503: ERRORS[503]},
    dependencies=[Depends(require(api_auth.MODEL_INFO, "read the model's description"))],
)
async def model_info(request: Request) -> Response:
    """Version, the schema it was trained with and the one validating requests, metrics and
    the features (the UI builds its form from them)."""
    state = request.app.state
    loaded = state.models.get()
    meta = loaded.metadata
    return json_response(
        {
            "version": loaded.version,
            "trained_at": meta.get("trained_at"),
            # null: a model trained before versions were recorded (run `make train`).
            "trained_schema_version": _described(trained_schema_version(meta)),
            # The schema that validates requests now; when it differs from the one above,
            # categories approved since training are flagged in `unseen_features`.
            "serving_schema_version": _described(state.schema_version),
            "metrics": meta.get("metrics", {}),
            "target": state.spec.target,
            "classes": meta.get("classes"),
            "features": state.spec.to_dict()["features"],
        }
    )
