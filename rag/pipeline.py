"""Composes the stages for one question: validate, analyse, retrieve, rerank, read, verify,
decide.

Nothing else lives here: every stage is its own module. The API, the CLI and the
evaluation harness all call ``Pipeline.ask``, so what is measured is what is served.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from rag.annotate import Annotator
from rag.config import ReaderKind, RetrievalMode, Settings
from rag.embedding import Embedder, build_embedder, embed_queries
from rag.errors import CitationError, InvalidQuestionError
from rag.filters import Filters
from rag.reader.base import Candidate, ReadContext, Reader, ScoredCandidate
from rag.reader.by_need import read_schedule, until_settled
from rag.reader.compose import ScoredReader, build_reader
from rag.reader.model_source import ModelSource
from rag.reader.question import analyse
from rag.rerank import NoReranker, Reranker, build_reranker
from rag.retrieve import RetrievalSettings, Retriever
from rag.store.index import Index
from rag.types import Answer, AskResult, Citation, Passage, Span

log = logging.getLogger(__name__)


def validate_question(question: str, max_chars: int) -> str:
    """The question with surrounding whitespace removed, or a clear error."""
    if not isinstance(question, str):
        raise InvalidQuestionError("the question must be a string")
    text = " ".join(question.split())
    if not text:
        raise InvalidQuestionError("the question is empty")
    if len(text) > max_chars:
        raise InvalidQuestionError(
            f"the question is {len(text)} characters long; the limit is {max_chars}"
        )
    return text


@dataclass(slots=True)
class Components:
    """Loaded models and index; built once (in the app's lifespan or a CLI command)."""

    index: Index
    embedder: Embedder
    annotator: Annotator
    reader: Reader
    #: Reorders the retrieved passages before the reader reads them (RAG_RERANKER).
    reranker: Reranker = field(default_factory=NoReranker)


def make_reader(
    settings: Settings, kind: ReaderKind | None = None, *, model: ModelSource | None = None
) -> ScoredReader:
    """The configured reader (or ``kind``); ``model`` shares an already loaded QA model."""
    return build_reader(settings, kind, model=model)


def load_components(
    settings: Settings, *, reader: Reader | None = None, reranker: Reranker | None = None
) -> Components:
    """Load the index and every model, verifying the index against the configured model.

    The reranker loads first: a missing package or a wrong model file is refused before
    the seconds the other models take.
    """
    index = Index.from_settings(settings)
    reranker = reranker or build_reranker(settings)
    reranker.warm_up()
    embedder = build_embedder(settings.embedding_model)
    annotator = Annotator(settings.spacy_model)
    reader = reader or make_reader(settings)
    embedder.warm_up()
    annotator.warm_up()
    reader.warm_up()
    return Components(
        index=index, embedder=embedder, annotator=annotator, reader=reader, reranker=reranker
    )


def verify_citation(index: Index, candidate: Candidate | ScoredCandidate) -> Citation:
    """Build the citation and check it against the stored text; never trust a reader."""
    doc = index.document(candidate.document_id)
    if not (0 <= candidate.start < candidate.end <= len(doc.text)):
        raise CitationError(f"offsets out of range for {doc.id}")
    if doc.text[candidate.start : candidate.end] != candidate.text:
        raise CitationError(f"answer text differs from {doc.id}[{candidate.start}:{candidate.end}]")
    sentence = candidate.sentence
    if not sentence.contains(Span(candidate.start, candidate.end)):
        sentence = Span(min(sentence.start, candidate.start), max(sentence.end, candidate.end))
    return Citation(
        document_id=doc.id,
        document_title=doc.title,
        document_date=doc.date,
        start=candidate.start,
        end=candidate.end,
        page=doc.page_at(candidate.start),
        sentence=sentence,
        sentence_text=doc.text[sentence.start : sentence.end],
    )


class Pipeline:
    """Question in, cited answer (or abstention) out."""

    def __init__(self, settings: Settings, components: Components) -> None:
        self.settings = settings
        self.components = components
        self.retriever = Retriever(
            components.index, components.embedder, RetrievalSettings.from_settings(settings)
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        return cls(settings, load_components(settings))

    @property
    def index(self) -> Index:
        return self.components.index

    @property
    def threshold(self) -> float:
        if self.settings.abstain_threshold is not None:
            return self.settings.abstain_threshold
        return float(getattr(self.components.reader, "threshold", 0.5))

    def ask(
        self,
        question: str,
        *,
        top_k: int | None = None,
        filters: Filters | None = None,
        mode: RetrievalMode | None = None,
        threshold: float | None = None,
    ) -> AskResult:
        started = time.perf_counter()
        timings: dict[str, float] = {}

        def lap(name: str, since: float) -> float:
            now = time.perf_counter()
            timings[name] = round((now - since) * 1000, 2)
            return now

        text = validate_question(question, self.settings.max_question_chars)
        top_k = top_k or self.settings.top_k
        if not 1 <= top_k <= self.settings.max_top_k:
            raise InvalidQuestionError(f"top_k must be between 1 and {self.settings.max_top_k}")
        context, passages = self._context(text, top_k, filters, mode, timings)
        t = time.perf_counter()
        settle = getattr(self.components.reader, "settle", None)
        read, best = until_settled(self._steps(context, timings), settle)
        lap("read", t)
        timings["read"] = round(timings["read"] - timings.get("verify", 0.0), 2)
        timings["total"] = round((time.perf_counter() - started) * 1000, 2)
        cutoff = self.threshold if threshold is None else threshold
        answer = best if best is not None and best.score >= cutoff else None
        return AskResult(
            question=text,
            answer=answer,
            passages=passages[:top_k],
            timings_ms=timings,
            rejected=best if answer is None else None,
            passages_read=read,
        )

    def _steps(
        self, context: ReadContext, timings: dict[str, float] | None = None
    ) -> Iterator[tuple[int, Answer | None]]:
        """Read by need: (passages read, best verified answer) after each step.

        With no fitted stopping rule there is one step, every read passage at once.
        Each step reads the first passages again in one context whose memo keeps the
        model's windows, so only the added passages cost model time. ``timings`` gets
        the time spent verifying citations (``verify``), summed over the steps.
        """
        reader = self.components.reader
        settle = getattr(reader, "settle", None)
        total = len(context.passages)
        steps = read_schedule(settle.first if settle else 0, total) if total else [0]
        for depth in steps:
            candidates = reader.read(replace(context, passages=context.passages[:depth]))
            t = time.perf_counter()
            best = self._first_verified(candidates)
            if timings is not None:
                spent = (time.perf_counter() - t) * 1000
                timings["verify"] = round(timings.get("verify", 0.0) + spent, 2)
            yield depth, best

    def steps(
        self, question: str, filters: Filters | None = None
    ) -> list[tuple[int, Answer | None]]:
        """Every step's best verified answer, unstopped: what ``make fit-settle`` fits the
        stopping bound on (same validation, retrieval and depth as ``ask``)."""
        text = validate_question(question, self.settings.max_question_chars)
        context, _ = self._context(text, self.settings.top_k, filters, None)
        return list(self._steps(context))

    def _context(
        self,
        text: str,
        top_k: int,
        filters: Filters | None,
        mode: RetrievalMode | None,
        timings: dict[str, float] | None = None,
    ) -> tuple[ReadContext, list[Passage]]:
        """What the reader reads, and the passages the client sees (reranked, if so).

        The reader reads ``RAG_READ_PASSAGES`` passages whatever ``top_k`` is: how many
        passages a client asks to see never changes the answer. The reranker reorders
        the first ``RAG_RERANK_DEPTH`` fused passages, which do not depend on ``top_k``
        either (a deeper retrieval only appends passages after them).
        """
        reranker = self.components.reranker
        t0 = time.perf_counter()
        analysed = analyse(text, self.components.annotator.nlp)
        qvec = embed_queries(self.components.embedder, [text])[0]
        t1 = time.perf_counter()
        depth = max(top_k, self.settings.read_passages, reranker.depth)
        passages = self.retriever.retrieve(text, depth, filters, mode, query_vector=qvec)
        t2 = time.perf_counter()
        if reranker.depth:
            passages = reranker.rerank(text, passages)
        read = passages[: self.settings.read_passages]
        if timings is not None:
            timings["analyse"] = round((t1 - t0) * 1000, 2)
            timings["retrieve"] = round((t2 - t1) * 1000, 2)
            if reranker.depth:
                timings["rerank"] = round((time.perf_counter() - t2) * 1000, 2)
        return ReadContext(analysed, qvec, read, self.index), passages

    def candidates(self, question: str, filters: Filters | None = None) -> list[Candidate]:
        """The reader's unscored candidates for a question, read exactly as ``ask`` reads
        (same validation, retrieval and depth): what the scorer is fitted on."""
        text = validate_question(question, self.settings.max_question_chars)
        context, _ = self._context(text, self.settings.top_k, filters, None)
        reader = self.components.reader
        if not isinstance(reader, ScoredReader):
            raise TypeError(f"reader {reader.name!r} has no candidate sources to fit")
        return reader.candidates(context)

    def _first_verified(self, candidates: list[ScoredCandidate]) -> Answer | None:
        for cand in candidates:
            try:
                citation = verify_citation(self.index, cand)
            except CitationError as exc:  # a reader bug: log it, never show it
                log.error("dropped an unverifiable answer: %s", exc)
                continue
            return Answer(
                text=cand.text,
                score=round(float(cand.score), 4),
                citation=citation,
                details={k: round(float(v), 4) for k, v in cand.features.items()},
            )
        return None
