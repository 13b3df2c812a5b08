"""The hand-written evaluation set: schema, verbatim answers and evidence, coverage."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from rag.errors import EvalSetError
from rag.evaluation.dataset import REQUIRED, load_eval_set, load_eval_sets
from rag.store import Index

ROOT = Path(__file__).resolve().parents[2]
SETS = [ROOT / "eval" / "dev.jsonl", ROOT / "eval" / "test.jsonl"]


def test_schema_and_unique_ids() -> None:
    items = load_eval_sets(SETS)  # raises on any schema error or duplicate id
    for path in SETS:
        for line in path.read_text(encoding="utf-8").splitlines():
            assert list(json.loads(line))[:5] == list(REQUIRED)
    assert len({i.id for i in items}) == len(items)


def test_size_and_mix_required_by_the_issue() -> None:
    items = load_eval_sets(SETS)
    assert len(items) >= 120
    unanswerable = [i for i in items if not i.answerable]
    assert len(unanswerable) >= 25
    per_doc = Counter(d for i in items for d in i.documents)
    assert len(per_doc) == 5 and min(per_doc.values()) >= 15
    test_items = load_eval_set(SETS[1])
    assert sum(1 for i in test_items if not i.answerable) >= 10


@pytest.mark.slow
def test_answers_and_evidence_stand_verbatim_in_the_stored_text(index_dir: Path) -> None:
    index = Index.load(index_dir)
    for item in load_eval_sets(SETS):
        if not item.answerable:
            continue
        texts = [index.documents[d].text for d in item.documents]  # KeyError: unknown id
        for answer in item.answers:
            assert any(answer in t for t in texts), (item.id, answer)
        assert item.evidence is not None
        assert any(item.evidence in t for t in texts), (item.id, item.evidence)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "a", "question": "q"}', "missing field"),
        (
            '{"id": "a", "question": "", "answers": [], "documents": [], "evidence": null}',
            "question",
        ),
        (
            '{"id": "a", "question": "q", "answers": ["x"], "documents": [], "evidence": "x"}',
            "documents",
        ),
        (
            '{"id": "a", "question": "q", "answers": [], "documents": ["d"], "evidence": null}',
            "unanswerable",
        ),
        ("not json", "not valid JSON"),
    ],
)
def test_schema_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(EvalSetError, match=message) as err:
        load_eval_set(path)
    assert "bad.jsonl:1" in str(err.value)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    row = '{"id": "a", "question": "q", "answers": [], "documents": [], "evidence": null}\n'
    path = tmp_path / "dup.jsonl"
    path.write_text(row + row)
    with pytest.raises(EvalSetError, match="duplicate id"):
        load_eval_set(path)
