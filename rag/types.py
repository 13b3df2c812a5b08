"""Typed objects that cross module boundaries.

Offsets are always character offsets into a document's *stored* text (the cleaned
text the service shows and cites), never into a chunk: ``doc.text[start:end]``
is what an object with ``start``/``end`` refers to.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Span:
    """A half-open ``[start, end)`` range of character offsets in a document."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"invalid span [{self.start}, {self.end})")

    def __len__(self) -> int:
        return self.end - self.start

    def contains(self, other: Span) -> bool:
        return self.start <= other.start and other.end <= self.end


@dataclass(slots=True)
class LoadedText:
    """What a format loader returns: raw text before cleaning.

    ``page_starts`` holds the offset in ``text`` where each page begins (first is 0);
    it is empty for formats without pages. ``title`` is a title the format states
    itself (HTML ``<title>``, PDF or DOCX core properties, a Markdown heading).
    """

    text: str
    format: str
    page_starts: list[int] = field(default_factory=list)
    title: str | None = None


@dataclass(slots=True)
class Metadata:
    """What a document says about itself: read from its header, sign-off or format."""

    title: str = ""
    date: str | None = None  # ISO 8601, as precise as the document: YYYY-MM-DD, YYYY-MM or YYYY
    authors: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    copied_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Document:
    """One source file, cleaned. ``text`` is what the service shows and cites."""

    id: str
    text: str
    source_path: str
    format: str
    size: int
    sha256: str
    metadata: Metadata = field(default_factory=Metadata)
    page_starts: list[int] = field(default_factory=list)

    @property
    def title(self) -> str:
        return self.metadata.title or self.id

    @property
    def date(self) -> str | None:
        return self.metadata.date

    @property
    def pages(self) -> int | None:
        return len(self.page_starts) or None

    def page_at(self, offset: int) -> int | None:
        """1-based page number holding ``offset``, or None for formats without pages."""
        if not self.page_starts:
            return None
        return bisect.bisect_right(self.page_starts, offset)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Document:
        meta = Metadata(**data.get("metadata", {}))
        fields = {k: v for k, v in data.items() if k != "metadata"}
        return cls(metadata=meta, **fields)


@dataclass(frozen=True, slots=True)
class Chunk:
    """A retrieval unit: ``text == document.text[start:end]``."""

    id: str
    document_id: str
    start: int
    end: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Chunk:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Entity:
    """A named entity or noun chunk found at index time, in document offsets."""

    start: int
    end: int
    label: str  # spaCy label (PERSON, DATE, ORG, ...) or "NP" for a noun chunk


@dataclass(slots=True)
class Annotations:
    """Linguistic annotations of one document, computed once when the index is built."""

    document_id: str
    sentences: list[Span] = field(default_factory=list)
    entities: list[Entity] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "document_id": self.document_id,
            "sentences": [[s.start, s.end] for s in self.sentences],
            "entities": [[e.start, e.end, e.label] for e in self.entities],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Annotations:
        return cls(
            document_id=data["document_id"],
            sentences=[Span(s, e) for s, e in data["sentences"]],
            entities=[Entity(s, e, lab) for s, e, lab in data["entities"]],
        )


@dataclass(slots=True)
class Passage:
    """A retrieved chunk with its score from each retrieval stage."""

    chunk: Chunk
    score: float
    stage_scores: dict[str, float] = field(default_factory=dict)
    stage_ranks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Citation:
    """Where an answer stands: verifiable as ``document.text[start:end] == answer.text``."""

    document_id: str
    document_title: str
    document_date: str | None
    start: int
    end: int
    page: int | None
    sentence: Span
    sentence_text: str


@dataclass(slots=True)
class Answer:
    """An extracted answer with its calibrated score in [0, 1] and its citation."""

    text: str
    score: float
    citation: Citation
    details: dict[str, float] = field(default_factory=dict)

    @property
    def place(self) -> tuple[str, int, int]:
        """Where it stands: (document, start, end); two answers there are the same."""
        return (self.citation.document_id, self.citation.start, self.citation.end)


@dataclass(slots=True)
class AskResult:
    """Everything the pipeline returns for one question."""

    question: str
    answer: Answer | None
    passages: list[Passage]
    timings_ms: dict[str, float] = field(default_factory=dict)
    # Best rejected candidate when the reader abstained; shown by --explain only.
    rejected: Answer | None = None
    # How many passages the reader read (reading by need stops early when settled).
    passages_read: int = 0

    @property
    def abstained(self) -> bool:
        return self.answer is None
