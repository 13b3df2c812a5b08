"""What every reader takes and returns."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rag.reader.question import Question
from rag.store.index import Index
from rag.types import Passage, Span


@dataclass(slots=True)
class Candidate:
    """An answer span in document offsets, while its features are being gathered.

    ``source`` names who proposed it (``heuristic:entity``, ``model``, ``metadata``).
    """

    document_id: str
    start: int
    end: int
    text: str
    sentence: Span
    score: float = 0.0
    features: dict[str, float] = field(default_factory=dict)
    source: str = ""


@dataclass(frozen=True, slots=True)
class ScoredCandidate:
    """A candidate as the scorer returns it: final, in final order.

    ``score`` is the calibrated probability that the answer is right, caps included.
    """

    document_id: str
    start: int
    end: int
    text: str
    sentence: Span
    score: float
    features: Mapping[str, float]
    source: str


@dataclass(slots=True)
class ReadContext:
    """Everything a reader may look at for one question."""

    question: Question
    question_vector: np.ndarray
    passages: list[Passage]
    index: Index
    #: Work already done for this question, shared by the steps of reading by need so
    #: that a passage read at one step is not read again at the next (the QA model's
    #: windows, keyed by what they cover).
    memo: dict[Hashable, object] = field(default_factory=dict)


class Reader(Protocol):
    """Ranks answer spans found in the passages; the pipeline decides whether to abstain."""

    name: str

    def warm_up(self) -> None: ...

    def read(self, context: ReadContext) -> list[ScoredCandidate]:
        """Scored candidates best first (may be empty)."""
        ...
