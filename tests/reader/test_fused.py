"""The QA-model readers' code paths, with a tiny randomly initialised model built here.

Accuracy of the transformers backend is measured by ``rag eval`` with the trained model;
these tests check the plumbing: spans mapped back to document offsets, every candidate
verifiable, heuristic and model candidates fused, a missing model reported clearly.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.config import ReaderKind, Settings
from rag.errors import ModelLoadError
from rag.pipeline import Pipeline, make_reader
from rag.reader.fused import FusedReader, TransformersReader, snap_to_words

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", [ReaderKind.TRANSFORMERS, ReaderKind.FUSED])
def test_qa_readers_return_verifiable_document_spans(
    settings: Settings, heuristic_pipeline: Pipeline, tiny_model_dir: Path, kind: ReaderKind
) -> None:
    s = settings.model_copy(update={"reader": kind, "reader_model": str(tiny_model_dir)})
    reader = make_reader(s)
    assert isinstance(reader, TransformersReader)
    reader.warm_up()
    components = heuristic_pipeline.components
    pipeline = Pipeline(
        s, type(components)(components.index, components.embedder, components.annotator, reader)
    )
    result = pipeline.ask("What is the CTS reference of the Home Office letter?")
    best = result.answer or result.rejected
    assert best is not None
    doc = pipeline.index.documents[best.citation.document_id]
    assert doc.text[best.citation.start : best.citation.end] == best.text
    assert {"qa_logit", "qa_prob", "qa_null_gap"} <= set(best.details)
    assert 0.0 <= best.score <= 1.0


def test_fused_pool_holds_heuristic_and_model_candidates(
    settings: Settings, heuristic_pipeline: Pipeline, tiny_model_dir: Path
) -> None:
    from rag.reader.base import ReadContext
    from rag.reader.question import analyse

    reader = FusedReader(str(tiny_model_dir))
    reader.warm_up()
    comps = heuristic_pipeline.components
    question = "How much funding backs the Response Unit?"
    context = ReadContext(
        analyse(question, comps.annotator.nlp),
        comps.embedder.embed([question])[0],
        heuristic_pipeline.retriever.retrieve(question, 5),
        heuristic_pipeline.index,
    )
    pool = reader.read(context)
    sources = {c.source.split(":")[0] for c in pool}
    assert "heuristic" in sources
    assert any(c.text == "£1.24 million" for c in pool)
    # The model read the passages too: every candidate carries its scores, and its own
    # best spans are in the pool (as new candidates or as heuristic ones it agrees with).
    assert all("qa_logit" in c.features for c in pool)
    assert any(c.source == "model" or c.features["qa_found"] for c in pool)
    for cand in pool:
        text = heuristic_pipeline.index.documents[cand.document_id].text
        assert text[cand.start : cand.end] == cand.text
        assert cand.sentence.start <= cand.start and cand.end <= cand.sentence.end


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    reader = FusedReader(str(tmp_path / "no-model"))
    with pytest.raises(ModelLoadError, match="no-model"):
        reader.warm_up()


@pytest.mark.parametrize(
    ("text", "span", "expected"),
    [
        ("CTS Reference: M11295/16", "M11295", "M11295/16"),  # stopped inside a reference
        ("some 1,400 children", "1", "1,400"),  # inside a number
        ("backed by £1.24 million", "24 million", "1.24 million"),
        ("replied on 24 Octo", "24 Oc", "24 Octo"),  # inside a word
        ("replied on 24 October now", "24 October", "24 October"),  # whole words: unchanged
        ("the Unit (CSERU) operates", "CSERU", "CSERU"),  # brackets stay out
        ("Rotherham’s council", "Rotherham", "Rotherham"),  # possessive stays out
        ("Dyrrachium—one of the bases", "Dyrrachium", "Dyrrachium"),  # dash stays out
        ("replied on 24 October. Then", "24 October.", "24 October"),  # stray full stop
        ("the unit (CSE) is", "CSE)", "CSE"),  # unpaired bracket
        ("flow of 1,000 m3/s (35,000 cu ft/s) here", "1,000 m3/s (35,000 cu ft/s)", None),
        ("called “Rhine Gutter”) here", "Rhine Gutter”)", "Rhine Gutter"),
        ("named Rotherham, Cllr Lakin said", ", Cllr Lakin", "Cllr Lakin"),
    ],
)
def test_model_spans_snap_to_whole_words(text: str, span: str, expected: str | None) -> None:
    start = text.index(span)
    s, e = snap_to_words(text, start, start + len(span))
    assert text[s:e] == (span if expected is None else expected)
