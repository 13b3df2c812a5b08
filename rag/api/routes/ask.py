from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request

from rag.api.deps import GateDep, PipelineDep, SettingsDep
from rag.api.observability import Metrics
from rag.api.schemas import AskRequest, AskResponse, ErrorResponse, ask_response
from rag.errors import InvalidFilterError, InvalidQuestionError, UnknownDocumentError
from rag.filters import Filters
from rag.pipeline import Pipeline
from rag.types import AskResult

log = logging.getLogger("rag.ask")

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
            pipeline.index.document_catalog.select(filters)  # refuses an unknown id
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
        "At most `RAG_ASK_CONCURRENCY` questions are answered at once, and as many wait "
        "for a turn as the service answers within `RAG_ASK_WAIT_BUDGET_SECONDS` at its "
        "measured pace; past that the answer is an immediate 503 `overloaded` with "
        "`Retry-After`, the seconds the questions ahead need."
    ),
)
async def ask(
    body: AskRequest,
    pipeline: PipelineDep,
    gate: GateDep,
    settings: SettingsDep,
    request: Request,
) -> AskResponse:
    limit = settings.max_question_chars
    if len(body.question) > limit:  # as sent: the schema's maxLength
        raise InvalidQuestionError(
            f"the question is {len(body.question)} characters long; the limit is {limit}"
        )
    # ``pipeline`` was taken when the request arrived: a new index swapped in meanwhile
    # does not change the version this answer comes from.
    async with gate.slot():
        result = await asyncio.to_thread(_ask, pipeline, body)
    metrics: Metrics = request.app.state.metrics
    metrics.observe_answer(result)
    best = result.answer if result.answer is not None else result.rejected
    fields: dict[str, object] = {
        "abstained": result.abstained,
        "score": best.score if best is not None else None,
        "document_id": result.answer.citation.document_id if result.answer else None,
        "index_version": pipeline.index.version,
        "ms": result.timings_ms.get("total"),
    }
    if settings.log_questions:  # off by default: the subject matter may be sensitive
        fields["question"] = result.question
    log.info("answered" if result.answer else "abstained", extra={"fields": fields})
    return ask_response(result, pipeline.index.documents)
