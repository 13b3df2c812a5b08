"""Synthetic corpora for benchmarks and crash tests, honestly labelled as such.

Each synthetic document is a shuffle of sentences drawn from the real corpus, so its
chunks are new text (never duplicates the embedding cache could skip), with the length
and vocabulary of real letters.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def corpus_sentences(corpus_dir: Path) -> list[str]:
    """Sentences of every text file in the real corpus, line breaks folded."""
    sentences: list[str] = []
    for path in sorted(corpus_dir.glob("*.txt")):
        text = " ".join(path.read_text(encoding="utf-8").split())
        sentences += [s for s in _SENTENCE.split(text) if len(s.split()) >= 5]
    return sentences


def write_synthetic_corpus(
    source_dir: Path,
    target_dir: Path,
    n_documents: int,
    *,
    sentences_per_doc: int = 25,
    seed: int = 13,
) -> list[Path]:
    """Write ``n_documents`` shuffled-sentence documents; returns their paths."""
    rng = random.Random(seed)
    pool = corpus_sentences(source_dir)
    if not pool:
        raise ValueError(f"no sentences found in {source_dir}")
    target_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_documents):
        picked = rng.sample(pool, min(sentences_per_doc, len(pool)))
        paragraphs = [" ".join(picked[j : j + 4]) for j in range(0, len(picked), 4)]
        path = target_dir / f"synthetic-{i:05d}.txt"
        path.write_text(
            f"Synthetic document {i}\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8"
        )
        paths.append(path)
    return paths
