"""The composed readers' code paths, with a tiny randomly initialised model built here.

Accuracy is measured by ``rag eval`` with the trained model; these tests check the
plumbing: spans mapped back to document offsets, every candidate verifiable and
carrying every declared feature, the sources' candidates merged, the model reading the
passages whole, a missing model reported clearly.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rag.config import ReaderKind, Settings
from rag.errors import ModelLoadError
from rag.pipeline import Pipeline, make_reader
from rag.reader.base import ReadContext
from rag.reader.compose import ScoredReader, neutral_weights
from rag.reader.evidence import EvidenceSentence
from rag.reader.model_source import model_span_kind, one_line, reading, snap, snap_to_words
from rag.reader.question import AnswerType, analyse
from rag.reader.scoring import CALIBRATION_FEATURES, RANKER_FEATURES
from rag.types import Entity, Span

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", [ReaderKind.TRANSFORMERS, ReaderKind.FUSED])
def test_qa_readers_return_verifiable_document_spans(
    settings: Settings, heuristic_pipeline: Pipeline, tiny_model_dir: Path, kind: ReaderKind
) -> None:
    s = settings.model_copy(update={"reader": kind, "reader_model": str(tiny_model_dir)})
    reader = make_reader(s)
    assert isinstance(reader, ScoredReader) and reader.model is not None
    reader.use_weights(neutral_weights(reader.target()))
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


def context_for(pipeline: Pipeline, question: str) -> ReadContext:
    comps = pipeline.components
    return ReadContext(
        analyse(question, comps.annotator.nlp),
        comps.embedder.embed([question])[0],
        pipeline.retriever.retrieve(question, pipeline.settings.read_passages),
        pipeline.index,
    )


def test_fused_pool_holds_every_source_and_every_declared_feature(
    settings: Settings, heuristic_pipeline: Pipeline, tiny_model_dir: Path
) -> None:
    s = settings.model_copy(
        update={"reader": ReaderKind.FUSED, "reader_model": str(tiny_model_dir)}
    )
    reader = make_reader(s)
    reader.use_weights(neutral_weights(reader.target()))
    reader.warm_up()
    context = context_for(heuristic_pipeline, "How much funding backs the Response Unit?")
    pool = reader.candidates(context)
    sources = {c.source.split(":")[0] for c in pool}
    assert "heuristic" in sources
    assert any(c.text == "£1.24 million" for c in pool)
    declared = set(RANKER_FEATURES["fused"]) | set(CALIBRATION_FEATURES["fused"])
    declared -= {"logit", "margin"}  # the scorer's own
    for cand in pool:
        assert declared <= set(cand.features), cand.source
        text = heuristic_pipeline.index.documents[cand.document_id].text
        assert text[cand.start : cand.end] == cand.text
        assert cand.sentence.start <= cand.start and cand.end <= cand.sentence.end
    # The model read the passages and scored every candidate, its own best spans
    # included (as new candidates or as heuristic ones it agrees with).
    assert any(c.source == "model" or c.features["qa_found"] for c in pool)
    assert any(c.features["qa_seen"] for c in pool)


def test_the_model_reads_every_read_passage_whole(heuristic_pipeline: Pipeline) -> None:
    context = context_for(heuristic_pipeline, "Who wrote to Lucy Allan?")
    parts = reading(context, [])
    for passage in context.passages:
        c = passage.chunk
        assert any(
            p.document_id == c.document_id and p.start <= c.start and c.end <= p.end for p in parts
        )


def test_heuristic_reader_needs_no_model(settings: Settings) -> None:
    reader = make_reader(settings, ReaderKind.HEURISTIC)
    assert reader.model is None and reader.target().qa_model_sha256 is None


def test_missing_model_is_a_clear_error(settings: Settings, tmp_path: Path) -> None:
    s = settings.model_copy(update={"reader_model": str(tmp_path / "no-model")})
    reader = make_reader(s, ReaderKind.FUSED)
    with pytest.raises(ModelLoadError, match="no-model"):
        reader.warm_up()


@pytest.mark.parametrize(
    ("text", "span", "expected"),
    [
        ("CTS Reference: M11295/16", "M11295", "M11295/16"),  # stopped inside a reference
        ("some 1,400 children", "1", "1,400"),  # inside a number
        ("backed by £1.24 million", "24 million", "£1.24 million"),
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
        ("backed by £1.24 million of funding", "1.24 million", "£1.24 million"),  # currency
        ("costs $40 each", "$40", "$40"),
        ("page 12 of 40", "12", "12"),  # no sign: unchanged
    ],
)
def test_model_spans_snap_to_whole_words(text: str, span: str, expected: str | None) -> None:
    start = text.index(span)
    s, e = snap_to_words(text, start, start + len(span))
    assert text[s:e] == (span if expected is None else expected)


@pytest.mark.parametrize(
    ("text", "span", "expected"),
    [
        ("CTS Reference: M11295/16\n\n24 October 2016", "M11295/16\n\n24", "M11295/16"),
        ("one line only", "line only", "line only"),
        ("Dear Lucy\nThank you", "\nThank", ""),  # nothing before the break: no span
    ],
)
def test_model_spans_never_run_across_a_line_break(text: str, span: str, expected: str) -> None:
    start = text.index(span)
    s, e = one_line(text, start, start + len(span))
    assert text[s:e] == expected


@pytest.mark.parametrize(
    ("text", "span", "expected"),
    [
        ("on 0300 303 3032 or ru@nwgnetwork.org", "303 3032", "0300 303 3032"),
        ("visit www.gov.uk/home-office today", "www.gov.uk/", "www.gov.uk/home-office"),
        ("E-Mail: eric.pickles@communities.gsi.gov.uk", "eric.pickles@communities", None),
        ("ring **0207 035 8904** to arrange", "**0207 035 8904*", "0207 035 8904"),
        ("Tel: 0303 444 3450\nFax: 0303 444 3289", "3450", "0303 444 3450"),  # one line
        ("the unit (CSE) is", "CSE)", "CSE"),  # no contact detail: as snap_to_words
    ],
)
def test_model_spans_never_cut_a_contact_detail(text: str, span: str, expected: str | None) -> None:
    start = text.index(span)
    s, e = snap(text, start, start + len(span))
    assert text[s:e] == (expected or "eric.pickles@communities.gsi.gov.uk")


def _one_sentence_context(text: str, entities: list[Entity]) -> tuple[Any, EvidenceSentence]:
    """The least a model span needs to be typed: one document, its entities, a sentence."""
    index = SimpleNamespace(
        documents={"d": SimpleNamespace(text=text)},
        annotations={"d": SimpleNamespace(entities=entities)},
    )
    sentence = EvidenceSentence("d", Span(0, len(text)), 0, 0)
    return SimpleNamespace(index=index), sentence


@pytest.mark.parametrize(
    ("span", "kind", "contact"),
    [
        ("0370 000 2288", "pattern", True),  # a phone number, found by the model alone
        ("Paul Lakin, Deputy Leader Martin Kimber", "chain", False),  # two names
        ("Deputy Leader", "model", False),
    ],
)
def test_model_spans_are_typed_as_the_heuristic_types_them(
    span: str, kind: str, contact: bool
) -> None:
    text = "Councillor Paul Lakin, Deputy Leader Martin Kimber. Tel: 0370 000 2288"
    people = [
        Entity(text.index(n), text.index(n) + len(n), "PERSON")
        for n in ("Paul Lakin", "Martin Kimber")
    ]
    context, sentence = _one_sentence_context(text, people)
    start = text.index(span)
    types, got = model_span_kind(context, sentence, start, start + len(span))
    assert got == kind
    assert (types.get(AnswerType.CONTACT, 0.0) > 0) is contact
