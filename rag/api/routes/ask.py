from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends

from rag.api.deps import PipelineDep, StateDep, rate_limit
from rag.api.schemas import AskRequest, AskResponse, ErrorResponse, ask_response
from rag.errors import InvalidFilterError, UnknownDocumentError
from rag.filters import Filters
from rag.pipeline import Pipeline
from rag.types import AskResult

router = APIRouter(prefix="/v1", tags=["questions"])

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorResponse} for code in (400, 422, 429, 503)
}


def _ask(pipeline: Pipeline, body: AskRequest, state: StateDep) -> AskResult:
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
    with state.ask_lock:
        return pipeline.ask(body.question, top_k=body.top_k, filters=filters)


@router.post(
    "/ask",
    response_model=AskResponse,
    responses=_ERRORS,
    summary="Answer a question with a verified citation, or abstain",
    dependencies=[Depends(rate_limit)],
)
async def ask(body: AskRequest, pipeline: PipelineDep, state: StateDep) -> AskResponse:
    result = await asyncio.to_thread(_ask, pipeline, body, state)
    return ask_response(result, pipeline.index.documents)
