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
    """Version, metrics and the features (the UI builds its form from them), from the schema
    file as it is now (`schema`: its version; a newly approved one needs no restart), and the
    schema the model was trained with (`trained_schema`, from its artefact)."""
    state = request.app.state
    loaded = state.models.get()
    meta = loaded.metadata
    schema = state.schema.current()
    return json_response(
        {
            "version": loaded.version,
            "trained_at": meta.get("trained_at"),
            "metrics": meta.get("metrics", {}),
            "target": state.spec.target,
            "classes": meta.get("classes"),
            "features": schema.feature_spec(state.schema.target).to_dict()["features"],
            "schema": _described(schema.version),
            # null: a model trained before versions were recorded (run `make train`). When it
            # differs from `schema`, values approved since training are in `unseen_features`.
            "trained_schema": _described(trained_schema_version(meta)),
        }
    )
