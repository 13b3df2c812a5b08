from __future__ import annotations

from fastapi import APIRouter

from rag.api.deps import PipelineDep
from rag.api.schemas import (
    DocumentOut,
    DocumentSummary,
    ErrorResponse,
    document_out,
    document_summary,
)

router = APIRouter(prefix="/v1/documents", tags=["documents"])


@router.get("", response_model=list[DocumentSummary], summary="Every indexed document")
def list_documents(pipeline: PipelineDep) -> list[DocumentSummary]:
    return [document_summary(d) for d in pipeline.index.documents.values()]


@router.get(
    "/{document_id:path}",
    response_model=DocumentOut,
    responses={404: {"model": ErrorResponse}, 503: {"model": ErrorResponse}},
    summary="One document: metadata and the full stored text",
)
def get_document(document_id: str, pipeline: PipelineDep) -> DocumentOut:
    return document_out(pipeline.index.document(document_id))
