"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

from rag import __version__
from rag.api import errors
from rag.api.routes import ask, documents, health, view, widget
from rag.api.state import RateLimiter, ServiceState
from rag.config import Settings, get_settings
from rag.pipeline import Pipeline


def create_app(settings: Settings | None = None, *, pipeline: Pipeline | None = None) -> FastAPI:
    """Build the app. With ``pipeline`` given (tests), nothing is loaded in the lifespan."""
    settings = settings or get_settings()
    state = ServiceState()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if pipeline is not None:
            state.set_pipeline(pipeline)
        else:
            state.start_loading(lambda: Pipeline.from_settings(settings))
        yield

    app = FastAPI(
        title="rag",
        version=__version__,
        summary="Cited extractive answers from a collection of documents.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.service = state
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute)
    app.add_middleware(GZipMiddleware, minimum_size=1000)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type"],
            max_age=600,
        )
    errors.install(app)
    app.include_router(health.router)
    app.include_router(ask.router)
    app.include_router(view.router)  # before documents: its {id:path} would shadow {id}/view
    app.include_router(documents.router)
    app.include_router(widget.router)
    return app
