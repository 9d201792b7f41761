"""The FastAPI application: the factory wires settings, handlers and routers, nothing more.

Run by `make up` as `uvicorn service.main:app` (see service/launch.py). The routes live in
`service/routes/`, the exception handlers in `service/errors.py`, and the model and the
database threads are created per worker in `service/lifespan.py`.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware

from mlsys.config import Settings, get_settings
from mlsys.features import FeatureSpec
from mlsys.schema_versions import SchemaWatch
from service import openapi_docs
from service.auth import Authenticator
from service.config import ServiceSettings, allowed_hosts, get_service_settings
from service.errors import add_exception_handlers
from service.lifespan import lifespan
from service.routes import (
    health,
    model_info,
    past_predictions,
    predict,
    readiness,
    report_index,
    reports,
    schema_proposals,
)


def create_app(
    settings: Settings | None = None,
    service_settings: ServiceSettings | None = None,
    spec: FeatureSpec | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    conf = service_settings or get_service_settings()
    # The schema file as it is at each request (a newly approved version needs no restart);
    # `spec` is the one at start, which the model is checked against when it loads.
    schema = SchemaWatch(settings.schema_path, target=settings.target_column)
    spec = spec or schema.current().feature_spec(settings.target_column)
    app = FastAPI(
        title="mlsys model service",
        version="1",
        description=(
            "Predictions of the model GET /model-info describes, stored exactly once. "
            "Contract: docs/api.md."
        ),
        lifespan=lifespan,
    )
    # Read by the lifespan and the routes; the Authenticator is empty (401) until the lifespan.
    app.state.settings, app.state.conf, app.state.spec = settings, conf, spec
    app.state.schema = schema
    app.state.auth = Authenticator()
    # Only the names the service is reached by (400 otherwise): a web page whose DNS name is
    # rebound to 127.0.0.1 still sends its own name as Host, and is refused.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(conf, settings.api_host))
    add_exception_handlers(app)
    app.include_router(predict.router)
    app.include_router(past_predictions.router)
    app.include_router(health.router)
    app.include_router(model_info.router)
    app.include_router(reports.router)
    app.include_router(report_index.router)
    app.include_router(schema_proposals.router)
    app.include_router(readiness.router)
    openapi_docs.complete(app, schema, conf)
    return app


app = create_app()
