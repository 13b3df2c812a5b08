"""The dense index types: exact below a size, IVF above it, updated in place, on real vectors.

Every vector here is a real embedding of the letters (their chunks and their sentences,
from the packaged model); every search is checked against exact search over the same
vectors, so a wrong label, a lost row or a stale quantiser shows as a different ranking.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rag.store import Index, IndexBuilder
from rag.store.dense import (
    GATHER_ROWS,
    DenseInfo,
    DenseKind,
    DenseSettings,
    auto_nlist,
    build_dense,
    search,
    update_dense,
    vectors_of,
)
from rag.store.index import read_data, read_dense
from rag.store.layout import resolve_version
from tests.conftest import make_settings

QUESTIONS = [
    "Who wrote to the council about the review?",
    "What did the Home Secretary say about child sexual exploitation?",
    "When was the letter sent?",
    "Which inspection found failures in the children's services?",
    "What reference number is on the letter?",
]


def _exact(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    scores = vectors @ query
    return [int(r) for r in np.argsort(-scores, kind="stable")[:k]]


def _rows(result: tuple[np.ndarray, np.ndarray]) -> list[int]:
    return [int(r) for r in result[1] if r >= 0]


@pytest.fixture(scope="module")
def real_vectors(index_dir: Path, builder: IndexBuilder) -> np.ndarray:
    """Real embeddings of the letters, enough of them for IVF cells: the index's chunk
    vectors, then every annotated sentence embedded by the same model."""
    folder = resolve_version(index_dir)
    data = read_data(folder, read_dense(folder))
    docs = {d.id: d for d in data.documents}
    sentences = [
        docs[a.document_id].text[s.start : s.end] for a in data.annotations for s in a.sentences
    ]
    return np.ascontiguousarray(
        np.concatenate([data.vectors, builder.embedder.embed(sentences)]), dtype=np.float32
    )


@pytest.fixture(scope="module")
def queries(builder: IndexBuilder) -> np.ndarray:
    return builder.embedder.embed(QUESTIONS)


def test_size_chooses_the_kind_and_the_cells() -> None:
    settings = DenseSettings(ivf_min_chunks=1000)
    assert settings.kind_for(999) is DenseKind.FLAT
    assert settings.kind_for(1000) is DenseKind.IVF
    assert DenseSettings(kind=DenseKind.FLAT, ivf_min_chunks=10).kind_for(10**6) is DenseKind.FLAT
    assert auto_nlist(1_000_000) == 4096
    assert auto_nlist(50_000) == 1024
    assert auto_nlist(100) == 2  # no cell with fewer than 39 training points
    with pytest.raises(ValueError, match="retrain_growth"):
        DenseSettings(retrain_growth=1.0)


def test_dense_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_DENSE_INDEX", "ivf")
    monkeypatch.setenv("RAG_DENSE_NPROBE", "7")
    monkeypatch.setenv("RAG_DENSE_IVF_MIN_CHUNKS", "1234")
    settings = make_settings()
    assert settings.dense_index == "ivf"
    assert settings.dense_nprobe == 7
    assert settings.dense_ivf_min_chunks == 1234


@pytest.mark.slow
def test_the_letters_are_searched_exactly(
    index_dir: Path, builder: IndexBuilder, queries: np.ndarray
) -> None:
    """The served collection is far below the IVF threshold: exact search, as before."""
    index = Index.load(index_dir)
    assert index.dense_info.kind == "flat"
    vectors = builder.embedder.embed([c.text for c in index.chunks])
    for query in queries:
        hits = index.dense_search(query, 10)
        assert [h.row for h in hits] == _exact(vectors, query, 10)


@pytest.mark.slow
def test_ivf_probing_every_cell_is_exact_search(
    real_vectors: np.ndarray, queries: np.ndarray
) -> None:
    settings = DenseSettings(kind=DenseKind.IVF, nlist=8, nprobe=8)
    ivf, info = build_dense(real_vectors, settings)
    assert (info.kind, info.nlist, info.trained_on) == ("ivf", 8, len(real_vectors))
    np.testing.assert_array_equal(vectors_of(ivf), real_vectors)
    for query in queries:
        assert _rows(search(ivf, query, 10, None, 8)) == _exact(real_vectors, query, 10)
    # One cell of eight sees part of the collection: fewer or other rows, never wrong ones.
    rows = _rows(search(ivf, queries[0], 10, None, 1))
    assert set(rows) <= set(range(len(real_vectors)))


@pytest.mark.slow
def test_a_filtered_ivf_search_is_exact_over_the_allowed_rows(
    real_vectors: np.ndarray, queries: np.ndarray
) -> None:
    ivf, _ = build_dense(real_vectors, DenseSettings(kind=DenseKind.IVF, nlist=8, nprobe=1))
    allowed = np.arange(10, len(real_vectors), 7, dtype=np.int64)
    assert allowed.size <= GATHER_ROWS
    for query in queries:
        expected = [int(allowed[i]) for i in _exact(real_vectors[allowed], query, 10)]
        # nprobe 1 would miss most allowed rows; the exact search over the gathered rows
        # does not.
        assert _rows(search(ivf, query, 10, allowed, 1)) == expected


@pytest.mark.slow
def test_an_ivf_update_keeps_its_quantiser_and_relabels_every_row(
    real_vectors: np.ndarray, queries: np.ndarray
) -> None:
    settings = DenseSettings(kind=DenseKind.IVF, nlist=8, nprobe=8)
    half = len(real_vectors) // 2
    old = real_vectors[:half]
    ivf, info = build_dense(old, settings)
    centroids = vectors_of(ivf.quantizer)
    # Drop every third old row, move the rest, and add the second half as new rows.
    keep = np.arange(half) % 3 != 0
    kept = np.full(half, -1, dtype=np.int64)
    n_kept = int(keep.sum())
    new_rows = np.random.default_rng(0).permutation(len(real_vectors) - half + n_kept)
    kept[keep] = new_rows[:n_kept]
    new = np.zeros((len(new_rows), real_vectors.shape[1]), dtype=np.float32)
    new[new_rows[:n_kept]] = old[keep]
    new[new_rows[n_kept:]] = real_vectors[half:]

    updated, updated_info = update_dense(ivf, info, new, kept, settings)
    assert updated_info.trained_on == info.trained_on == half  # not retrained
    np.testing.assert_array_equal(vectors_of(updated.quantizer), centroids)
    np.testing.assert_array_equal(vectors_of(updated), new)
    for query in queries:
        assert _rows(search(updated, query, 10, None, 8)) == _exact(new, query, 10)


@pytest.mark.slow
def test_an_ivf_index_grown_past_its_training_is_retrained(real_vectors: np.ndarray) -> None:
    settings = DenseSettings(kind=DenseKind.IVF, nlist=4, nprobe=4, retrain_growth=2.0)
    small = real_vectors[:100]
    ivf, info = build_dense(small, settings)
    kept = np.arange(100, dtype=np.int64)
    grown, grown_info = update_dense(ivf, info, real_vectors[:200], kept, settings)
    assert grown_info.trained_on == 100  # twice the size: still within retrain_growth
    grown_more, more_info = update_dense(
        grown, grown_info, real_vectors[:201], np.arange(200, dtype=np.int64), settings
    )
    assert more_info.trained_on == 201
    np.testing.assert_array_equal(vectors_of(grown_more), real_vectors[:201])


def _ivf_builder(builder: IndexBuilder) -> IndexBuilder:
    """The session's builder (its models and chunking) with an IVF index of 4 cells, all
    probed."""
    return IndexBuilder(
        embedder=builder.embedder,
        annotator=builder.annotator,
        chunker_settings=builder.chunker_settings,
        max_file_bytes=builder.max_file_bytes,
        dense=DenseSettings(kind=DenseKind.IVF, nlist=4, nprobe=4),
    )


@pytest.mark.slow
def test_an_incremental_build_updates_the_ivf_index_by_id(
    builder: IndexBuilder, corpus_copy: Path, tmp_path: Path
) -> None:
    ivf_builder = _ivf_builder(builder)
    out = tmp_path / "idx"
    ivf_builder.build(corpus_copy, out)
    first = Index.load(out)
    assert first.dense_info.kind == "ivf"
    news = corpus_copy / "news-2014-councils-review.txt"
    news.write_text(news.read_text() + "\nA new closing paragraph was added for this test.\n")
    (corpus_copy / "timpson-2014-08-28.txt").unlink()
    (corpus_copy / "added-note.md").write_text("# Added note\n\nThe added note says hello.\n")
    report = ivf_builder.build(corpus_copy, out)
    assert report.removed == ["timpson-2014-08-28"] and report.new == ["added-note"]

    after = Index.load(out, nprobe=4)
    assert DenseInfo.from_dict(after.manifest.dense) == after.dense_info
    assert after.dense_info.trained_on == first.dense_info.trained_on  # quantiser kept
    stored = vectors_of(read_dense(resolve_version(out)))
    expected = builder.embedder.embed([c.text for c in after.chunks])
    cosines = np.sum(stored * expected, axis=1)
    assert cosines.min() > 0.999  # every row holds its own chunk's vector
    for row, chunk in enumerate(after.chunks):
        if chunk.document_id == "added-note":
            hits = after.dense_search(expected[row], 1)
            assert hits[0].row == row


@pytest.mark.slow
def test_a_changed_index_type_takes_effect_without_embedding_again(
    builder: IndexBuilder, corpus_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "idx"
    builder.build(corpus_copy, out)
    assert Index.load(out).dense_info.kind == "flat"
    assert builder.build(corpus_copy, out).up_to_date  # same settings: nothing to do
    ivf_builder = _ivf_builder(builder)
    report = ivf_builder.build(corpus_copy, out)
    assert not report.up_to_date
    assert report.embedded == 0
    assert Index.load(out).dense_info.kind == "ivf"
    assert ivf_builder.build(corpus_copy, out).up_to_date
