"""kill -9 of `rag index` at (seeded) random moments: the last good index always loads."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.store import Index, IndexBuilder
from rag.store.layout import VERSIONS
from rag.synthetic import write_synthetic_corpus

pytestmark = pytest.mark.slow

KILLS = 4


def _size(n: int) -> int:
    """Documents in the corpus before the n-th kill (0: the first good build)."""
    return 5 + 10 * n


def test_kill_9_at_random_moments_always_leaves_a_loadable_index(
    builder: IndexBuilder, tmp_path: Path, corpus_dir: Path
) -> None:
    corpus = tmp_path / "corpus"
    write_synthetic_corpus(corpus_dir, corpus, 5)
    out = tmp_path / "idx"
    builder.build(corpus, out)
    served = {5}  # document counts of the index versions that could be live
    rng = random.Random(11)
    env = {**os.environ, "RAG_INDEX_DIR": str(out), "RAG_CORPUS_DIR": str(corpus)}
    for n in range(1, KILLS + 1):
        write_synthetic_corpus(corpus_dir, corpus, _size(n), seed=100 + n)
        proc = subprocess.Popen(
            [sys.executable, "-m", "rag.cli", "index"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        time.sleep(rng.uniform(1.0, 25.0))  # anywhere from start-up to publishing
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        served.add(_size(n))
        index = Index.load(out)  # verified: checksums, counts, one whole version
        assert len(index.documents) in served
        assert len(index.chunks) == index.manifest.counts["chunks"]
    # The next build finishes the work and cleans up what the kills left behind.
    report = builder.build(corpus, out)
    assert report.documents == _size(KILLS)
    assert not [p for p in (out / VERSIONS).iterdir() if p.name.startswith("tmp-")]
    assert len(Index.load(out).documents) == _size(KILLS)
