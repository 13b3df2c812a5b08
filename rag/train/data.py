"""Training data for the span reader: load, verify, split, window and label.

Two public data sets ship on this machine and they are the only training data allowed
(the project's ``eval/`` and the shared benchmarks are for measuring, never for
training or model selection):

* QED (``qed/*.jsonl``): Natural Questions queries over Wikipedia paragraphs, with
  ``answer_spans`` as ``[start, end)`` character offsets. The paragraphs are
  PTB-tokenised ("McBurney 's", ``\\`\\``...``''``): spaces around punctuation do not
  matter to a WordPiece tokenizer, but the PTB quotes do, so they are rewritten to
  plain double quotes *without changing any length* (offsets stay valid).
* PolicyQA (``policyqa/{dev,test}.json``, SQuAD 1.1 JSON): questions over privacy
  policy sections; several (noisy, crowd-sourced) answers per question. The first
  answer is the training target; all answers count when scoring the held-out slice.

Every answer is checked against its context (``context[start:end] == answer``);
examples that fail are dropped and counted per source. Apart from a handful of QED
questions marked "no answer in this paragraph" (``[-1, -1]``, kept as such), neither
set has unanswerable questions, so the reader learns "no answer" SQuAD 2.0 style
(start = end = the CLS token) from a seeded fraction of the windows that do not hold
the answer, and from a small set of cross-paragraph negatives (a QED question paired
with a lexically similar paragraph of another article that does not contain its
answer).

The held-out slice (about 5 %) is chosen by a hash of the context text: the same
paragraph is always on the same side, whatever else changes, so no paragraph leaks
from training into model selection.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rag.reader.qa_model import MAX_QUERY_TOKENS, EncodedWindow, encode_windows
from rag.store.files import sha256_file

QED = "qed"
POLICYQA = "policyqa"

_WORD = re.compile(r"[a-z0-9]+")
_STOP_WORDS = """a an the of in on at to for from by with and or is are was were be been
who what when where which why how does do did has have had it its this that these those as
into than there their they them he she his her you your we our us i my me can will would
should could not no yes about"""
_STOP = frozenset(_STOP_WORDS.split())


@dataclass(frozen=True, slots=True)
class Example:
    """One question over one context; ``answer_start == -1`` means no answer."""

    id: str
    source: str
    question: str
    context: str
    answer_start: int  # character offsets of the training target in ``context``
    answer_end: int
    answers: tuple[str, ...]  # every gold text, for scoring; empty when unanswerable
    title: str = ""

    @property
    def has_answer(self) -> bool:
        return self.answer_start >= 0


@dataclass(slots=True)
class SourceStats:
    """What happened to one source's examples, for the manifest."""

    source: str
    files: list[dict[str, Any]] = field(default_factory=list)
    read: int = 0
    dropped_offset_mismatch: int = 0
    dropped_empty: int = 0
    unanswerable: int = 0  # kept: annotated as "this paragraph has no answer"
    dropped_long_answer: int = 0  # answer longer than max_answer_tokens or no window holds it
    used: int = 0  # after every drop, train + held-out
    train: int = 0
    heldout: int = 0
    negatives_train: int = 0
    negatives_heldout: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class LabelledWindow:
    """A model input with its span target (both ``cls_index`` when it has no answer)."""

    window: EncodedWindow
    example_index: int
    start_position: int
    end_position: int

    @property
    def has_answer(self) -> bool:
        return self.start_position != self.window.cls_index


@dataclass(slots=True)
class WindowStats:
    """Counts of one :func:`build_windows` call."""

    examples_in: int = 0
    examples_kept: int = 0
    dropped_long_answer: Counter[str] = field(default_factory=Counter)
    windows: int = 0
    answer_windows: int = 0
    no_answer_windows: int = 0  # kept, including the negatives' windows
    no_answer_windows_skipped: int = 0  # dropped by subsampling

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["dropped_long_answer"] = dict(self.dropped_long_answer)
        return d


def file_record(path: Path) -> dict[str, Any]:
    """Name, size and sha256 of a data file, as written to the manifest."""
    return {"path": str(path), "size": path.stat().st_size, "sha256": sha256_file(path)}


def normalize_ptb_quotes(text: str) -> str:
    """Rewrite PTB quotes (````` and ``''``) to ``"`` without changing the length.

    QED paragraphs come PTB-tokenised; the service reads ordinary text with ``"``. The
    spare character becomes a space on the outer side of the quote, which the
    tokenizer ignores, so every character offset stays valid.
    """
    return text.replace("``", ' "').replace("''", '" ')


def _trim(context: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` so it neither starts nor ends on whitespace."""
    while start < end and context[start].isspace():
        start += 1
    while end > start and context[end - 1].isspace():
        end -= 1
    return start, end


def load_qed(paths: Sequence[Path]) -> tuple[list[Example], SourceStats]:
    """Read QED JSON Lines; keep an example only if every span matches its text.

    The first span is the training target; all span texts are gold answers (a few
    questions list several items, e.g. several actors).
    """
    stats = SourceStats(source=QED)
    examples: list[Example] = []
    for path in sorted(paths):
        stats.files.append(file_record(path))
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                stats.read += 1
                context = row["paragraph_text"]
                spans = row.get("answer_spans") or []
                texts = row.get("answer_text") or []
                question = row["question_text"].strip()
                if not question or not spans or len(spans) != len(texts):
                    stats.dropped_empty += 1
                    continue
                if all(s < 0 for s, _ in spans):
                    # QED's own "the paragraph does not give the answer" ([-1, -1], ""):
                    # a genuine unanswerable question, kept as one.
                    stats.unanswerable += 1
                    examples.append(
                        Example(
                            id=f"qed:{row.get('example_id', f'{path.name}:{line_no}')}",
                            source=QED,
                            question=question,
                            context=normalize_ptb_quotes(context),
                            answer_start=-1,
                            answer_end=-1,
                            answers=(),
                            title=row.get("title_text", ""),
                        )
                    )
                    continue
                if any(context[s:e] != t for (s, e), t in zip(spans, texts, strict=True)):
                    stats.dropped_offset_mismatch += 1
                    continue
                context = normalize_ptb_quotes(context)
                golds = []
                for s, e in spans:
                    a, b = _trim(context, s, e)
                    if a < b:
                        golds.append((a, b))
                if not golds:
                    stats.dropped_empty += 1
                    continue
                examples.append(
                    _answered(
                        f"qed:{row.get('example_id', f'{path.name}:{line_no}')}",
                        QED,
                        question,
                        context,
                        golds,
                        row.get("title_text", ""),
                    )
                )
    return examples, stats


def _answered(
    example_id: str,
    source: str,
    question: str,
    context: str,
    golds: list[tuple[int, int]],
    title: str,
) -> Example:
    """An answerable example: the first gold span is the training target, and every
    distinct gold text is an acceptable answer."""
    start, end = golds[0]
    return Example(
        id=example_id,
        source=source,
        question=question,
        context=context,
        answer_start=start,
        answer_end=end,
        answers=tuple(dict.fromkeys(context[a:b] for a, b in golds)),
        title=title,
    )


def load_policyqa(paths: Sequence[Path]) -> tuple[list[Example], SourceStats]:
    """Read PolicyQA (SQuAD 1.1 JSON); answers whose text is not at ``answer_start`` are
    discarded, and a question left with none is dropped as an offset mismatch."""
    stats = SourceStats(source=POLICYQA)
    examples: list[Example] = []
    for path in sorted(paths):
        stats.files.append(file_record(path))
        data = json.loads(path.read_text(encoding="utf-8"))
        for article in data["data"]:
            title = article.get("title", "")
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                for qa in paragraph["qas"]:
                    stats.read += 1
                    question = qa["question"].strip()
                    raw = qa.get("answers") or []
                    if not question or not raw:
                        stats.dropped_empty += 1
                        continue
                    good = []
                    for ans in raw:
                        s = int(ans["answer_start"])
                        e = s + len(ans["text"])
                        if context[s:e] == ans["text"]:
                            a, b = _trim(context, s, e)
                            if a < b:
                                good.append((a, b))
                    if len(good) < len(raw):
                        stats.dropped_offset_mismatch += 1
                        continue
                    examples.append(
                        _answered(
                            f"policyqa:{path.stem}:{qa['id']}",
                            POLICYQA,
                            question,
                            context,
                            good,
                            title,
                        )
                    )
    return examples, stats


def context_key(example: Example) -> str:
    """The split key: the source and the context text, hashed."""
    return hashlib.sha256(f"{example.source}\n{example.context}".encode()).hexdigest()


def is_heldout(example: Example, fraction: float) -> bool:
    """Whether the example's context belongs to the held-out slice.

    A hash instead of a random draw: the same paragraph lands on the same side in
    every run and whatever other examples are added or dropped.
    """
    return int(context_key(example)[:12], 16) % 1_000_000 < round(fraction * 1_000_000)


def split_examples(
    examples: Iterable[Example], fraction: float
) -> tuple[list[Example], list[Example]]:
    """(train, held-out), disjoint by context, order preserved."""
    train: list[Example] = []
    heldout: list[Example] = []
    for ex in examples:
        (heldout if is_heldout(ex, fraction) else train).append(ex)
    return train, heldout


def _terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOP and len(w) > 2}


def _fold(text: str) -> str:
    return " ".join(_WORD.findall(normalize_ptb_quotes(text).lower()))


def make_negatives(
    examples: Sequence[Example],
    fraction: float,
    seed: int,
    *,
    source: str = QED,
    candidates: int = 200,
) -> list[Example]:
    """Pair a seeded ``fraction`` of ``source`` questions with a paragraph that does not
    answer them.

    Windows cut from the answer's own paragraph teach only "the answer is elsewhere in
    this article"; the service also reads passages that are merely on a similar topic.
    So each chosen question gets, out of ``candidates`` random paragraphs of the same
    source (and the same split: the caller passes one split at a time), the one sharing
    most content words with the question, excluding its own article and any paragraph
    that contains one of its answers. Only QED is used: its questions are specific
    facts, whereas PolicyQA's generic questions ("do you share my data?") are often
    answered by other sections too, which would make false negatives.
    """
    if fraction <= 0:
        return []
    pool = [ex for ex in examples if ex.source == source and ex.has_answer]
    contexts: dict[str, tuple[str, str]] = {}
    for ex in pool:
        contexts.setdefault(ex.context, (ex.title, _fold(ex.context)))
    texts = list(contexts)
    if len(texts) < 2:
        return []
    rng = random.Random(seed)
    chosen = [ex for ex in pool if rng.random() < fraction]
    folded_terms = {t: _terms(contexts[t][1]) for t in texts}
    negatives: list[Example] = []
    for ex in chosen:
        q_terms = _terms(ex.question)
        golds = [_fold(a) for a in ex.answers]
        best: tuple[int, str] | None = None
        for text in rng.sample(texts, min(candidates, len(texts))):
            title, folded = contexts[text]
            if text == ex.context or (ex.title and title == ex.title):
                continue
            if any(g and g in folded for g in golds):
                continue
            overlap = len(q_terms & folded_terms[text])
            if best is None or overlap > best[0]:
                best = (overlap, text)
        if best is None:
            continue
        negatives.append(
            Example(
                id=f"{ex.id}:neg",
                source=source,
                question=ex.question,
                context=best[1],
                answer_start=-1,
                answer_end=-1,
                answers=(),
                title=contexts[best[1]][0],
            )
        )
    return negatives


def label_window(window: EncodedWindow, start_char: int, end_char: int) -> tuple[int, int]:
    """Token positions of ``[start_char, end_char)`` in the window, or CLS if not whole.

    An answer only partly inside the window is labelled "no answer" (SQuAD 2.0
    convention): the neighbouring window, which shares ``doc_stride`` tokens, holds it.
    """
    cls = window.cls_index
    if start_char < 0:
        return cls, cls
    offsets = window.offsets
    lo, hi = window.context_start, window.context_end
    if offsets[lo][0] > start_char or offsets[hi][1] < end_char:
        return cls, cls
    i = lo
    while i <= hi and offsets[i][0] <= start_char:
        i += 1
    start = i - 1
    j = hi
    while j >= lo and offsets[j][1] >= end_char:
        j -= 1
    end = j + 1
    if start < lo or end > hi or end < start:
        return cls, cls
    return start, end


def build_windows(
    examples: Sequence[Example],
    tokenizer: Any,
    *,
    max_seq_len: int,
    doc_stride: int,
    max_answer_tokens: int,
    no_answer_keep: float,
    seed: int,
    max_query_tokens: int = MAX_QUERY_TOKENS,
    chunk: int = 512,
) -> tuple[list[Example], list[LabelledWindow], WindowStats]:
    """Window every example and label each window's start/end token.

    Returns the examples that were kept (``example_index`` of each window points into
    this list), the windows and counts. An answerable example is dropped when no
    window holds its whole answer or the answer is longer than ``max_answer_tokens``
    (the decoder would never produce it, and such answers are whole clauses that teach
    long spans). Windows of an answerable example that do not hold its answer are kept
    with probability ``no_answer_keep`` (seeded); an unanswerable example keeps its
    first window only, so a long paragraph does not weigh more than a short one.
    """
    stats = WindowStats(examples_in=len(examples))
    rng = random.Random(seed)
    kept_examples: list[Example] = []
    out: list[LabelledWindow] = []
    for c in range(0, len(examples), chunk):
        batch = examples[c : c + chunk]
        windows = encode_windows(
            tokenizer,
            [ex.question for ex in batch],
            [ex.context for ex in batch],
            max_seq_len=max_seq_len,
            doc_stride=doc_stride,
            max_query_tokens=max_query_tokens,
        )
        by_pair: dict[int, list[EncodedWindow]] = {}
        for w in windows:
            by_pair.setdefault(w.pair_index, []).append(w)
        for k, ex in enumerate(batch):
            ws = by_pair.get(k, [])
            if not ws:
                continue
            labels = [label_window(w, ex.answer_start, ex.answer_end) for w in ws]
            if ex.has_answer:
                inside = [(s, e) for w, (s, e) in zip(ws, labels, strict=True) if s != w.cls_index]
                if not inside or max(e - s + 1 for s, e in inside) > max_answer_tokens:
                    stats.dropped_long_answer[ex.source] += 1
                    continue
            index = len(kept_examples)
            kept_examples.append(ex)
            for n, (w, (s, e)) in enumerate(zip(ws, labels, strict=True)):
                lw = LabelledWindow(window=w, example_index=index, start_position=s, end_position=e)
                if lw.has_answer:
                    stats.answer_windows += 1
                elif ex.has_answer and rng.random() >= no_answer_keep:
                    stats.no_answer_windows_skipped += 1
                    continue
                elif not ex.has_answer and n > 0:
                    continue
                else:
                    stats.no_answer_windows += 1
                out.append(lw)
    stats.examples_kept = len(kept_examples)
    stats.windows = len(out)
    return kept_examples, out, stats
