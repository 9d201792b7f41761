"""The FastAPI application: routes wire HTTP to `service.predictions`, nothing more.

Run by `make up` as `uvicorn service.main:app` (see service/launch.py). The model and the
database threads are created in the lifespan, i.e. inside each worker after it started, never
before a fork (LightGBM + OpenMP can hang in a forked child).
"""

# No `from __future__ import annotations`: FastAPI must evaluate the route signatures,
# whose Query descriptions use values known only inside create_app().

import gc
import logging
import re
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import ClientDisconnect

from mlsys import api_auth
from mlsys.api_auth import Role
from mlsys.config import Settings, get_settings
from mlsys.features import FeatureSpec, load_feature_spec
from service import openapi_docs, predictions, report_index, schemas, store
from service.auth import Authenticator, AuthError, Credentials, load_report_key, load_tokens
from service.config import ServiceSettings, allowed_hosts, get_service_settings
from service.db import Database, DatabaseUnavailable
from service.group_commit import GroupWriter
from service.model_store import ModelStore, ModelUnavailable
from service.validation import FieldError, RecordValidator, RequestError, shown

log = logging.getLogger("service")
# A report is a plain file name written by the ingestion DAG; anything else is a 404.
REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.html$")
ERRORS = {
    413: {"model": schemas.ErrorResponse, "description": "body over MAX_BODY_BYTES"},
    415: {"model": schemas.ErrorResponse, "description": "no Content-Type, or not JSON"},
    422: {"model": schemas.ErrorResponse, "description": "invalid request; nothing was stored"},
    503: {
        "model": schemas.ErrorResponse,
        "description": "database or model unavailable (unreachable, full, or not answering "
        "within API_DB_REQUEST_TIMEOUT_S)",
    },
}
AUTH_ERRORS = {
    401: {"model": schemas.ErrorResponse, "description": "no credential, or not a valid one"},
    403: {"model": schemas.ErrorResponse, "description": "the credential's role may not do this"},
}
# Reports are HTML written from data files: whatever a bad row holds, the browser runs no
# script, loads nothing, submits nothing and shows the page in no frame.
REPORT_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a signed link must not leak to another site
    "Cache-Control": "private, no-store",
}
IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "webapp only: the same key sent again with the same records returns the predictions "
        "stored the first time (`already_stored`), never storing them twice"
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
}


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The body, refusing non-JSON content types and anything over `max_bytes` (counted)."""
    ctype = request.headers.get("content-type")
    if ctype is None:
        # Required: a body without one is what a web page can post cross-site without a CORS
        # preflight (a "simple request"); with application/json the browser must ask first.
        raise RequestError(
            415,
            "the request has no Content-Type: send the records as JSON with "
            "Content-Type: application/json",
        )
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise RequestError(
            415,
            f"Content-Type {media[:100]!r} is not accepted: send the records as JSON "
            "(Content-Type: application/json), never a file upload or a form",
        )

    def too_big() -> RequestError:
        return RequestError(
            413,
            f"the body is over the limit of {max_bytes} bytes (MAX_BODY_BYTES): send smaller batches",
        )

    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_big()
    # ASGI messages read directly (Request.stream() adds a generator per request).
    chunks, size, more = [], 0, True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_bytes:
            raise too_big()
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def create_app(
    settings: Settings | None = None,
    service_settings: ServiceSettings | None = None,
    spec: FeatureSpec | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    conf = service_settings or get_service_settings()
    spec = spec or load_feature_spec(settings.schema_path, target=settings.target_column)
    validator = RecordValidator(spec)
    limits = predictions.Limits(
        max_records=conf.max_batch_records,
        batch_threads=conf.batch_predict_threads,
        inline_max_body_bytes=conf.inline_max_body_bytes,
    )
    auth = Authenticator()
    can_predict = Depends(auth.require(api_auth.PREDICT, "store predictions"))
    can_read_past = Depends(auth.require(api_auth.PAST_PREDICTIONS, "read past predictions"))
    can_read_model = Depends(auth.require(api_auth.MODEL_INFO, "read the model's description"))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Refuses to start without every role's token (SecretError names the variable).
        auth.load(load_tokens(settings.var_dir), load_report_key(settings.var_dir))
        models = ModelStore(settings.model_dir, spec, retry_s=conf.model_retry_s)
        models.load()
        db = Database(
            settings.database_url,
            pool_size=conf.db_pool_size,
            connect_timeout_s=conf.db_connect_timeout_s,
            statement_timeout_ms=conf.db_statement_timeout_ms,
            synchronous_commit=conf.db_synchronous_commit,
            request_timeout_s=conf.db_request_timeout_s,
        )
        writer = GroupWriter(
            settings.database_url,
            max_group_rows=conf.group_max_rows,
            connect_timeout_s=conf.db_connect_timeout_s,
            statement_timeout_ms=conf.db_statement_timeout_ms,
            synchronous_commit=conf.db_synchronous_commit,
            request_timeout_s=conf.db_request_timeout_s,
        )
        app.state.models, app.state.db = models, db
        app.state.predictor = predictions.Predictor(
            validator=validator, models=models, db=db, writer=writer, limits=limits
        )
        # Everything loaded so far (FastAPI, LightGBM, pandas pulled in by it) lives as long
        # as the process: keep it out of the cyclic GC, whose full passes over it would show
        # up as latency spikes.
        gc.freeze()
        try:
            yield
        finally:
            await writer.close()
            db.close()

    app = FastAPI(
        title="mlsys model service",
        version="1",
        description="Credit-risk predictions, stored exactly once. Contract: docs/api.md.",
        lifespan=lifespan,
    )
    # Only the names the service is reached by (400 otherwise): a web page whose DNS name is
    # rebound to 127.0.0.1 still sends its own name as Host, and is refused.
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(conf, settings.api_host))

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, exc: AuthError) -> Response:
        answer = json_response({"detail": exc.detail}, exc.status)
        answer.headers.update(exc.headers)
        return answer

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> Response:
        return json_response(exc.to_dict(), exc.status)

    @app.exception_handler(DatabaseUnavailable)
    async def _db_down(request: Request, exc: DatabaseUnavailable) -> Response:
        log.warning("503: %s", exc)
        if request.method != "POST":
            after = "retry later"
        elif exc.maybe_stored:
            after = (
                "the predictions may or may not be stored: a scheduled call can simply be sent"
                " again (it is idempotent); check GET /past-predictions before resending others"
            )
        else:
            after = "nothing was stored, retry later"
        return json_response({"detail": f"{exc}; {after}"}, 503)

    @app.exception_handler(ModelUnavailable)
    async def _no_model(request: Request, exc: ModelUnavailable) -> Response:
        return json_response({"detail": f"no model available: {exc}"}, 503)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> Response:
        # A bug, never the client's input: keep the JSON shape and log the traceback.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return json_response(
            {"detail": f"internal error ({type(exc).__name__}), logged by the service"}, 500
        )

    @app.exception_handler(RequestValidationError)
    async def _bad_params(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            FieldError(
                None, str(e["loc"][-1]) if e.get("loc") else None, shown(e.get("input")), e["msg"]
            )
            for e in exc.errors()
        ]
        fields = ", ".join(str(e.field) for e in errors)
        return json_response(
            RequestError(422, f"invalid request parameters: {fields}", errors).to_dict(), 422
        )

    @app.post(
        "/predict",
        response_model=schemas.PredictResponse,
        responses={**ERRORS, **AUTH_ERRORS,
                   400: {"model": schemas.ErrorResponse, "description": "malformed JSON, a duplicate key, nesting over 200, invalid UTF-8 or a lone surrogate; an unknown Host"},
                   409: {"model": schemas.ErrorResponse, "description": "scheduled rows stored with other features, or an Idempotency-Key used for other records"}},
        openapi_extra={
            "parameters": [IDEMPOTENCY_HEADER],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": openapi_docs.predict_request_schema(spec, conf.max_batch_records),
                        "examples": openapi_docs.predict_examples(spec),
                    }
                },
            }
        },
        summary="Predict one record or a batch, and store every prediction",
    )  # fmt: skip
    async def predict(request: Request, role: Annotated[Role, can_predict]) -> Response:
        # The body is parsed by us, not by FastAPI: orjson is ~10x faster on a 10k batch, and
        # the 422 must list every record's problems in our own shape. The role's sources are
        # checked once the body's source is known (403, nothing stored).
        key = predictions.check_idempotency_key(request.headers.get("idempotency-key"))
        body = await read_body(request, conf.max_body_bytes)
        result = await request.app.state.predictor.predict(
            body, sources=api_auth.PREDICT_SOURCES[role], idempotency_key=key
        )
        return json_response(result)

    @app.get(
        "/past-predictions",
        response_model=schemas.PastPredictions,
        responses={**AUTH_ERRORS, 422: ERRORS[422], 503: ERRORS[503]},
        summary="Stored predictions, newest first, filtered by time and source",
        dependencies=[can_read_past],
    )
    async def past_predictions(
        request: Request,
        start: Annotated[
            str | None,
            Query(
                description="ISO date or datetime, inclusive; no zone means UTC",
                examples=["2026-11-01"],
            ),
        ] = None,
        end: Annotated[
            str | None,
            Query(
                description="ISO date (the whole day is included) or datetime (inclusive)",
                examples=["2026-11-30"],
            ),
        ] = None,
        # The enum and the bounds are for the OpenAPI document (and the fuzzer that reads it);
        # past_query checks them, with the answers' {detail, errors} shape.
        source: Annotated[
            str,
            Query(
                description="webapp, scheduled or all",
                json_schema_extra={"enum": list(predictions.PAST_SOURCES)},
            ),
        ] = "all",
        limit: Annotated[
            int,
            Query(
                description=f"page size, at most {conf.past_predictions_max_limit}",
                json_schema_extra={"minimum": 1, "maximum": conf.past_predictions_max_limit},
            ),
        ] = 100,
        cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    ) -> Response:
        query = predictions.past_query(
            start=start, end=end, source=source, limit=limit, cursor=cursor,
            max_limit=conf.past_predictions_max_limit,
        )  # fmt: skip
        db = request.app.state.db
        return json_response(await db.call(predictions.past_predictions, db, query))

    @app.get("/health", response_model=schemas.Health, responses={503: {"model": schemas.Health}})
    async def health(request: Request) -> Response:
        """Database and model reachable: 200; otherwise 503 saying which is not."""
        state = request.app.state
        try:
            model = state.models.get().version
        except ModelUnavailable as exc:
            model = f"unavailable: {exc}"
        try:
            await state.db.call(state.db.transaction, store.ping, timeout_s=conf.health_timeout_s)
            database = "ok"
        except DatabaseUnavailable as exc:
            database = f"unavailable: {exc}"
        ok = database == "ok" and not model.startswith("unavailable")
        body = {"status": "ok" if ok else "unavailable", "database": database, "model": model}
        return json_response(body, 200 if ok else 503)

    @app.get(
        "/livez", summary="The process answers (no database, no model): for benchmarks and probes"
    )
    async def livez() -> Response:
        return json_response({"status": "alive"})

    @app.get(
        "/model-info", responses={**AUTH_ERRORS, 503: ERRORS[503]}, dependencies=[can_read_model]
    )
    async def model_info(request: Request) -> Response:
        """Version, metrics and the features (the UI builds its form from them)."""
        loaded = request.app.state.models.get()
        meta = loaded.metadata
        return json_response(
            {
                "version": loaded.version,
                "trained_at": meta.get("trained_at"),
                "metrics": meta.get("metrics", {}),
                "target": spec.target,
                "classes": meta.get("classes"),
                "features": spec.to_dict()["features"],
            }
        )

    @app.get(
        "/reports/{name}",
        response_class=FileResponse,
        responses={**AUTH_ERRORS, 404: {"description": "no such report"}},
    )
    async def report(
        name: str,
        credentials: Credentials,
        expires: Annotated[
            str | None, Query(description="signed link: expiry, Unix seconds")
        ] = None,
        sig: Annotated[
            str | None, Query(description="signed link: HMAC of name and expiry")
        ] = None,
    ) -> Response:
        """A data-quality report of the ingestion DAG (DATA_DIR/reports/NAME.html), to a bearer
        token of any role or to the signed, expiring link of a Teams alert (docs/api.md)."""
        auth.report_allowed(credentials, name, expires, sig, api_auth.REPORTS)
        folder = settings.reports_dir.resolve()
        path = (folder / name).resolve() if REPORT_NAME.match(name) else None
        if path is None or path.parent != folder or not path.is_file():
            return json_response({"detail": f"no report named {name[:100]!r}"}, 404)
        return FileResponse(path, media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)

    app.include_router(report_index.router)
    return app


app = create_app()
