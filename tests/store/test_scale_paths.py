"""The paths a large index takes (issue 12, ``bench/index_scale.py``) answer as the small ones.

* BM25 summed in one collection-sized array (many postings) ranks exactly as summing
  over the sorted distinct rows (few postings), and as scoring every chunk, filtered or not;
* an IVF search filtered through a bitmap of the allowed rows finds what the hash-set
  selector it replaces found, probing more cells the fewer rows it allows;
* checksums verified on several threads still refuse a missing or altered file.
"""

from __future__ import annotations

import json
from pathlib import Path

import bm25s
import faiss
import numpy as np
import pytest

from rag.errors import IndexCorruptError
from rag.store import dense as dense_index
from rag.store import index as index_module
from rag.store.dense import DenseKind, DenseSettings, build_dense, filtered_probes, row_bitmap
from rag.store.index import Index
from rag.store.layout import MANIFEST
from rag.store.manifest import Manifest, verify_files
from tests.store.test_lexical_search import _every_chunk_scored

VOCAB = [f"w{i}" for i in range(60)]


@pytest.fixture(scope="module")
def lexical(tmp_path_factory: pytest.TempPathFactory) -> tuple[Index, bm25s.BM25]:
    """An Index over only its BM25 files (all ``lexical_search`` reads), Zipf-like terms."""
    rng = np.random.default_rng(0)
    weights = 1.0 / np.arange(1, len(VOCAB) + 1)
    weights /= weights.sum()
    corpus = [
        [str(w) for w in rng.choice(VOCAB, size=int(rng.integers(1, 30)), p=weights)]
        for _ in range(3000)
    ]
    folder = tmp_path_factory.mktemp("bm25")
    built = bm25s.BM25()
    built.index(corpus, show_progress=False)
    built.save(str(folder), allow_pickle=False)
    loaded = bm25s.BM25.load(str(folder), load_corpus=False, mmap=True)
    index = Index.__new__(Index)
    index.chunks = range(len(corpus))  # type: ignore[assignment]  # only its length is read
    index.milvus_lexical = False
    index.milvus = None
    index._lexical = loaded
    index._vocab = dict(loaded.vocab_dict)
    index._indptr = np.asarray(loaded.scores["indptr"])
    return index, bm25s.BM25.load(str(folder), load_corpus=False)


@pytest.mark.parametrize("ratio", [10**9, 0], ids=["collection-sized sums", "sorted postings"])
def test_both_bm25_paths_rank_as_scoring_every_chunk(
    lexical: tuple[Index, bm25s.BM25], ratio: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, reference = lexical
    monkeypatch.setattr(index_module, "DENSE_SCORES_RATIO", ratio)
    queries = [["w0"], ["w1", "w5", "w1"], ["w30", "w59"], ["w2", "w9", "w40", "w0"], ["nope"]]
    n = len(index.chunks)
    filters = [
        None,
        np.arange(0, n, 3, dtype=np.int64),
        np.arange(100, 140, dtype=np.int64),
        np.zeros(0, dtype=np.int64),
    ]
    for query_terms in queries:
        for k in (1, 10, 50):
            for allowed in filters:
                expected = _every_chunk_scored(reference, query_terms, k, allowed)
                assert index.lexical_search(query_terms, k, allowed) == expected


def test_a_bitmap_filtered_ivf_search_finds_what_the_batch_selector_found() -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((4000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ivf, info = build_dense(vectors, DenseSettings(kind=DenseKind.IVF, nlist=16, nprobe=2))
    allowed = np.unique(np.concatenate([rng.choice(4000, size=20), np.arange(7, 4000, 3)]))
    allowed = allowed.astype(np.int64)
    assert allowed.size > dense_index.GATHER_ROWS  # the IVF path with a selector
    bits = row_bitmap(allowed, 4000)
    assert [r for r in range(4000) if bits.is_member(r)] == allowed.tolist()
    probes = filtered_probes(2, 16, 4000, int(allowed.size))
    assert 2 < probes < 16  # scaled by the share allowed, not every cell
    for query in vectors[:20]:
        scores, rows = dense_index.search(ivf, query, 10, allowed, None)
        params = faiss.SearchParametersIVF()
        params.nprobe = probes
        params.sel = faiss.IDSelectorBatch(allowed)
        old_scores, old_rows = faiss.extract_index_ivf(ivf).search(
            query.reshape(1, -1), 10, params=params
        )
        assert rows.tolist() == old_rows[0].tolist()
        assert np.array_equal(scores, old_scores[0])
        assert set(rows[rows >= 0].tolist()) <= set(allowed.tolist())
    assert info.nlist == 16


def _manifest_over(folder: Path, names: list[str]) -> Manifest:
    for i, name in enumerate(names):
        (folder / name).write_bytes(bytes([i]) * (3_000_000 + i))
    manifest = Manifest(2, "", 0.0, {"model_id": "m", "dimension": 1}, {}, "", 1, "")
    manifest.write(folder, names)
    return Manifest.from_dict(json.loads((folder / MANIFEST).read_text()))


def test_checksums_verified_on_threads_refuse_a_missing_or_altered_file(tmp_path: Path) -> None:
    names = ["a.bin", "b.bin", "c.bin", "d.bin", "e.bin"]
    manifest = _manifest_over(tmp_path, names)
    verify_files(tmp_path, manifest)
    data = bytearray((tmp_path / "c.bin").read_bytes())
    data[1_000_000] ^= 1
    (tmp_path / "c.bin").write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"c\.bin does not match its checksum"):
        verify_files(tmp_path, manifest)
    (tmp_path / "d.bin").unlink()
    with pytest.raises(IndexCorruptError, match=r"c\.bin does not match"):
        verify_files(tmp_path, manifest)  # the first bad file in the manifest's order
    (tmp_path / "c.bin").unlink()
    with pytest.raises(IndexCorruptError, match=r"index file missing: .*c\.bin"):
        verify_files(tmp_path, manifest)


def test_a_filtered_search_probes_as_many_cells_as_its_share_needs() -> None:
    assert filtered_probes(32, 1024, 100_000, 100_000) == 32  # everything allowed
    assert filtered_probes(32, 1024, 100_000, 0) == 32  # nothing allowed: nothing to find
    assert filtered_probes(32, 16, 100_000, 100_000) == 16  # never more cells than exist
    assert filtered_probes(32, 1024, 100_000, 12_440) == 91  # ceil(32 / sqrt(0.1244))
    assert filtered_probes(32, 1024, 100_000, 50_000) == 46
    assert filtered_probes(32, 1024, 100_000, 2_000) == 227
    assert filtered_probes(32, 1024, 100_000, 10) == 1024  # a few rows: every cell


@pytest.mark.parametrize(("n_allowed", "nprobe"), [(300, 1), (1500, 10), (3500, 15)])
def test_a_filtered_ivf_search_is_exact_when_its_probes_reach_every_cell(
    n_allowed: int, nprobe: int
) -> None:
    """Gathered by id (a few rows), or scaled probes that reach all 16 cells: exact."""
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((4000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ivf, _ = build_dense(vectors, DenseSettings(kind=DenseKind.IVF, nlist=16, nprobe=1))
    allowed = np.sort(rng.choice(4000, size=n_allowed, replace=False)).astype(np.int64)
    if n_allowed > dense_index.GATHER_ROWS:
        assert nprobe < 16 and filtered_probes(nprobe, 16, 4000, n_allowed) == 16
    for query in vectors[:20]:
        scores = vectors[allowed] @ query
        expected = allowed[np.argsort(-scores, kind="stable")[:10]].tolist()
        found = dense_index.search(ivf, query, 10, allowed, nprobe)[1]
        assert found.tolist() == expected
