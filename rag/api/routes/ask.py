from __future__ import annotations

import asyncio

from fastapi import APIRouter

from rag.api.deps import GateDep, PipelineDep
from rag.api.schemas import AskRequest, AskResponse, ErrorResponse, ask_response
from rag.errors import InvalidFilterError, UnknownDocumentError
from rag.filters import Filters
from rag.pipeline import Pipeline
from rag.types import AskResult

router = APIRouter(prefix="/v1", tags=["questions"])

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 413, 422, 429, 503)
}


def _ask(pipeline: Pipeline, body: AskRequest) -> AskResult:
    filters = None
    if body.filters is not None:
        try:
            filters = Filters.create(
                body.filters.documents, body.filters.date_from, body.filters.date_to
            )
            filters.select(pipeline.index.documents)
        except UnknownDocumentError as exc:
            raise InvalidFilterError(
                f"unknown document id in filters: {exc.document_id!r}"
            ) from None
    return pipeline.ask(body.question, top_k=body.top_k, filters=filters)


@router.post(
    "/ask",
    response_model=AskResponse,
    responses=_ERRORS,
    summary="Answer a question with a verified citation, or abstain",
    description=(
        "At most `RAG_ASK_CONCURRENCY` questions are answered at once and `RAG_ASK_QUEUE` "
        "wait for a turn; past that the answer is an immediate 503 `overloaded` with "
        "`Retry-After`."
    ),
)
async def ask(body: AskRequest, pipeline: PipelineDep, gate: GateDep) -> AskResponse:
    # ``pipeline`` was taken when the request arrived: a new index swapped in meanwhile
    # does not change the version this answer comes from.
    async with gate.slot():
        result = await asyncio.to_thread(_ask, pipeline, body)
    return ask_response(result, pipeline.index.documents)
