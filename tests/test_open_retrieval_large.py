"""The pure parts of ``bench/open_retrieval_large.py``: paragraph -> document naming,
deduplication, the corpus folder sync and the question sample."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from rag.ingest import discover, document_id
from rag.train.data import Example

_PATH = Path(__file__).resolve().parent.parent / "bench" / "open_retrieval_large.py"
_SPEC = importlib.util.spec_from_file_location("open_retrieval_large", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench
_SPEC.loader.exec_module(bench)


def ex(qid: str, source: str, title: str, context: str, answer: str = "x") -> Example:
    return Example(qid, source, f"question {qid}?", context, 0, 1, (answer,), title)


def test_title_slug_is_short_ascii() -> None:
    assert bench.title_slug("Beyoncé") == "Beyonce"
    assert bench.title_slug("New York City (NYC) / Borough's") == "New_York_City_NYC_Borough_s"
    assert bench.title_slug("") == "untitled"
    assert bench.title_slug("東京") == "untitled"
    assert len(bench.title_slug("a" * 300)) == 60


def test_names_are_stable_and_map_back() -> None:
    text = "Beyoncé Giselle Knowles-Carter is an American singer."
    key = bench.paragraph_key(text)
    name = bench.document_name("squad11", "Beyoncé", 3, key)
    assert name == f"squad11/Beyonce-p0003-{key[:12]}"
    assert name == bench.document_name("squad11", "Beyoncé", 3, bench.paragraph_key(text))
    # Whitespace does not make another paragraph; other text does.
    assert bench.paragraph_key(" Beyoncé  Giselle\nKnowles-Carter is an American singer. ") == key
    assert bench.paragraph_key(text + "!") != key


def test_collect_dedupes_identical_contexts_and_numbers_per_article() -> None:
    examples = [
        ex("1", "squad11", "A", "first paragraph of A"),
        ex("2", "squad11", "A", "first paragraph of A"),  # same paragraph, another question
        ex("3", "squad11", "A", "second paragraph of A"),
        ex("4", "squad11", "B", "first paragraph of B"),
        ex("5", "qed", "A", "first  paragraph of A"),  # the same text in another data set
        ex("6", "qed", "C", "   "),  # no text: no document
    ]
    paragraphs, by_key = bench.collect_paragraphs(examples)
    assert [(p.source, p.title, p.number, p.questions) for p in paragraphs] == [
        ("squad11", "A", 0, 3),
        ("squad11", "A", 1, 1),
        ("squad11", "B", 0, 1),
    ]
    assert paragraphs[0].also == ["qed:A"]
    assert len({p.doc_id for p in paragraphs}) == 3
    # Every question's context maps to its paragraph's document.
    for e in examples[:5]:
        doc_id = by_key[bench.paragraph_key(e.context)]
        assert bench.paragraph_key(next(p for p in paragraphs if p.doc_id == doc_id).text) == (
            bench.paragraph_key(e.context)
        )
    assert paragraphs[1].record()["file"] == paragraphs[1].doc_id + ".txt"
    assert "text" not in paragraphs[1].record()


def test_sync_corpus_writes_once_removes_stale_and_ids_match(tmp_path: Path) -> None:
    paragraphs, _ = bench.collect_paragraphs(
        [ex("1", "squad11", "Été", "one"), ex("2", "policyqa", "P", "two")]
    )
    corpus = tmp_path / "corpus"
    assert bench.sync_corpus(paragraphs, corpus) == {"written": 2, "unchanged": 0, "removed": 0}
    assert bench.sync_corpus(paragraphs, corpus) == {"written": 0, "unchanged": 2, "removed": 0}
    # The builder's document ids are the documents' names.
    assert sorted(document_id(p, corpus) for p in discover(corpus)) == sorted(
        p.doc_id for p in paragraphs
    )
    assert (corpus / paragraphs[0].file).read_text(encoding="utf-8") == "one"
    assert bench.sync_corpus(paragraphs[:1], corpus) == {
        "written": 0,
        "unchanged": 1,
        "removed": 1,
    }
    assert not (corpus / "policyqa").exists()


def test_sample_questions_is_seeded_disjoint_and_in_corpus() -> None:
    examples = [ex(str(i), "squad11", "T", f"paragraph {i % 7}") for i in range(50)]
    in_corpus = {bench.paragraph_key(f"paragraph {i}"): f"d{i}" for i in range(5)}
    asked, warm = bench.sample_questions(examples, in_corpus, 10, 3, seed=1)
    again, _ = bench.sample_questions(examples, in_corpus, 10, 3, seed=1)
    assert [e.id for e in asked] == [e.id for e in again]
    assert len(asked) == 10 and len(warm) == 3
    assert not {e.id for e in asked} & {e.id for e in warm}
    assert all(bench.paragraph_key(e.context) in in_corpus for e in asked + warm)
