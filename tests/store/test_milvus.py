"""The Milvus vector store, on a real milvus-lite, against FAISS on the real corpus.

The same letters, the same packaged embedding model, two indexes that differ only in
where the chunk vectors live: `rag eval`'s retrieval metrics, filtered searches, served
answers and incremental builds must agree.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from rag.config import ReaderKind, RetrievalMode, Settings
from rag.embedding import Embedder
from rag.evaluation.dataset import load_eval_sets
from rag.evaluation.runner import run_retrieval
from rag.filters import Filters
from rag.pipeline import Pipeline, make_reader
from rag.store.builder import IndexBuilder
from rag.store.index import DENSE, Index, StoreAccess
from rag.store.milvus import MilvusSettings, filter_expression
from tests.conftest import ROOT, make_settings

pytestmark = pytest.mark.slow

DEV = ROOT / "eval" / "dev.jsonl"

QUESTIONS = [
    "What is the CTS reference of the Home Office letter?",
    "Which Rotherham strategic director got a copy of the minister's August 2014 letter?",
    "What did Ofsted advise about inspections of local authorities?",
    "How many councils were reviewed in 2014?",
]

FILTERS = [
    Filters.create(documents=["rudd-2016-10-24"]),
    Filters.create(documents=["timpson-2014-08-28", "news-2014-councils-review"]),
    # "2014"-dated documents overlap any range inside 2014; the exact dates must fall in it.
    Filters.create(date_from="2014-09-01", date_to="2014-09-30"),
    Filters.create(date_from="2015-01-01"),
    Filters.create(date_to="2014-08-28"),
    Filters.create(
        documents=["rudd-2016-10-24", "pickles-morgan-2014-09-24"], date_to="2015-12-31"
    ),
]


def milvus_builder(builder: IndexBuilder) -> IndexBuilder:
    """The session's builder (its loaded models) writing to the default milvus-lite file."""
    clone = copy.copy(builder)
    clone.milvus = MilvusSettings(uri="")
    return clone


@pytest.fixture(scope="module")
def milvus_dir(builder: IndexBuilder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("milvus-index")
    milvus_builder(builder).build(ROOT / "corpus", out)
    return out


@pytest.fixture(scope="module")
def milvus_settings(settings: Settings, milvus_dir: Path) -> Settings:
    return settings.model_copy(update={"vector_store": "milvus", "index_dir": milvus_dir})


@pytest.fixture(scope="module")
def faiss_index(settings: Settings) -> Index:
    return Index.from_settings(settings)


@pytest.fixture(scope="module")
def milvus_index(milvus_settings: Settings) -> Index:
    return Index.from_settings(milvus_settings)


class QuestionVectors:
    """The real embedder, each question embedded once (in batches) for every run.

    The comparison runs every dev question through three modes on two indexes; the
    stores, not the embedding, are under test, so both see the very same query vectors.
    """

    def __init__(self, embedder: Embedder, questions: list[str]) -> None:
        self._embedder = embedder
        self.model_id = embedder.model_id
        unique = list(dict.fromkeys(questions))
        self._vectors = dict(zip(unique, embedder.embed(unique), strict=True))

    @property
    def dimension(self) -> int:
        return self._embedder.dimension

    @property
    def max_tokens(self) -> int:
        return self._embedder.max_tokens

    def count_tokens(self, text: str) -> int:
        return self._embedder.count_tokens(text)

    def embed(self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False):
        missing = [t for t in texts if t not in self._vectors]
        if missing:
            self._vectors.update(zip(missing, self._embedder.embed(missing), strict=True))
        return np.stack([self._vectors[t] for t in texts])


def _retrieval_pipeline(settings: Settings, index: Index, embedder: Embedder) -> Pipeline:
    """A pipeline for retrieval only: the heuristic reader loads no model."""
    from rag.annotate import Annotator
    from rag.pipeline import Components

    reader = make_reader(settings, ReaderKind.HEURISTIC)
    components = Components(index, embedder, Annotator(settings.spacy_model), reader)  # type: ignore[arg-type]
    return Pipeline(settings, components)


def test_the_manifest_records_the_store_and_no_faiss_file_is_written(
    milvus_index: Index, faiss_index: Index, milvus_dir: Path
) -> None:
    assert milvus_index.manifest.vector_store["kind"] == "milvus"
    assert milvus_index.manifest.vector_store["uri"] == "milvus.db"  # relative: folder moves
    assert milvus_index.manifest.vector_store["collection"] == "rag_chunks"
    assert milvus_index.dense_info.kind == "milvus"
    assert not (milvus_index.path / DENSE).exists()
    assert DENSE not in milvus_index.manifest.files
    assert (milvus_dir / "milvus.db").exists()
    assert faiss_index.manifest.vector_store == {"kind": "faiss"}
    assert len(milvus_index.chunks) == len(faiss_index.chunks)


def test_eval_retrieval_metrics_agree_with_faiss_within_0_01(
    settings: Settings,
    milvus_settings: Settings,
    faiss_index: Index,
    milvus_index: Index,
    builder: IndexBuilder,
) -> None:
    """`rag eval --set eval/dev.jsonl`'s retrieval section, computed the way it computes it."""
    items = load_eval_sets([DEV])
    vectors = QuestionVectors(builder.embedder, [item.question for item in items])
    faiss_pipeline = _retrieval_pipeline(settings, faiss_index, vectors)
    milvus_pipeline = _retrieval_pipeline(milvus_settings, milvus_index, vectors)
    for mode in RetrievalMode:
        expected = run_retrieval(faiss_pipeline, items, mode)
        got = run_retrieval(milvus_pipeline, items, mode)
        for table in ("by_document", "by_evidence"):
            want, have = getattr(expected, table), getattr(got, table)
            assert want.keys() == have.keys()
            for metric, value in want.items():
                assert abs(value - have[metric]) <= 0.01, (mode, table, metric, value, have)
        assert expected.missing_evidence == got.missing_evidence


def test_milvus_bm25_over_our_stemmed_terms_stays_close_to_ours(
    settings: Settings, milvus_settings: Settings, faiss_index: Index, builder: IndexBuilder
) -> None:
    """RAG_MILVUS_LEXICAL=milvus: other BM25 parameters, the same terms (measured: 0.009)."""
    items = load_eval_sets([DEV])
    vectors = QuestionVectors(builder.embedder, [item.question for item in items])
    engine = milvus_settings.model_copy(update={"milvus_lexical": "milvus"})
    ours = _retrieval_pipeline(settings, faiss_index, vectors)
    theirs = _retrieval_pipeline(engine, Index.from_settings(engine), vectors)
    for mode in (RetrievalMode.LEXICAL, RetrievalMode.HYBRID):
        expected, got = run_retrieval(ours, items, mode), run_retrieval(theirs, items, mode)
        for table in ("by_document", "by_evidence"):
            want, have = getattr(expected, table), getattr(got, table)
            for metric in ("recall@5", "recall@10", "mrr"):
                assert abs(want[metric] - have[metric]) <= 0.02, (mode, table, metric)


def test_filters_are_pushed_into_milvus_with_the_catalog_rules(
    faiss_index: Index, milvus_index: Index, builder: IndexBuilder
) -> None:
    vectors = builder.embedder.embed(QUESTIONS)
    for filters in FILTERS:
        allowed_faiss = faiss_index.allowed_rows(filters)
        allowed_milvus = milvus_index.allowed_rows(filters)
        assert np.array_equal(allowed_faiss, allowed_milvus)
        assert filter_expression(filters)  # a real expression went to the engine
        for vector in vectors:
            want = faiss_index.dense_search(vector, 50, allowed_faiss)
            got = milvus_index.dense_search(vector, 50, allowed_milvus, filters=filters)
            assert [h.row for h in got] == [h.row for h in want], filters
            assert np.allclose([h.score for h in got], [h.score for h in want], atol=1e-5)
            assert set(h.row for h in got) <= set(allowed_faiss.tolist())


def test_milvus_full_text_search_honours_filters(
    milvus_settings: Settings, faiss_index: Index
) -> None:
    """Milvus's own BM25 (RAG_MILVUS_LEXICAL=milvus) over our stemmed terms, filters pushed."""
    from rag.lexical import terms

    index = Index.from_settings(milvus_settings.model_copy(update={"milvus_lexical": "milvus"}))
    assert index.milvus_lexical
    query = terms("CTS reference Home Office letter")
    hits = index.lexical_search(query, 10)
    assert hits and index.chunks[hits[0].row].document_id == "rudd-2016-10-24"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(h.score > 0 for h in hits)
    # Every chunk sharing a term is found, as by our BM25 (the scores' parameters differ).
    ours = faiss_index.lexical_search(query, 100)
    assert {h.row for h in index.lexical_search(query, 100)} == {h.row for h in ours}
    only = Filters.create(date_from="2014-01-01", date_to="2014-12-31")
    allowed = set(index.allowed_rows(only).tolist())
    filtered = index.lexical_search(query, 10, index.allowed_rows(only), filters=only)
    assert filtered and {h.row for h in filtered} <= allowed


def test_served_answers_are_the_same_on_milvus(
    pipeline: Pipeline, milvus_index: Index, milvus_settings: Settings
) -> None:
    """The whole served path (the default fused reader) over either store."""
    on_milvus = Pipeline(
        milvus_settings, dataclasses.replace(pipeline.components, index=milvus_index)
    )
    for question in QUESTIONS[:3]:
        want, got = pipeline.ask(question), on_milvus.ask(question)
        assert [p.chunk.id for p in got.passages] == [p.chunk.id for p in want.passages]
        assert (got.answer is None) == (want.answer is None)
        if want.answer is not None and got.answer is not None:
            assert got.answer.text == want.answer.text
            assert got.answer.citation.document_id == want.answer.citation.document_id
            assert got.answer.citation.start == want.answer.citation.start


def test_an_incremental_build_upserts_and_deletes_by_chunk_id(
    builder: IndexBuilder, corpus_copy: Path, tmp_path: Path
) -> None:
    out = tmp_path / "idx"
    build = milvus_builder(builder)
    build.build(corpus_copy, out)
    access = StoreAccess()
    first = Index.load(out, access=access)
    (corpus_copy / "rudd-2016-10-24.txt").unlink()
    changed = corpus_copy / "timpson-2014-08-28.txt"
    added = "\n\nPostscript: the zeppelin inspection of Quarrington Marsh is postponed.\n"
    changed.write_text(changed.read_text(encoding="utf-8") + added, encoding="utf-8")

    report = build.build(corpus_copy, out)
    assert report.removed == ["rudd-2016-10-24"] and report.changed == ["timpson-2014-08-28"]
    # Only the changed document's new text is embedded: the rest comes back from Milvus.
    assert 0 < report.embedded < len(Index.load(out).chunks) // 4
    second = Index.load(out, access=access)
    assert second.milvus is not None
    chunk_ids = {c.id for c in second.chunks}
    assert second.milvus.ids() == chunk_ids  # the collection is exactly this version
    assert "rudd-2016-10-24" not in second.documents

    vector = build.embedder.embed(["zeppelin inspection of Quarrington Marsh postponed"])[0]
    top = second.chunks[second.dense_search(vector, 1)[0].row]
    assert top.document_id == "timpson-2014-08-28" and "zeppelin" in top.text
    question = build.embedder.embed(["What is the CTS reference of the Home Office letter?"])[0]
    assert all(
        second.chunks[h.row].document_id != "rudd-2016-10-24"
        for h in second.dense_search(question, 50)
    )
    # A replica still on the first version never gets a chunk it does not hold.
    old_ids = {c.id for c in first.chunks}
    assert all(first.chunks[h.row].id in old_ids for h in first.dense_search(vector, 50))

    # Vectors reused from Milvus are what embedding the chunks gives now.
    stored = second.milvus.vectors([c.id for c in second.chunks])
    fresh = build.embedder.embed([c.text for c in second.chunks])
    assert np.allclose(stored, fresh, atol=1e-5)


def test_a_build_killed_between_its_sync_and_its_publish_is_put_right(
    builder: IndexBuilder, corpus_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collection ran ahead of the live version; the next build makes them agree."""
    import rag.store.builder as builder_module

    out = tmp_path / "idx"
    build = milvus_builder(builder)
    build.build(corpus_copy, out)
    letter = corpus_copy / "rudd-2016-10-24.txt"
    text = letter.read_text(encoding="utf-8")
    letter.unlink()

    def killed(index_dir: Path, tmp_dir: Path) -> Path:
        raise RuntimeError("killed after the Milvus sync")

    with monkeypatch.context() as patch:
        patch.setattr(builder_module, "publish", killed)
        with pytest.raises(RuntimeError, match="killed"):
            build.build(corpus_copy, out)
    live = Index.load(out)  # still the first version, its letter gone from Milvus meanwhile
    assert live.milvus is not None and "rudd-2016-10-24" in live.documents
    assert live.milvus.ids() < {c.id for c in live.chunks}
    question = build.embedder.embed(["What is the CTS reference of the Home Office letter?"])[0]
    ids = {c.id for c in live.chunks}
    assert all(live.chunks[h.row].id in ids for h in live.dense_search(question, 50))

    letter.write_text(text, encoding="utf-8")  # the corpus is the live version's again
    report = build.build(corpus_copy, out)
    assert not report.up_to_date  # the files match, the collection did not
    index = Index.load(out)
    assert index.milvus is not None
    assert index.milvus.ids() == {c.id for c in index.chunks}
    rudd_chunks = int(index.rows_of(["rudd-2016-10-24"]).size)
    assert report.embedded == rudd_chunks  # its vectors were lost from Milvus: embedded again
    found = {index.chunks[h.row].document_id for h in index.dense_search(question, 10)}
    assert "rudd-2016-10-24" in found


def test_a_missing_collection_is_a_clear_error(milvus_dir: Path, tmp_path: Path) -> None:
    from rag.errors import VectorStoreError

    moved = tmp_path / "moved"
    shutil.copytree(milvus_dir, moved, symlinks=True, ignore=shutil.ignore_patterns("milvus.db"))
    with pytest.raises(VectorStoreError, match="no collection"):
        Index.load(moved)


def test_a_second_index_may_not_wipe_a_collection_it_does_not_own(
    builder: IndexBuilder, milvus_dir: Path, milvus_index: Index, tmp_path: Path
) -> None:
    """Another index folder pointed at the same store and collection is refused at once."""
    from rag.errors import VectorStoreError

    other = copy.copy(builder)
    other.milvus = MilvusSettings(uri=str(milvus_dir / "milvus.db"))
    before = milvus_index.milvus.ids() if milvus_index.milvus is not None else set()
    with pytest.raises(VectorStoreError, match="already holds"):
        other.build(ROOT / "corpus", tmp_path / "another-index")
    assert milvus_index.milvus is not None and milvus_index.milvus.ids() == before


def test_default_settings_need_no_milvus() -> None:
    settings = make_settings()
    assert settings.vector_store == "faiss"
    assert IndexBuilder.from_settings(settings).milvus is None
