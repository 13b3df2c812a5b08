from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rag.api.deps import StateDep
from rag.api.observability import Metrics

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Index and models are loaded")
def readyz(state: StateDep) -> dict[str, object]:
    pipeline = state.require()  # 503 with the reason until ready
    manifest = pipeline.index.manifest
    return {
        "status": "ready",
        "documents": len(pipeline.index.documents),
        "chunks": len(pipeline.index.chunks),
        "embedding_model": manifest.embedding_model,
        "reader": pipeline.components.reader.name,
        # RAG_RERANKER, and the sha256 of the model file it checked and runs (None: none).
        "reranker": {
            "name": pipeline.components.reranker.name,
            "model_sha256": pipeline.components.reranker.model_sha256,
        },
        "index_built": manifest.created_at,
        "index_version": pipeline.index.version,
        "index_swaps": state.swaps,
        # The newest published version, when it failed to load (the previous is served).
        "index_reload_error": state.reload_error.code if state.reload_error else None,
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(request: Request) -> Response:
    registry: Metrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
