"""A reader is candidate sources plus one scorer: composition, not a subclass chain.

* ``heuristic``: the heuristic's typed spans and the letters' header values;
* ``transformers``: the QA model's own spans, scored by its features alone;
* ``fused`` (the default): the union of all three sources, every candidate carrying
  every feature (the model scores the heuristic's spans too, and the heuristic's
  features are computed for the model's), ranked and calibrated by one fitted scorer.

What a reader reads is decided by the pipeline (``RAG_READ_PASSAGES`` passages,
whatever ``top_k`` the client asked for); the model reads those passages whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from rag.config import DEFAULT_EMBEDDING_MODEL, ReaderKind, Settings
from rag.errors import ReaderWeightsError
from rag.reader.base import Candidate, ReadContext, ScoredCandidate
from rag.reader.evidence import EvidenceSentence
from rag.reader.heuristic import HeuristicSource, MetadataSource, gather_evidence
from rag.reader.model_source import ModelSource, qa_model_for
from rag.reader.scoring import (
    CALIBRATION_FEATURES,
    RANKER_FEATURES,
    WEIGHTS_FILE,
    FitTarget,
    LogisticModel,
    ScorerWeights,
    Settle,
    load_weights,
    score,
)


class CandidateSource(Protocol):
    """Proposes answer spans with their features; never decides."""

    name: str

    def propose(
        self, context: ReadContext, evidence: list[EvidenceSentence]
    ) -> list[Candidate]: ...


#: Flags telling the scorer which source proposed a candidate.
_SOURCE_FLAGS = {"heuristic": "from_heuristic", "metadata": "from_metadata"}


@dataclass(slots=True)
class ScoredReader:
    """Candidate sources, the QA model (a source and a feature producer), one scorer.

    Candidates proposed by several sources are merged by (document, start, end): the
    first proposal keeps its features, and flags record who else proposed it.
    """

    name: str
    sources: Sequence[CandidateSource]
    model: ModelSource | None
    read_passages: int
    weights_path: Path = WEIGHTS_FILE
    #: Passages read at the first step of reading by need (``RAG_READ_FIRST``); 0 reads
    #: all ``read_passages`` at once.
    read_first: int = 0
    #: The reranker whose order is read (``RAG_RERANKER``): the weights are fitted for it.
    reranker: str = "none"
    #: The embedding model whose retrieval order is read: the weights are fitted for it.
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    _weights: ScorerWeights | None = field(default=None, repr=False)

    def target(self) -> FitTarget:
        """What this reader's weights must have been fitted for."""
        return FitTarget(
            reader=self.name,
            qa_model_sha256=self.model.sha256 if self.model else None,
            runtime=self.model.runtime if self.model else None,
            read_passages=self.read_passages,
            reranker=self.reranker,
            embedding_model=self.embedding_model,
        )

    def warm_up(self) -> None:
        """Load the QA model and the weights; refuse weights fitted for something else."""
        if self.model is not None:
            self.model.warm_up()
        if self._weights is None:
            weights = load_weights(self.target(), self.weights_path)
            fitted = weights.settle
            if self.read_first and fitted is not None and fitted.first != self.read_first:
                raise ReaderWeightsError(
                    f"the reading-by-need bound in {self.weights_path.name} was fitted for "
                    f"RAG_READ_FIRST={fitted.first}, but this service uses "
                    f"{self.read_first}; refit it with `make fit-settle` (or set "
                    f"RAG_READ_FIRST={fitted.first}, or 0 to read every passage at once)"
                )
            self._weights = weights

    def use_weights(self, weights: ScorerWeights) -> None:
        """Score with ``weights`` (the fitting code's unfitted or freshly fitted ones)."""
        self._weights = weights

    @property
    def weights(self) -> ScorerWeights:
        self.warm_up()
        assert self._weights is not None
        return self._weights

    @property
    def threshold(self) -> float:
        return self.weights.threshold

    @property
    def settle(self) -> Settle | None:
        """The fitted stopping rule when reading by need is on, else None (read all)."""
        if not self.read_first or self.read_first >= self.read_passages:
            return None
        return self.weights.settle

    def candidates(self, context: ReadContext) -> list[Candidate]:
        """Every source's candidates for the question, merged, each with every feature."""
        evidence = gather_evidence(context)
        windows = self.model.read(context, evidence) if self.model else []
        pool: dict[tuple[str, int, int], Candidate] = {}
        proposals: list[tuple[str, list[Candidate]]] = [
            (src.name, src.propose(context, evidence)) for src in self.sources
        ]
        if self.model is not None:
            proposals.append((self.model.name, self.model.propose(context, evidence, windows)))
        for source_name, cands in proposals:
            flag = _SOURCE_FLAGS.get(source_name)
            for cand in cands:
                key = (cand.document_id, cand.start, cand.end)
                kept = pool.setdefault(key, cand)
                if flag:
                    kept.features[flag] = 1.0
        out = list(pool.values())
        for cand in out:
            for flag in _SOURCE_FLAGS.values():
                cand.features.setdefault(flag, 0.0)
        if self.model is not None:
            self.model.annotate(out, windows)
        return out

    def read(self, context: ReadContext) -> list[ScoredCandidate]:
        return score(self.candidates(context), self.weights)


def build_reader(
    settings: Settings,
    kind: ReaderKind | None = None,
    *,
    model: ModelSource | None = None,
    weights_path: Path = WEIGHTS_FILE,
) -> ScoredReader:
    """The reader of ``kind`` (default: the configured one), sharing ``model`` if given."""
    kind = kind or settings.reader
    if kind is ReaderKind.HEURISTIC:
        return ScoredReader(
            kind.value,
            [HeuristicSource(), MetadataSource()],
            None,
            settings.read_passages,
            weights_path,
            settings.read_first,
            settings.reranker,
            settings.embedding_model,
        )
    if model is None:
        qa = qa_model_for(
            settings.reader_model,
            runtime=settings.reader_runtime,
            coalesce=settings.qa_coalesce,
        )
        model = ModelSource(qa)
    sources: list[CandidateSource] = []
    if kind is ReaderKind.FUSED:
        sources = [HeuristicSource(), MetadataSource()]
    return ScoredReader(
        kind.value,
        sources,
        model,
        settings.read_passages,
        weights_path,
        settings.read_first,
        settings.reranker,
        settings.embedding_model,
    )


def neutral_weights(target: FitTarget) -> ScorerWeights:
    """Weights that rank by the model's margin if there is one, else by relevance and type
    fit; for collecting candidates before a fit, and for tests with a random model."""
    names = RANKER_FEATURES[target.reader]
    prefer = {"qa_margin": 1.0} if "qa_margin" in names else {"relevance": 1.0, "type_fit": 2.0}
    ranker = LogisticModel({n: prefer.get(n, 0.0) for n in names}, 0.0)
    calibration = LogisticModel(
        {n: 1.0 if n == "logit" else 0.0 for n in CALIBRATION_FEATURES[target.reader]}, 0.0
    )
    return ScorerWeights(target, ranker, calibration, threshold=0.5)
