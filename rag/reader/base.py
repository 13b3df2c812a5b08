"""What every reader takes and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rag.reader.question import Question
from rag.store.index import Index
from rag.types import Passage, Span


@dataclass(slots=True)
class Candidate:
    """A scored answer span in document offsets; ``score`` is a probability in [0, 1]."""

    document_id: str
    start: int
    end: int
    text: str
    sentence: Span
    score: float
    features: dict[str, float] = field(default_factory=dict)
    source: str = ""


@dataclass(slots=True)
class ReadContext:
    """Everything a reader may look at for one question."""

    question: Question
    question_vector: np.ndarray
    passages: list[Passage]
    index: Index


class Reader(Protocol):
    """Ranks answer spans found in the passages; the pipeline decides whether to abstain."""

    name: str

    def warm_up(self) -> None: ...

    def read(self, context: ReadContext) -> list[Candidate]:
        """Candidates best first (may be empty)."""
        ...
