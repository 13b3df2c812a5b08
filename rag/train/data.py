"""Training data for the span reader: load, verify, split, window and label.

Every data set of ``../shared/datasets`` (its README gives counts, licences and caveats)
is declared once in :data:`SOURCES` and read by one of two loaders; the project's
``eval/`` and the shared benchmarks are for measuring, never for training or model
selection.

* SQuAD-format JSON (:func:`load_squad`): SQuAD 1.1 train, SQuAD 2.0 dev-28,
  SQuADShifts, COVID-QA, ContractNLI, PolicyQA. ``is_impossible`` questions become
  no-answer targets (start = end = the CLS token). SQuAD 1.1 answers whose position was
  guessed (``offset_source: "heuristic"``) are dropped.
* QED JSON Lines (:func:`load_qed`): PTB-tokenised paragraphs whose PTB quotes are
  rewritten to plain double quotes *without changing any length*.

Every answer is checked against its context (``context[start:end] == answer``);
examples that fail are dropped and counted per source. Windows of a paragraph that do
not hold the answer are further no-answer examples (a seeded fraction of them), and so
are cross-article negatives: a factual question paired with a lexically similar
paragraph of another article that does not contain its answer, and adversarial twins
(:func:`make_adversarial`): a question with one name or number swapped for one its
paragraph never mentions.

The held-out slice for model selection is chosen by *article* (title, or document id),
never by question or paragraph, per source, by a hash order: the same articles are held
out in every run.
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
SQUAD11 = "squad11"
SQUAD2 = "squad2"
UNANSQ = "unansq"
SHIFTS = "squadshifts"
COVID = "covidqa"
CONTRACTNLI = "contractnli"

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
    dropped_heuristic: int = 0  # SQuAD 1.1 answers whose position was guessed
    dropped_empty: int = 0
    unanswerable: int = 0  # kept: annotated as "this paragraph has no answer"
    dropped_long_answer: int = 0  # answer longer than max_answer_tokens or no window holds it
    used: int = 0  # after every drop, train + held-out
    train: int = 0
    heldout: int = 0
    negatives_train: int = 0
    negatives_heldout: int = 0
    adversarial_train: int = 0  # unanswerable twins (make_adversarial), train only

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


def load_squad(
    paths: Sequence[Path], source: str, *, keep_heuristic: bool = False
) -> tuple[list[Example], SourceStats]:
    """Read SQuAD 1.1 / 2.0 JSON (``is_impossible`` marks an unanswerable question).

    Every answer must sit at its ``answer_start`` (``context[s:s+len(text)] == text``);
    a question with any answer that does not is dropped and counted as an offset
    mismatch. SQuAD 1.1 train answers whose position was guessed
    (``offset_source: "heuristic"``, right about 4 times in 5) are dropped unless
    ``keep_heuristic``: a wrong target teaches a wrong span, and the 78k certain ones
    are more than a CPU run can use. Contexts without a title (COVID-QA) are keyed by
    their ``document_id`` so the held-out split stays by document.
    """
    stats = SourceStats(source=source)
    examples: list[Example] = []
    for path in sorted(paths):
        stats.files.append(file_record(path))
        data = json.loads(path.read_text(encoding="utf-8"))
        for a_no, article in enumerate(data["data"]):
            title = str(article.get("title") or "")
            for p_no, paragraph in enumerate(article["paragraphs"]):
                context = paragraph["context"]
                doc = title or str(paragraph.get("document_id") or f"{path.stem}:{a_no}:{p_no}")
                for qa in paragraph["qas"]:
                    stats.read += 1
                    question = str(qa["question"]).strip()
                    qid = f"{source}:{qa['id']}"
                    if not question:
                        stats.dropped_empty += 1
                        continue
                    if qa.get("is_impossible"):
                        stats.unanswerable += 1
                        examples.append(Example(qid, source, question, context, -1, -1, (), doc))
                        continue
                    raw = qa.get("answers") or []
                    if not raw:
                        stats.dropped_empty += 1
                        continue
                    if not keep_heuristic and any(
                        ans.get("offset_source") == "heuristic" for ans in raw
                    ):
                        stats.dropped_heuristic += 1
                        continue
                    good = []
                    for ans in raw:
                        s = int(ans["answer_start"])
                        e = s + len(ans["text"])
                        if context[s:e] == ans["text"]:
                            a, b = _trim(context, s, e)
                            if a < b:
                                good.append((a, b))
                    if len(good) < len(raw) or not good:
                        stats.dropped_offset_mismatch += 1
                        continue
                    examples.append(_answered(qid, source, question, context, good, doc))
    return examples, stats


def load_policyqa(paths: Sequence[Path]) -> tuple[list[Example], SourceStats]:
    """PolicyQA is SQuAD 1.1 JSON."""
    return load_squad(paths, POLICYQA)


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One data set of ``../shared/datasets``: where it lies and how it is read."""

    name: str
    folder: str
    pattern: str
    kind: str  # "squad" or "qed"
    licence: str
    attribution: str
    #: Another source whose articles these are: held out exactly when that source holds
    #: the same article out (a question beside its paired twin would flatter the model).
    split_with: str | None = None


#: Every training source of ``../shared/datasets`` (its README gives counts and caveats).
SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        SQUAD11,
        "squad11-train",
        "*.json",
        "squad",
        "CC BY-SA 4.0",
        "SQuAD 1.1 train, Rajpurkar et al. 2016 (rebuilt from the SQuAD explorer pages)",
    ),
    SourceSpec(
        SQUAD2,
        "squad2-dev-28",
        "*.json",
        "squad",
        "CC BY-SA 4.0",
        "SQuAD 2.0 dev, 28 of 35 articles, Rajpurkar, Jia & Liang 2018",
    ),
    SourceSpec(
        UNANSQ,
        "squad2-train-unansq",
        "*.json",
        "squad",
        "CC BY-SA 4.0",
        "SQuAD 2.0 train unanswerable questions, Rajpurkar, Jia & Liang 2018, as paired by "
        "UnAnsQ (Zhu et al. 2019, haichao592/UnAnsQ)",
        split_with=SQUAD11,
    ),
    SourceSpec(
        SHIFTS,
        "squadshifts-new-wiki",
        "*.json",
        "squad",
        "CC BY 4.0",
        "SQuADShifts new-wiki, Miller et al. 2020",
    ),
    SourceSpec(
        COVID,
        "covid-qa",
        "*.json",
        "squad",
        "Apache-2.0",
        "COVID-QA, Möller et al. 2020 (deepset-ai/COVID-QA)",
    ),
    SourceSpec(
        CONTRACTNLI,
        "contractnli",
        "*.json",
        "squad",
        "Apache-2.0",
        "ContractNLI recast as QA, Koreeda & Manning 2021",
    ),
    SourceSpec(QED, "qed", "*.jsonl", "qed", "CC BY-SA 3.0", "QED, Lamm et al. 2021"),
    SourceSpec(POLICYQA, "policyqa", "*.json", "squad", "MIT", "PolicyQA, Ahmad et al. 2020"),
)


def load_source(spec: SourceSpec, data_dir: Path) -> tuple[list[Example], SourceStats]:
    """Load one source from ``data_dir / spec.folder``; a missing folder is an error."""
    folder = data_dir / spec.folder
    files = sorted(folder.glob(spec.pattern))
    if not files:
        raise FileNotFoundError(f"no {spec.pattern} files in {folder}")
    if spec.kind == "qed":
        return load_qed(files)
    # Only SQuAD 1.1 train had its positions rebuilt by guessing (see load_squad).
    return load_squad(files, spec.name, keep_heuristic=spec.name != SQUAD11)


def parse_mix(text: str) -> dict[str, float]:
    """``"squad11=0.4,squad2=1"`` -> fractions of each source's examples to use.

    Sources not named are not used; a fraction must be in (0, 1].
    """
    known = {s.name for s in SOURCES}
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in known:
            raise ValueError(f"unknown source {name!r} in mix (known: {sorted(known)})")
        fraction = float(value) if value else 1.0
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction of {name} must be in (0, 1], got {fraction}")
        mix[name] = fraction
    if not mix:
        raise ValueError("the mix names no source")
    return mix


def sample_fraction(examples: Sequence[Example], fraction: float, seed: int) -> list[Example]:
    """A seeded ``fraction`` of ``examples`` (all when 1), order preserved."""
    if fraction >= 1:
        return list(examples)
    rng = random.Random(seed)
    return [ex for ex in examples if rng.random() < fraction]


def split_key(example: Example) -> str:
    """The split unit: the article (title or document id), else the context itself."""
    unit = example.title or example.context
    return hashlib.sha256(f"{example.source}\n{unit}".encode()).hexdigest()


def heldout_units(examples: Iterable[Example], fraction: float) -> set[str]:
    """The held-out articles: per source, the ``fraction`` of its articles (at least one)
    whose hashed key sorts first.

    By article, never by question or paragraph: questions on one article share names and
    wording, so a held-out question beside a trained one on the same article would
    flatter the model. A hash order rather than a random draw: the same articles are
    held out in every run.
    """
    by_source: dict[str, set[str]] = {}
    for ex in examples:
        by_source.setdefault(ex.source, set()).add(split_key(ex))
    chosen: set[str] = set()
    for keys in by_source.values():
        n = max(1, round(fraction * len(keys)))
        chosen.update(sorted(keys)[:n])
    return chosen


def split_examples(
    examples: Sequence[Example], fraction: float | dict[str, float]
) -> tuple[list[Example], list[Example]]:
    """(train, held-out), disjoint by article, order preserved.

    ``fraction`` is one fraction for every source or one per source (sources not named
    get the smallest one given).
    """
    fractions = fraction if isinstance(fraction, dict) else {}
    default = min(fractions.values()) if fractions else float(fraction)  # type: ignore[arg-type]
    held: set[str] = set()
    for source in {ex.source for ex in examples}:
        subset = [ex for ex in examples if ex.source == source]
        held |= heldout_units(subset, fractions.get(source, default))
    train: list[Example] = []
    heldout: list[Example] = []
    for ex in examples:
        (heldout if split_key(ex) in held else train).append(ex)
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


#: A run of capitalised words: the names a question asks about ("Notre Dame", "Beyoncé").
_NAME = re.compile(r"\b[A-Z][\w'’.-]*(?:\s+(?:of\s+|the\s+|de\s+)?[A-Z][\w'’.-]*)*")
_NUMBER = re.compile(r"\b\d+\b")
_QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how in on at during after before the a an "
    "is are was were did does do can could according".split()
)


def _question_names(question: str) -> list[re.Match[str]]:
    """Capitalised names in ``question``, past its first word (which is capitalised
    whatever it is) and not a stop word ("For", "The")."""
    return [
        m
        for m in _NAME.finditer(question)
        if m.start() > 0
        and m.group(0).split()[0].lower() not in _QUESTION_WORDS | _STOP
        and len(m.group(0)) > 2
    ]


def _swap_number(question: str, folded_context: str, rng: random.Random) -> str | None:
    """Change one number of the question to a nearby one its context never mentions."""
    matches = [m for m in _NUMBER.finditer(question) if m.group(0) in folded_context.split()]
    if not matches:
        return None
    m = rng.choice(matches)
    n = int(m.group(0))
    deltas = [d for d in range(-12, 13) if d] if 1000 <= n <= 2100 else [n, 1, 2, 3, -1]
    rng.shuffle(deltas)
    for d in deltas:
        new = str(n + d)
        if n + d > 0 and new not in folded_context.split():
            return question[: m.start()] + new + question[m.end() :]
    return None


def _swap_name(
    question: str, folded_context: str, names: Sequence[str], rng: random.Random
) -> str | None:
    """Change one name of the question that its context holds to a name from another
    article that the context never mentions."""
    padded = f" {folded_context} "
    matches = [m for m in _question_names(question) if f" {_fold(m.group(0))} " in padded]
    if not matches or not names:
        return None
    m = rng.choice(matches)
    for _ in range(20):
        new = rng.choice(names)
        folded = _fold(new)
        if folded and f" {folded} " not in padded and folded != _fold(m.group(0)):
            return question[: m.start()] + new + question[m.end() :]
    return None


def make_adversarial(
    examples: Sequence[Example],
    fraction: float,
    seed: int,
    *,
    sources: Sequence[str] = (SQUAD11, SHIFTS),
) -> list[Example]:
    """Unanswerable twins of a seeded ``fraction`` of answerable ``sources`` questions:
    the same paragraph, with one name or number of the question swapped for one the
    paragraph never mentions ("When did Beyoncé leave Destiny's Child?" -> "When did
    Rihanna leave Destiny's Child?").

    Why: the only adversarial unanswerable questions in the shared data are SQuAD 2.0
    dev-28's ~4k, and the model abstained on 15 % of held-out ones. Such a question stays
    on topic and its other words still match the paragraph, so only reading which entity
    or date is asked about tells it apart from its answerable twin; cross-article
    negatives (:func:`make_negatives`) never teach that. Replacement names come from
    other articles' questions, so they are real names of the same register; a swap is
    made only when the original name or number appears in the paragraph and the new one
    does not, so the twin's question is one the paragraph cannot answer. Antonym and
    negation edits (the other SQuAD 2.0 kinds) are not made: without a lexicon they
    often leave the question answerable.
    """
    if fraction <= 0:
        return []
    pool = [ex for ex in examples if ex.source in sources and ex.has_answer]
    names_by_title: dict[str, list[str]] = {}
    for ex in pool:
        names_by_title.setdefault(ex.title, []).extend(
            m.group(0) for m in _question_names(ex.question)
        )
    titles = sorted(t for t, names in names_by_title.items() if names)
    rng = random.Random(seed)
    out: list[Example] = []
    for ex in pool:
        if rng.random() >= fraction:
            continue
        folded_context = _fold(ex.context)
        question = _swap_number(ex.question, folded_context, rng) if rng.random() < 0.3 else None
        pick = rng.randrange(len(titles)) if titles else 0
        other = titles[pick] if titles else ex.title
        if other == ex.title and len(titles) > 1:  # another article's names, never its own
            other = titles[(pick + 1) % len(titles)]
        if question is None and other != ex.title:
            question = _swap_name(ex.question, folded_context, names_by_title[other], rng)
        if question is None:
            question = _swap_number(ex.question, folded_context, rng)
        if question is None:
            continue
        out.append(
            Example(
                id=f"{ex.id}:adv",
                source=ex.source,
                question=question,
                context=ex.context,
                answer_start=-1,
                answer_end=-1,
                answers=(),
                title=ex.title,
            )
        )
    return out


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
