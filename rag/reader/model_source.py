"""The extractive QA model as a candidate source and as a feature producer.

The model reads the read passages *whole*, in its own windows (plus the header
sentences a question about the letter itself needs), never a heuristic selection of
them. It then does two jobs:

* it proposes its own best spans (snapped to whole words) as candidates;
* it scores every candidate of the question, whoever proposed it: the start logit of
  its first token plus the end logit of its last, in the window that holds it best,
  against that window's null (no-answer) score and against the question's null score,
  the lowest over every window of every passage (SQuAD 2.0's rule, across passages).

The loaded model lives on the source (one per pipeline), not in a module cache.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from rag.reader.base import Candidate, ReadContext
from rag.reader.evidence import EvidenceSentence
from rag.reader.heuristic import span_candidate_features
from rag.reader.qa_model import QAModel, WindowScores, top_spans, window_scores
from rag.reader.question import EMAIL, PHONE, URL, AnswerType
from rag.reader.scoring import QA_UNSEEN
from rag.reader.spans import SpanCandidate, entity_types
from rag.reader.spans import candidates as spans_in_sentence
from rag.store.index import Index
from rag.types import Entity, Passage, Span

#: Spans the QA model proposes per question.
QA_TOP_N = 20


def qa_model_for(path: str, *, runtime: str = "onnx", coalesce: bool = True) -> QAModel:
    """A QAModel with the window settings the model was trained with, when it says so."""
    trained: dict[str, int] = {}
    manifest = Path(path) / "manifest.json"
    if manifest.is_file():
        hyper = json.loads(manifest.read_text(encoding="utf-8")).get("hyperparameters", {})
        trained = {
            key: hyper[key]
            for key in ("max_seq_len", "doc_stride", "max_answer_tokens")
            if isinstance(hyper.get(key), int)
        }
    return QAModel(path, runtime=runtime, coalesce=coalesce, **trained)


def model_sha256(path: str) -> str | None:
    """sha256 of the QA model's weights: from its manifest, else hashed; None if absent.

    This is what fitted scorer weights are tied to: another model, another sha.
    """
    folder = Path(path)
    manifest = folder / "manifest.json"
    if manifest.is_file():
        files = json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
        sha = files.get("model.safetensors", {}).get("sha256")
        if isinstance(sha, str):
            return sha
    weights = folder / "model.safetensors"
    if weights.is_file():
        return hashlib.sha256(weights.read_bytes()).hexdigest()
    return None


@dataclass(frozen=True, slots=True)
class Snippet:
    """A stretch of a document the QA model reads, in document offsets."""

    document_id: str
    start: int
    end: int


def reading(context: ReadContext, evidence: list[EvidenceSentence]) -> list[Snippet]:
    """What the model reads: every read passage whole, and the header sentences found for
    a question about the letter itself; overlapping stretches merged per document."""
    by_doc: dict[str, list[tuple[int, int]]] = {}
    for p in context.passages:
        by_doc.setdefault(p.chunk.document_id, []).append((p.chunk.start, p.chunk.end))
    for ev in evidence:
        if ev.metadata:
            by_doc.setdefault(ev.document_id, []).append((ev.span.start, ev.span.end))
    out = []
    for doc_id, ranges in by_doc.items():
        ranges.sort()
        merged = [list(ranges[0])]
        for lo, hi in ranges[1:]:
            if lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        out += [Snippet(doc_id, lo, hi) for lo, hi in merged]
    return out


@dataclass(slots=True)
class _Window:
    """One model window over one passage, with its logits, in document offsets."""

    document_id: str
    part: int  # which of the stretches read together this window lies in
    starts: np.ndarray  # document offset where each context token starts
    ends: np.ndarray  # document offset where each context token ends
    scores: WindowScores
    best: list[tuple[int, int, float]]  # the model's top spans: document offsets, score


def _windows(qa: QAModel, question: str, parts: list[Snippet], index: Index) -> list[_Window]:
    texts = [index.documents[p.document_id].text[p.start : p.end] for p in parts]
    out = []
    for window, s, e in qa.window_logits(question, texts):
        part = parts[window.pair_index]
        scored = window_scores(s, e, window, max_answer_tokens=qa.max_answer_tokens)
        out.append(
            _Window(
                document_id=part.document_id,
                part=window.pair_index,
                starts=np.array([part.start + a for a, _ in scored.offsets]),
                ends=np.array([part.start + b for _, b in scored.offsets]),
                scores=scored,
                best=[
                    (part.start + sp.start, part.start + sp.end, sp.score)
                    for sp in top_spans(scored, QA_TOP_N)
                ],
            )
        )
    return out


def passage_margins(
    qa: QAModel, question: str, passages: Sequence[Passage], index: Index
) -> list[float]:
    """Each passage's best span score over its no-answer score, read alone.

    How sure the reader is that the passage answers the question: a relevance it gives
    for free when it reads a passage (``bench/rerank.py --reader-model`` ranks by it).
    """
    parts = [Snippet(p.chunk.document_id, p.chunk.start, p.chunk.end) for p in passages]
    margins = [-math.inf] * len(parts)
    for w in _windows(qa, question, parts, index):
        best = max((score for _, _, score in w.best), default=-math.inf)
        margins[w.part] = max(margins[w.part], best - w.scores.null)
    return margins


def _score_span(
    windows: list[_Window], document_id: str, start: int, end: int
) -> tuple[float, float, float] | None:
    """Best (logit, probability, logit - null) of a document span over the windows holding it."""
    best: tuple[float, float, float] | None = None
    for w in windows:
        if w.document_id != document_id or start < w.starts[0] or end > w.ends[-1]:
            continue
        i = int(np.searchsorted(w.starts, start, side="right")) - 1
        j = int(np.searchsorted(w.ends, end, side="left"))
        if i < 0 or j >= len(w.ends) or j < i:
            continue
        logit = float(w.scores.start_logits[i] + w.scores.end_logits[j])
        prob = math.exp(logit - w.scores.log_z)
        if best is None or logit > best[0]:
            best = (logit, prob, logit - w.scores.null)
    return best


def _qa_spans(windows: list[_Window], top_n: int) -> list[tuple[str, int, int]]:
    """The model's own best spans over all windows, in document offsets, best first."""
    scored: dict[tuple[str, int, int], float] = {}
    for w in windows:
        for start, end, score in w.best:
            key = (w.document_id, start, end)
            scored[key] = max(scored.get(key, -math.inf), score)
    return [k for k, _ in sorted(scored.items(), key=lambda kv: -kv[1])[:top_n]]


#: Characters that join the parts of one word-like token: "M11295/16", "1,400", "1.24",
#: "10:30".
_JOINERS = "/.,:"
#: Punctuation (and markdown's emphasis asterisks) trimmed from the ends of a span, and
#: brackets or quotes trimmed when the span does not hold their partner.
_TRAILING = ".,;:!?*"
_LEADING = ",;:.!?*"
_PAIRS = {"(": ")", "[": "]", "“": "”", "‘": "’", '"': '"'}


def snap_to_words(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span that stops inside a word or a number to the whole of it.

    The model's sub-word tokens can stop inside a token ("M11295" of "M11295/16", "1" of
    "1,400"); a cited answer never cuts one in two. Only letters and digits, and the
    joiners between them, are taken in: brackets, quotes, dashes and possessives are
    left as the model drew them. Then stray punctuation at either end is trimmed: a
    full stop or comma, or a bracket or quote whose partner is not in the span
    ("CSE)" -> "CSE", but "1,000 m3/s (35,000 cu ft/s)" stays whole).
    """

    def joined(i: int) -> bool:
        """Whether text[i] is a joiner with letters or digits on both sides."""
        return (
            0 < i < len(text) - 1
            and text[i] in _JOINERS
            and text[i - 1].isalnum()
            and text[i + 1].isalnum()
        )

    while start > 0 and start < len(text) and text[start].isalnum():
        if text[start - 1].isalnum():
            start -= 1
        elif joined(start - 1) and text[start - 2].isdigit() and text[start].isdigit():
            start -= 2
        else:
            break
    while 0 < end < len(text) and text[end - 1].isalnum():
        if text[end].isalnum():
            end += 1
        elif joined(end):
            end += 2
        else:
            break
    # A currency sign belongs to its amount: "£1.24 million", never "1.24 million".
    if 0 < start < len(text) and text[start].isdigit() and text[start - 1] in _CURRENCY:
        start -= 1
    return _trim(text, start, end)


#: Signs written straight before an amount.
_CURRENCY = frozenset("£$€¥")


#: Contact details a model span must never cut: a phone number, an e-mail or a web
#: address is cited whole or not at all.
_WHOLE = (PHONE, EMAIL, URL)


def widen_to_patterns(text: str, start: int, end: int) -> tuple[int, int]:
    """Widen a span that cuts a phone number, an e-mail or a web address to take it whole
    ("303 3032" of "0300 303 3032", "www.gov.uk/" of "www.gov.uk/home-office")."""
    lo = text.rfind("\n", 0, start) + 1
    hi = text.find("\n", end)
    hi = len(text) if hi < 0 else hi
    line = text[lo:hi]
    new_start, new_end = start, end
    for pattern in _WHOLE:
        for match in pattern.finditer(line):
            m_start, m_end = lo + match.start(), lo + match.end()
            if m_start < end and start < m_end:  # overlaps the span
                new_start, new_end = min(new_start, m_start), max(new_end, m_end)
    return new_start, new_end


def snap(text: str, start: int, end: int) -> tuple[int, int]:
    """A model span made citable: whole words and numbers, whole contact details."""
    return _trim(text, *widen_to_patterns(text, *snap_to_words(text, start, end)))


def one_line(text: str, start: int, end: int) -> tuple[int, int]:
    """Cut a span at its first line break: cleaned text keeps line breaks only where
    they are real (a header line, a list item, a paragraph), and an answer never runs
    from one into the next ("M11295/16" of "CTS Reference: M11295/16\\n\\n24 October")."""
    cut = text.find("\n", start, end)
    if cut < 0:
        return start, end
    return _trim(text, start, cut)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop spaces, stray punctuation and unpaired brackets or quotes from both ends."""

    def unpaired(mark: str, inner: str) -> bool:
        if mark == '"':
            return inner.count('"') % 2 == 1
        partner = _PAIRS.get(mark) or next((o for o, c in _PAIRS.items() if c == mark), None)
        return partner is not None and partner not in inner

    while end - start > 1:
        inner = text[start:end]
        last, first = inner[-1], inner[0]
        if last.isspace() or last in _TRAILING or unpaired(last, inner):
            end -= 1
        elif first.isspace() or first in _LEADING or unpaired(first, inner):
            start += 1
        else:
            break
    return start, end


def model_span_kind(
    context: ReadContext,
    sentence: EvidenceSentence,
    start: int,
    end: int,
    cache: dict[tuple[str, int], dict[tuple[int, int], SpanCandidate]] | None = None,
) -> tuple[dict[AnswerType, float], str]:
    """The answer types and the kind of a model span, as the heuristic would type it.

    A span the heuristic also finds in its sentence (an entity, a pattern such as a phone
    number or an e-mail address, a run of capitals, a chain of names) gets that span's
    types and kind, so "0370 000 2288" is a contact detail whoever proposed it. A span
    holding two or more names ("Paul Lakin, Deputy Leader Martin Kimber") is a chain of
    names, as the heuristic's own chains are; anything else is a plain model span.
    ``cache`` (one dict per question) keeps a sentence's heuristic spans from being found
    again for each of the model's spans in it.
    """
    doc_id = sentence.document_id
    entities = context.index.annotations[doc_id].entities  # sorted by (start, end)
    key = (doc_id, sentence.span.start)
    spans = cache.get(key) if cache is not None else None
    if spans is None:
        text = context.index.documents[doc_id].text
        found = spans_in_sentence(
            text,
            sentence.span,
            _within(entities, sentence.span.start, sentence.span.end),
            clauses=False,
        )
        spans = {(c.start, c.end): c for c in found}
        if cache is not None:
            cache[key] = spans
    same = spans.get((start, end))
    if same is not None:
        return dict(same.types), same.source
    inside = _within(entities, start, end)
    types: dict[AnswerType, float] = {}
    for ent in inside:
        if ent.start == start and ent.end == end:
            for t, w in entity_types(ent.label).items():
                types[t] = max(types.get(t, 0.0), w)
    names = [e for e in inside if e.label in _NAME_LABELS]
    return types, "chain" if len(names) >= 2 else "model"


def _within(entities: Sequence[Entity], start: int, end: int) -> list[Entity]:
    """The entities lying whole inside [start, end), from a list sorted by start."""
    lo = bisect.bisect_left(entities, start, key=lambda e: e.start)
    hi = bisect.bisect_left(entities, end, key=lambda e: e.start)
    return [e for e in entities[lo:hi] if e.end <= end]


#: spaCy labels of names: a span holding two of them is a list of names.
_NAME_LABELS = frozenset({"PERSON", "ORG", "GPE", "LOC", "NORP", "FAC"})


class ModelSource:
    """The QA model: proposes its best spans and scores every candidate."""

    name = "model"

    def __init__(self, qa: QAModel) -> None:
        self.qa = qa

    @property
    def sha256(self) -> str | None:
        return model_sha256(self.qa.model_name_or_path)

    @property
    def runtime(self) -> str:
        return self.qa.runtime

    def warm_up(self) -> None:
        self.qa.warm_up()

    def read(self, context: ReadContext, evidence: list[EvidenceSentence]) -> list[_Window]:
        """The model's windows over what it reads for this question.

        Windows are kept in the context's memo by the stretch they cover, so a later
        step of reading by need reads only the stretches it adds (a stretch that grows
        because a neighbouring passage joined it is read again, whole).
        """
        parts = reading(context, evidence)
        memo = context.memo
        new = [p for p in parts if ("windows", p) not in memo]
        if new:
            fresh = _windows(self.qa, context.question.text, new, context.index)
            for i, part in enumerate(new):
                memo[("windows", part)] = [w for w in fresh if w.part == i]
        out: list[_Window] = []
        for part in parts:
            out += cast(list[_Window], memo[("windows", part)])
        return out

    def propose(
        self,
        context: ReadContext,
        evidence: list[EvidenceSentence],
        windows: list[_Window],
    ) -> list[Candidate]:
        """The model's own best spans, snapped to whole words, with the span features."""
        docs = context.index.documents
        keys = dict.fromkeys(
            (doc_id, *one_line(docs[doc_id].text, *snap(docs[doc_id].text, start, end)))
            for doc_id, start, end in _qa_spans(windows, QA_TOP_N)
        )
        out = []
        kinds: dict[tuple[str, int], dict[tuple[int, int], SpanCandidate]] = {}
        for doc_id, start, end in keys:
            if start >= end:
                continue
            cand = self._candidate_for(context, evidence, doc_id, start, end, kinds)
            if cand is not None:
                out.append(cand)
        return out

    def annotate(self, candidates: list[Candidate], windows: list[_Window]) -> None:
        """Give every candidate the model's features (in place)."""
        null = min((w.scores.null for w in windows), default=0.0)
        ranked = _qa_spans(windows, QA_TOP_N)
        rank = {k: r for r, k in enumerate(ranked)}
        for cand in candidates:
            key = (cand.document_id, cand.start, cand.end)
            scored = _score_span(windows, *key)
            if scored is None:
                feats = dict(QA_UNSEEN)
            else:
                logit, prob, gap = scored
                feats = {
                    "qa_seen": 1.0,
                    "qa_logit": logit,
                    "qa_prob": prob,
                    "qa_null_gap": gap,
                    "qa_margin": logit - null,
                }
            feats["qa_found"] = 1.0 if key in rank else 0.0
            feats["qa_rank"] = math.log1p(rank.get(key, QA_TOP_N))
            cand.features.update(feats)

    def _candidate_for(
        self,
        context: ReadContext,
        evidence: list[EvidenceSentence],
        doc_id: str,
        start: int,
        end: int,
        kinds: dict[tuple[str, int], dict[tuple[int, int], SpanCandidate]],
    ) -> Candidate | None:
        """A model span as a candidate with the span features, cited with the sentence it
        starts in (widened to its end when the span runs on); None when it is junk."""
        sentence = next(
            (s for s in evidence if s.document_id == doc_id and s.span.start <= start < s.span.end),
            None,
        )
        if sentence is None:
            return None
        span = SpanCandidate(start, end, *model_span_kind(context, sentence, start, end, kinds))
        cand = span_candidate_features(context, sentence, span, "model")
        if cand is not None and end > cand.sentence.end:
            cand.sentence = Span(cand.sentence.start, end)
        return cand
