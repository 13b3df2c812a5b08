"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import swagger_ui_bundle
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from rag import __version__
from rag.api import errors
from rag.api.limits import (
    AskGate,
    BodyLimitMiddleware,
    RateLimiter,
    RateLimitMiddleware,
    parse_networks,
)
from rag.api.observability import Metrics, RequestContextMiddleware
from rag.api.reindex import ReindexJob
from rag.api.routes import admin, ask, documents, health, view, widget
from rag.api.state import ServiceState
from rag.config import Settings, get_settings
from rag.pipeline import Pipeline
from rag.reader.model_source import ModelSource

#: Swagger UI's files, from the swagger-ui-bundle-v2 package: /docs works offline.
SWAGGER_ASSETS = "/docs-assets"


def create_app(settings: Settings | None = None, *, pipeline: Pipeline | None = None) -> FastAPI:
    """Build the app. With ``pipeline`` given (tests), nothing is loaded in the lifespan
    and the index folder is not watched."""
    settings = settings or get_settings()
    state = ServiceState()
    job = ReindexJob(settings, on_done=state.check_now)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if pipeline is not None:
            state.set_pipeline(pipeline)
        else:
            state.start_loading(
                lambda: Pipeline.from_settings(settings),
                index_dir=Path(settings.index_dir),
                poll_seconds=settings.index_poll_seconds,
            )
        yield
        job.stop()
        state.stop()

    app = FastAPI(
        title="rag",
        version=__version__,
        summary="Cited extractive answers from a collection of documents.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = state
    app.state.reindex = job
    app.state.rate_limiter = RateLimiter(
        settings.rate_limit_per_minute, max_clients=settings.rate_limit_max_clients
    )
    app.state.ask_gate = AskGate.from_settings(settings)
    app.state.metrics = Metrics(lambda: _live_numbers(app))
    # Starlette runs the middleware added last first.
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        limits={admin.UPLOADS: settings.max_file_bytes},
    )
    app.add_middleware(
        RateLimitMiddleware,
        limiter=app.state.rate_limiter,
        trusted=parse_networks(settings.trusted_proxies),
    )
    if settings.cors_origins:
        # Outside the limits: a refusal (429, 413) carries the CORS headers, so a page on
        # another site sees the refusal itself and not a network error; preflights are
        # answered here and cost no part of a client's rate limit.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
            # A page on another site may read only the headers listed here: the widget
            # waits as long as a 503's or 429's Retry-After asks.
            expose_headers=["Retry-After", "X-Request-ID"],
            max_age=600,
        )
    # Outermost: every request gets an id, a log line and its metrics, refused ones too.
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(ask.router)
    app.include_router(view.router)  # before documents: its {id:path} would shadow {id}/view
    app.include_router(documents.router)
    app.include_router(widget.router)
    if admin.enabled(settings):  # unset: the admin routes do not exist
        app.include_router(admin.router)
    _install_docs(app)
    _document_limits(app, settings)
    return app


def _document_limits(app: FastAPI, settings: Settings) -> None:
    """Put the configured question length into the OpenAPI schema (it is a setting)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            question = schema["components"]["schemas"]["AskRequest"]["properties"]["question"]
            question["maxLength"] = settings.max_question_chars
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def _live_numbers(app: FastAPI) -> dict[str, object]:
    state: ServiceState = app.state.service
    gate: AskGate = app.state.ask_gate
    limiter: RateLimiter = app.state.rate_limiter
    pipeline = state.pipeline
    model = getattr(pipeline.components.reader, "model", None) if pipeline is not None else None
    batches = model.qa.batcher.stats() if isinstance(model, ModelSource) else None
    return {
        "version": pipeline.index.version if pipeline is not None else None,
        "documents": len(pipeline.index.documents) if pipeline is not None else 0,
        "swaps": state.swaps,
        "in_flight": gate.in_flight,
        "waiting": gate.waiting,
        "queue_limit": gate.queue,
        "service_seconds": gate.service.seconds,
        "overloaded": gate.rejected,
        "rate_limited": limiter.rejected,
        "qa_batches": batches.batches if batches else 0,
        "qa_batched_questions": batches.jobs if batches else 0,
    }


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at /docs with its scripts and styles served by the service itself."""
    app.mount(
        SWAGGER_ASSETS,
        StaticFiles(directory=Path(swagger_ui_bundle.swagger_ui_path)),
        name="docs-assets",
    )

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} – API documentation",
            swagger_js_url=f"{root}{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_ASSETS}/favicon-32x32.png",
        )
