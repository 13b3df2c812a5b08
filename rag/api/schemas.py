"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rag.types import AskResult, Document, Passage


class AskFilters(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[str] | None = Field(default=None, description="Only these document ids.")
    date_from: str | None = Field(
        default=None, description="YYYY-MM-DD, inclusive.", json_schema_extra={"format": "date"}
    )
    date_to: str | None = Field(
        default=None, description="YYYY-MM-DD, inclusive.", json_schema_extra={"format": "date"}
    )


class AskRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"question": "By what date did the minister want a reply?", "top_k": 5}]
        },
    )

    question: str = Field(
        # Not blank; its longest length (RAG_MAX_QUESTION_CHARS) is set in the app's schema.
        pattern=r"\S",
        description="A question in plain English.",
    )
    top_k: int = Field(default=5, ge=1, le=50, description="Passages to retrieve and return.")
    filters: AskFilters | None = None

    @field_validator("question")
    @classmethod
    def _encodable(cls, value: str) -> str:
        """JSON may escape a lone surrogate (a truncated emoji): it is not text. Refused
        here (422) instead of failing later in the models or the response (500)."""
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                "the question holds invalid text (a lone surrogate: a character cut in half?)"
            ) from None
        return value


class SentenceOut(BaseModel):
    text: str
    start: int
    end: int


class AnswerOut(BaseModel):
    text: str
    score: float = Field(description="Calibrated score in [0, 1]: higher is more often right.")
    document_id: str
    document_title: str
    document_date: str | None
    start: int = Field(description="document_text[start:end] == text")
    end: int
    page: int | None
    sentence: SentenceOut


class PassageOut(BaseModel):
    id: str
    document_id: str
    document_title: str
    text: str
    start: int
    end: int
    page: int | None
    score: float
    stage_scores: dict[str, float]


class AskResponse(BaseModel):
    question: str
    answer: AnswerOut | None
    abstained: bool
    passages: list[PassageOut]
    timings_ms: dict[str, float]
    #: Passages the reader read before the answer was settled (at most RAG_READ_PASSAGES).
    passages_read: int


class DocumentSummary(BaseModel):
    id: str
    title: str
    date: str | None
    author: str | None
    authors: list[str]
    recipients: list[str]
    pages: int | None
    chars: int
    format: str


class DocumentOut(DocumentSummary):
    copied_to: list[str]
    references: list[str]
    source_path: str
    size: int
    sha256: str
    text: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[dict[str, object]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def passage_out(passage: Passage, documents: Mapping[str, Document]) -> PassageOut:
    chunk = passage.chunk
    doc = documents[chunk.document_id]
    return PassageOut(
        id=chunk.id,
        document_id=chunk.document_id,
        document_title=doc.title,
        text=chunk.text,
        start=chunk.start,
        end=chunk.end,
        page=doc.page_at(chunk.start),
        score=round(passage.score, 6),
        stage_scores={k: round(v, 6) for k, v in passage.stage_scores.items()},
    )


def ask_response(result: AskResult, documents: Mapping[str, Document]) -> AskResponse:
    answer = None
    if result.answer is not None:
        c = result.answer.citation
        answer = AnswerOut(
            text=result.answer.text,
            score=result.answer.score,
            document_id=c.document_id,
            document_title=c.document_title,
            document_date=c.document_date,
            start=c.start,
            end=c.end,
            page=c.page,
            sentence=SentenceOut(text=c.sentence_text, start=c.sentence.start, end=c.sentence.end),
        )
    return AskResponse(
        question=result.question,
        answer=answer,
        abstained=result.abstained,
        passages=[passage_out(p, documents) for p in result.passages],
        timings_ms=result.timings_ms,
        passages_read=result.passages_read,
    )


def document_summary(doc: Document) -> DocumentSummary:
    return DocumentSummary.model_validate(_summary_fields(doc))


def document_out(doc: Document) -> DocumentOut:
    meta = doc.metadata
    return DocumentOut.model_validate(
        {
            **_summary_fields(doc),
            "copied_to": meta.copied_to,
            "references": meta.references,
            "source_path": doc.source_path,
            "size": doc.size,
            "sha256": doc.sha256,
            "text": doc.text,
        }
    )


def _summary_fields(doc: Document) -> dict[str, object]:
    meta = doc.metadata
    return {
        "id": doc.id,
        "title": doc.title,
        "date": doc.date,
        "author": "; ".join(meta.authors) or None,
        "authors": meta.authors,
        "recipients": meta.recipients,
        "pages": doc.pages,
        "chars": len(doc.text),
        "format": doc.format,
    }
