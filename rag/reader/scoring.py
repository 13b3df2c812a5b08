"""One scoring component: the declared features, the fitted weights, and the final order.

Every candidate answer, whoever proposed it (the heuristic's typed spans, the QA model,
the letters' own metadata), carries the same declared features. A logistic *ranker*
orders a question's candidates; a logistic *calibration* turns a candidate's ranker
logit, its margin over the runner-up and a few grounding features into the probability
that it is right; the pipeline answers with the best verified candidate when that
probability clears the *threshold*. All three are fitted on the dev split by
``python -m rag.train.fit_scorer`` (``make fit-reader``).

Three rules keep this safe to change:

* **A declared schema.** :data:`FEATURES` names every feature and the component that
  produces it. A candidate missing a feature the weights use is a bug and raises, never
  a silent zero.
* **Weights that say what they were fitted for.** The weights file records the reader
  kind, the QA model's sha256 (from ``models/reader/manifest.json``), the runtime, the
  read depth, the feature lists, the code commit and the dev metrics. :meth:`Scorer.load`
  refuses weights fitted for another model, runtime or depth, or naming unknown features.
* **Best first, caps inside.** Caps (an answer whose document never mentions the
  question's names, or of the wrong shape) lower the score *before* the final sort, so
  the pipeline's first verified candidate is always the best one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.errors import ReaderWeightsError
from rag.reader.base import Candidate, ScoredCandidate

WEIGHTS_FILE = Path(__file__).with_name("weights.json")
FORMAT = "rag-scorer/1"

#: Highest score of an answer whose document never mentions a name or number from the
#: question: it is about something else.
UNGROUNDED_CAP = 0.02

#: Highest score of a span that cannot have the answer's shape: no number for "how many",
#: no date for "what date" (see ``question.required_shape``).
WRONG_SHAPE_CAP = 0.05

# Producers of features (who computes them), for the registry below.
EVIDENCE = "evidence"  # rag.reader.evidence: the sentence holding the span
SPAN = "span"  # rag.reader.heuristic.span_features: the span itself
METADATA = "metadata"  # rag.reader.heuristic: the letter's own header (author, date...)
QA = "qa"  # rag.reader.model_source: the extractive QA model
SCORER = "scorer"  # this module: from the ranker's output

#: Every feature a candidate may carry: name -> (producer, what it means).
FEATURES: dict[str, tuple[str, str]] = {
    "coverage": (EVIDENCE, "IDF-weighted share of question terms in the sentence"),
    "window_coverage": (EVIDENCE, "same, over the sentence, its neighbours and the header"),
    "missing_entities": (EVIDENCE, "question names absent from the sentence window"),
    "missing_entities_doc": (EVIDENCE, "question names absent from the whole document"),
    "missing_numbers": (EVIDENCE, "question numbers absent from the sentence window"),
    "missing_numbers_doc": (EVIDENCE, "question numbers absent from the whole document"),
    "passage_rank": (EVIDENCE, "log(1 + rank of the best passage holding the sentence)"),
    "sentence_rank": (EVIDENCE, "log(1 + rank of the sentence by relevance)"),
    "relevance": (EVIDENCE, "the sentence's relevance score (ranks the heuristic's reading)"),
    "type_fit": (SPAN, "fit of the span's type to the expected answer type"),
    "type_fit_typed": (SPAN, "type_fit when the question expects a specific type"),
    "typed_question": (SPAN, "the question expects a specific type (who, when, how many)"),
    "specificity": (SPAN, "mean IDF of the span's new terms"),
    "capitalised": (SPAN, "share of capitalised words"),
    "has_digit": (SPAN, "the span holds a digit"),
    "is_chain": (SPAN, "a chain of names (A, B and C)"),
    "overlap": (SPAN, "share of the span's terms that are question terms"),
    "proximity": (SPAN, "closeness to question terms in the sentence"),
    "length_penalty": (SPAN, "words beyond the expected length, / 10"),
    "log_words": (SPAN, "log of the span's word count"),
    "is_entity": (SPAN, "an entity or pattern match"),
    "is_clause": (SPAN, "a clause or whole sentence"),
    "clause_question": (SPAN, "the question asks why/how (expects a clause)"),
    "local_coverage": (SPAN, "share of question terms within 40 characters of the span"),
    "head_near": (SPAN, "the head noun of 'which X' is next to the span"),
    "wrong_shape": (SPAN, "the span cannot have the shape the question requires"),
    "meta_any": (METADATA, "the span is part of the letter's header"),
    "meta_match": (METADATA, "the span is header data the question asks for"),
    "asks_letter": (METADATA, "the question asks about the letter itself"),
    "from_heuristic": (SPAN, "proposed by the heuristic's typed spans"),
    "from_metadata": (METADATA, "proposed as a header value the question asks for"),
    "qa_seen": (QA, "a model window holds the whole span"),
    "qa_logit": (QA, "start + end logit of the span (best window)"),
    "qa_prob": (QA, "softmax probability of the span in its window"),
    "qa_null_gap": (QA, "span logit minus its window's null (no-answer) score"),
    "qa_margin": (QA, "span logit minus the question's null score (min over all windows)"),
    "qa_found": (QA, "among the model's own top spans"),
    "qa_rank": (QA, "log(1 + rank among the model's own spans)"),
    "logit": (SCORER, "the ranker's logit"),
    "margin": (SCORER, "ranker logit over the best other candidate's"),
}

#: Values given to the model's features for a span no window holds whole (it crosses a
#: window edge): no evidence for it, which the fitted weights learn to read as such.
QA_UNSEEN = {
    "qa_seen": 0.0,
    "qa_logit": -10.0,
    "qa_prob": 0.0,
    "qa_null_gap": -10.0,
    "qa_margin": -10.0,
}

_HEURISTIC = [
    "coverage",
    "window_coverage",
    "missing_entities",
    "missing_entities_doc",
    "missing_numbers",
    "passage_rank",
    "sentence_rank",
    "relevance",
    "type_fit",
    "type_fit_typed",
    "typed_question",
    "specificity",
    "capitalised",
    "has_digit",
    "is_chain",
    "overlap",
    "proximity",
    "length_penalty",
    "log_words",
    "is_entity",
    "is_clause",
    "clause_question",
    "local_coverage",
    "head_near",
    "meta_any",
    "meta_match",
    "asks_letter",
    "from_metadata",
]
_QA = ["qa_seen", "qa_logit", "qa_prob", "qa_null_gap", "qa_margin", "qa_found", "qa_rank"]

#: The ranker's features per reader kind: what the fitted weights must name, exactly.
RANKER_FEATURES: dict[str, list[str]] = {
    "heuristic": _HEURISTIC,
    "fused": [*_HEURISTIC, *_QA, "from_heuristic"],
    "transformers": [*_QA, "log_words"],
}
_GROUNDING = [
    "logit",
    "margin",
    "window_coverage",
    "missing_entities",
    "missing_entities_doc",
    "missing_numbers",
]
#: The calibration's features per reader kind.
CALIBRATION_FEATURES: dict[str, list[str]] = {
    "heuristic": _GROUNDING,
    "fused": [*_GROUNDING, "qa_margin", "qa_null_gap"],
    "transformers": ["logit", "margin", "qa_margin", "qa_null_gap"],
}


@dataclass(frozen=True, slots=True)
class LogisticModel:
    """score = sigmoid(bias + Σ weight·feature) over named features (all required)."""

    weights: dict[str, float]
    bias: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogisticModel:
        return cls(
            weights={k: float(v) for k, v in data["weights"].items()}, bias=float(data["bias"])
        )

    def to_dict(self) -> dict[str, Any]:
        return {"bias": self.bias, "weights": self.weights}

    def logit(self, features: Mapping[str, float]) -> float:
        try:
            return self.bias + sum(w * features[name] for name, w in self.weights.items())
        except KeyError as exc:
            raise ReaderWeightsError(
                f"a candidate lacks feature {exc.args[0]!r} that the weights use: "
                "a feature producer and the schema disagree"
            ) from None

    def __call__(self, features: Mapping[str, float]) -> float:
        return sigmoid(self.logit(features))


def sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))


@dataclass(frozen=True, slots=True)
class FitTarget:
    """What a set of weights is valid for: checked at load time."""

    reader: str
    qa_model_sha256: str | None  # None for the heuristic reader (no QA model)
    runtime: str | None
    read_passages: int
    #: The passage order read (``RAG_RERANKER``): the ``passage_rank`` feature and the
    #: reading-by-need rules are fitted on one order.
    reranker: str = "none"
    #: The embedding model of the retrieval whose order was read (``RAG_EMBEDDING_MODEL``).
    embedding_model: str = DEFAULT_EMBEDDING_MODEL

    def section(self) -> str:
        """The weights file's section: one per reader, runtime, reranker and embedder."""
        name = self.reader if self.runtime is None else f"{self.reader}/{self.runtime}"
        if self.reranker != "none":
            name = f"{name}+{self.reranker}"
        if self.embedding_model != DEFAULT_EMBEDDING_MODEL:
            name = f"{name}@{self.embedding_model}"
        return name


#: A bound above every calibrated score: that rule never stops the reading.
NEVER = 1.01


@dataclass(frozen=True, slots=True)
class Settle:
    """When reading by need may stop: fitted on dev by ``python -m rag.train.fit_settle``.

    The reader reads the first ``first`` passages, then twice as many, and so on up to
    the read depth. After each step it stops when the answer is settled:

    * ``bound``: the best verified answer scores at least this (a confident answer);
    * ``agree``: the best answer is the same span as the previous step's and scores at
      least this (reading more passages did not change it);
    * ``hopeless``: no answer, or the best scores below this (at most the abstention
      threshold): an abstention that more passages are not expected to overturn.

    The rules were chosen together as those reading fewest passages whose dev answers
    are no worse than reading every passage, so they hold only for the ``first`` they
    were fitted with.
    """

    first: int
    bound: float
    agree: float = NEVER
    hopeless: float = 0.0
    dev_metrics: dict[str, Any] = field(default_factory=dict)

    def stops(self, best: SettleView | None, previous: SettleView | None) -> bool:
        """Whether the reading may stop with ``best`` after a step (``previous``: the
        step before's best, None at the first step)."""
        if best is None:
            return self.hopeless > 0.0
        if best.score >= self.bound:
            return True
        if best.score < self.hopeless:
            return True
        same = previous is not None and best.place == previous.place
        return same and best.score >= self.agree

    def to_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "bound": self.bound,
            "agree": self.agree,
            "hopeless": self.hopeless,
            "dev_metrics": self.dev_metrics,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Settle:
        return cls(
            first=int(data["first"]),
            bound=float(data["bound"]),
            agree=float(data.get("agree", NEVER)),
            hopeless=float(data.get("hopeless", 0.0)),
            dev_metrics=dict(data.get("dev_metrics") or {}),
        )


class SettleView(Protocol):
    """What the stopping rule looks at in a step's best answer."""

    @property
    def score(self) -> float: ...

    @property
    def place(self) -> tuple[str, int, int]: ...


@dataclass(frozen=True, slots=True)
class ScorerWeights:
    """A fitted scorer, with the record of what it was fitted for."""

    target: FitTarget
    ranker: LogisticModel
    calibration: LogisticModel
    threshold: float
    code_commit: str | None = None
    dev_metrics: dict[str, Any] = field(default_factory=dict)
    #: The fitted stopping rule of reading by need; None: read every passage at once.
    settle: Settle | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "reader": self.target.reader,
            "qa_model_sha256": self.target.qa_model_sha256,
            "runtime": self.target.runtime,
            "read_passages": self.target.read_passages,
            "reranker": self.target.reranker,
            "embedding_model": self.target.embedding_model,
            "ranker_features": list(self.ranker.weights),
            "calibration_features": list(self.calibration.weights),
            "code_commit": self.code_commit,
            "dev_metrics": self.dev_metrics,
            "threshold": self.threshold,
            "ranker": self.ranker.to_dict(),
            "calibration": self.calibration.to_dict(),
            **({"settle": self.settle.to_dict()} if self.settle else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScorerWeights:
        if data.get("format") != FORMAT:
            raise ReaderWeightsError(f"weights of format {data.get('format')!r}, not {FORMAT}")
        target = FitTarget(
            reader=str(data["reader"]),
            qa_model_sha256=data.get("qa_model_sha256"),
            runtime=data.get("runtime"),
            read_passages=int(data["read_passages"]),
            reranker=str(data.get("reranker", "none")),
            embedding_model=str(data.get("embedding_model", DEFAULT_EMBEDDING_MODEL)),
        )
        return cls(
            target=target,
            ranker=LogisticModel.from_dict(data["ranker"]),
            calibration=LogisticModel.from_dict(data["calibration"]),
            threshold=float(data["threshold"]),
            code_commit=data.get("code_commit"),
            dev_metrics=dict(data.get("dev_metrics") or {}),
            settle=Settle.from_dict(data["settle"]) if data.get("settle") else None,
        )


def check_weights(weights: ScorerWeights, expected: FitTarget, source: str) -> None:
    """Refuse weights fitted for something else, or that disagree with the schema."""
    got = weights.target
    for name, theirs, ours in (
        ("reader", got.reader, expected.reader),
        ("QA model (sha256)", got.qa_model_sha256, expected.qa_model_sha256),
        ("runtime", got.runtime, expected.runtime),
        ("read depth (RAG_READ_PASSAGES)", got.read_passages, expected.read_passages),
        ("reranker (RAG_RERANKER)", got.reranker, expected.reranker),
        ("embedding model (RAG_EMBEDDING_MODEL)", got.embedding_model, expected.embedding_model),
    ):
        if theirs != ours:
            raise ReaderWeightsError(
                f"{source} was fitted for {name} {theirs!r}, but this service uses {ours!r}; "
                "refit with `make fit-reader` (or use the settings it was fitted for)"
            )
    for part, model, declared in (
        ("ranker", weights.ranker, RANKER_FEATURES[got.reader]),
        ("calibration", weights.calibration, CALIBRATION_FEATURES[got.reader]),
    ):
        names = list(model.weights)
        unknown = sorted(set(names) - set(FEATURES))
        if unknown:
            raise ReaderWeightsError(f"{source}: the {part} names unknown features {unknown}")
        missing = sorted(set(declared) - set(names))
        extra = sorted(set(names) - set(declared))
        if missing or extra:
            raise ReaderWeightsError(
                f"{source}: the {part} of {got.reader!r} must use exactly the declared "
                f"features; missing {missing}, not declared {extra}"
            )


def load_weights(expected: FitTarget, path: Path = WEIGHTS_FILE) -> ScorerWeights:
    """The fitted weights for ``expected`` from ``path``, checked; or a clear error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ReaderWeightsError(f"cannot read reader weights {path.name}: {exc}") from exc
    section = data.get(expected.section())
    if section is None:
        raise ReaderWeightsError(
            f"{path.name} has no weights for {expected.section()!r} "
            f"(it has {sorted(data)}); fit them with `make fit-reader`"
        )
    try:
        weights = ScorerWeights.from_dict(section)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReaderWeightsError(
            f"{path.name}[{expected.section()!r}] is malformed: {exc}"
        ) from exc
    check_weights(weights, expected, f"{path.name}[{expected.section()!r}]")
    return weights


def write_weights(weights: ScorerWeights, path: Path = WEIGHTS_FILE) -> None:
    """Replace one section of the weights file, keeping the others."""
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data = {k: v for k, v in data.items() if isinstance(v, dict) and v.get("format") == FORMAT}
    data[weights.target.section()] = weights.to_dict()
    path.write_text(json.dumps(dict(sorted(data.items())), indent=2) + "\n", encoding="utf-8")


#: The caps :func:`capped` applies; ``rag.train.ablate`` measures each one's worth.
CAPS = frozenset({"ungrounded", "wrong_shape"})


def capped(score: float, features: Mapping[str, float], caps: frozenset[str] = CAPS) -> float:
    """The calibrated score with the grounding and shape caps (those in ``caps``) applied."""
    if "ungrounded" in caps and (
        features.get("missing_entities_doc", 0.0) or features.get("missing_numbers_doc", 0.0)
    ):
        # A name (a place, a body, a person) or a number (a year) the question states
        # that the answer's document never mentions: the answer is about something else.
        return min(score, UNGROUNDED_CAP)
    if "wrong_shape" in caps and features.get("wrong_shape", 0.0):
        # "How many ...?" answered without a number, "what date ...?" without a date.
        return min(score, WRONG_SHAPE_CAP)
    return score


def rank(candidates: Sequence[Candidate], ranker: LogisticModel) -> list[tuple[Candidate, float]]:
    """Candidates with their ranker logits, highest first (ties: earliest proposed)."""
    scored = [(c, ranker.logit(c.features)) for c in candidates]
    return sorted(scored, key=lambda cl: -cl[1])


def score(
    candidates: Sequence[Candidate], weights: ScorerWeights, caps: frozenset[str] = CAPS
) -> list[ScoredCandidate]:
    """New, frozen, scored candidates in final order: by capped calibrated score.

    The inputs are not changed. ``margin`` is a candidate's ranker logit over the best
    *other* candidate's, so the top one's is positive when it stands out.
    """
    ranked = rank(candidates, weights.ranker)
    out: list[ScoredCandidate] = []
    for i, (cand, logit) in enumerate(ranked):
        other = ranked[1][1] if i == 0 and len(ranked) > 1 else ranked[0][1]
        margin = logit - other if len(ranked) > 1 else 5.0
        features = {**cand.features, "logit": logit, "margin": margin}
        value = capped(weights.calibration(features), features, caps)
        out.append(
            ScoredCandidate(
                document_id=cand.document_id,
                start=cand.start,
                end=cand.end,
                text=cand.text,
                sentence=cand.sentence,
                score=value,
                features=MappingProxyType(features),
                source=cand.source,
            )
        )
    order = sorted(range(len(out)), key=lambda i: (-out[i].score, i))
    return [out[i] for i in order]
