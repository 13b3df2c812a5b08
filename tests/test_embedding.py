"""The embedder sharing the cores with the index build's spaCy thread: same vectors."""

from __future__ import annotations

import numpy as np
import torch

from rag.embedding import SentenceTransformerEmbedder
from rag.store.builder import IndexBuilder


def test_sharing_gives_the_same_vectors_and_gives_a_core_back(builder: IndexBuilder) -> None:
    """While the other work runs, torch runs one thread fewer; the rows stay in order."""
    embedder: SentenceTransformerEmbedder = builder.embedder
    # Lengths that differ a lot, so the longest-first slices reorder them.
    texts = [("word " * n).strip() + f" {n}" for n in (3, 120, 1, 60, 7, 200, 2, 33, 90)]
    expected = embedder.embed(texts, batch_size=2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[int] = []

    def sharing() -> bool:
        seen.append(torch.get_num_threads())
        return len(seen) <= 2  # busy for the first two slices, then free

    try:
        got = embedder.embed(texts, batch_size=2, sharing=sharing)
        after = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # Asked before each slice: 2 threads, then 1 while busy, then 2 again.
    assert seen[:4] == [2, 1, 1, 2]
    assert after == 2
    assert embedder.embed([], sharing=sharing).shape == (0, expected.shape[1])
