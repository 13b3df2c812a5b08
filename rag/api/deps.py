"""Dependencies of the routes: the ready pipeline, the settings, the rate limiter."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rag.api.state import RateLimiter, ServiceState
from rag.config import Settings
from rag.pipeline import Pipeline


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pipeline(state: Annotated[ServiceState, Depends(get_state)]) -> Pipeline:
    return state.require()


def rate_limit(request: Request) -> None:
    limiter: RateLimiter = request.app.state.rate_limiter
    limiter.check(request.client.host if request.client else "unknown")


StateDep = Annotated[ServiceState, Depends(get_state)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
