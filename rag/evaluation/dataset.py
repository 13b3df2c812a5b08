"""Evaluation sets: JSON Lines, one question a line.

``{"id", "question", "answers": [...], "documents": [...], "evidence": str | null}``;
an unanswerable question has empty ``answers`` and ``documents`` and a null
``evidence``. An optional ``context_id`` names the one document a
reading-comprehension run gives the question (SQuAD style).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rag.errors import EvalSetError

REQUIRED = ("id", "question", "answers", "documents", "evidence")


@dataclass(frozen=True, slots=True)
class EvalItem:
    id: str
    question: str
    answers: tuple[str, ...]
    documents: tuple[str, ...]
    evidence: str | None
    context_id: str | None = None
    source: str = ""  # the file it came from

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


def _item(data: object, where: str, source: str) -> EvalItem:
    if not isinstance(data, dict):
        raise EvalSetError(f"{where}: a record must be a JSON object")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise EvalSetError(f"{where}: missing field(s) {', '.join(missing)}")
    qid, question, answers = data["id"], data["question"], data["answers"]
    documents, evidence = data["documents"], data["evidence"]
    if not isinstance(qid, str) or not qid:
        raise EvalSetError(f"{where}: id must be a non-empty string")
    if not isinstance(question, str) or not question.strip():
        raise EvalSetError(f"{where}: question must be a non-empty string")
    if not isinstance(answers, list) or not all(isinstance(a, str) and a for a in answers):
        raise EvalSetError(f"{where}: answers must be a list of non-empty strings")
    if not isinstance(documents, list) or not all(isinstance(d, str) and d for d in documents):
        raise EvalSetError(f"{where}: documents must be a list of document ids")
    if evidence is not None and (not isinstance(evidence, str) or not evidence):
        raise EvalSetError(f"{where}: evidence must be a non-empty string or null")
    if answers and not documents:
        raise EvalSetError(f"{where}: an answerable question must list its documents")
    if not answers and (documents or evidence is not None):
        raise EvalSetError(f"{where}: an unanswerable question has no documents and no evidence")
    context = data.get("context_id")
    if context is not None and not isinstance(context, str):
        raise EvalSetError(f"{where}: context_id must be a string")
    return EvalItem(qid, question, tuple(answers), tuple(documents), evidence, context, source)


def load_eval_set(path: Path) -> list[EvalItem]:
    """Read and validate one file; errors name the file and line."""
    if not path.is_file():
        raise EvalSetError(f"evaluation set not found: {path}")
    items: list[EvalItem] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvalSetError(f"{where}: not valid JSON ({exc.msg})") from None
            item = _item(data, where, path.name)
            if item.id in seen:
                raise EvalSetError(f"{where}: duplicate id {item.id!r}")
            seen.add(item.id)
            items.append(item)
    if not items:
        raise EvalSetError(f"{path} holds no questions")
    return items


def load_eval_sets(paths: list[Path]) -> list[EvalItem]:
    items: list[EvalItem] = []
    seen: set[str] = set()
    for path in paths:
        for item in load_eval_set(path):
            if item.id in seen:
                raise EvalSetError(f"{path}: id {item.id!r} also appears in another set")
            seen.add(item.id)
            items.append(item)
    return items
