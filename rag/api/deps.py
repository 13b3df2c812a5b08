"""Dependencies of the routes: the ready pipeline, the settings, the question gate."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from rag.api.limits import AskGate
from rag.api.state import ServiceState
from rag.config import Settings
from rag.pipeline import Pipeline


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pipeline(state: Annotated[ServiceState, Depends(get_state)]) -> Pipeline:
    """The pipeline being served now; the request keeps it even if a new index swaps in."""
    return state.require()


def get_gate(request: Request) -> AskGate:
    gate: AskGate = request.app.state.ask_gate
    return gate


StateDep = Annotated[ServiceState, Depends(get_state)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
GateDep = Annotated[AskGate, Depends(get_gate)]
