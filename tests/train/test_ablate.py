"""The ablation's cross-validation: pure logic over synthetic candidates (no model).

A synthetic dev set where one feature (``qa_margin``) says which candidate is right and
whether the question is answerable, and another (``log_words``) is noise: leaving the
first out must cost F1 under cross-validation, leaving the noise out must not.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import rag.train.ablate as ablate
from rag.evaluation.dataset import EvalItem
from rag.reader.base import Candidate
from rag.reader.scoring import CALIBRATION_FEATURES, CAPS, RANKER_FEATURES
from rag.train.fit_scorer import Example
from rag.types import Span

QA = ["qa_seen", "qa_logit", "qa_prob", "qa_null_gap", "qa_margin", "qa_found", "qa_rank"]


def _examples(n: int, seed: int = 1) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for q in range(n):
        answerable = q % 3 != 0
        answer = f"answer {q}"
        item = EvalItem(f"q{q}", f"question {q}?", (answer,) if answerable else (), ("d",), None)
        cands = []
        for c in range(5):
            right = answerable and c == 2
            feats = {name: rng.gauss(0.0, 1.0) for name in QA}
            feats["qa_margin"] = rng.gauss(3.0 if right else -2.0, 0.7)
            feats["log_words"] = rng.gauss(1.0, 0.5)
            text = answer if right else f"wrong {q} {c}"
            cands.append(Candidate("d", c * 10, c * 10 + 5, text, Span(0, 50), features=feats))
        rng.shuffle(cands)
        out.append(Example(item, cands))
    return out


def test_folds_partition_every_question_once() -> None:
    parts = ablate.folds(23, 5, seed=3)
    assert len(parts) == 5
    assert sorted(i for part in parts for i in part) == list(range(23))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert parts == ablate.folds(23, 5, seed=3) and parts != ablate.folds(23, 5, seed=4)
    with pytest.raises(ValueError):
        ablate.folds(3, 5, seed=0)


def test_every_hand_made_feature_and_cap_is_a_variant() -> None:
    names = {v.name for v in ablate.variants("fused")}
    for feature in {*RANKER_FEATURES["fused"], *CALIBRATION_FEATURES["fused"]}:
        if feature in ("logit", "margin"):  # the scorer's own, not hand-made
            assert f"-{feature}" not in names
        else:
            assert f"-{feature}" in names
    assert {f"-cap {cap}" for cap in CAPS} <= names
    assert ablate.variants("fused")[0] == ablate.Variant("all")
    assert any(name.startswith("-qa (") for name in names)


def test_leaving_out_the_informative_feature_costs_f1_and_noise_does_not() -> None:
    dev = _examples(60)
    kwargs = {"k": 5, "seeds": (0,), "dev_weight": 1.0}
    full = ablate.cross_validate("transformers", dev, [], ablate.Variant("all"), **kwargs)
    blind = ablate.cross_validate(
        "transformers", dev, [], ablate.Variant("-qa_margin", frozenset({"qa_margin"})), **kwargs
    )
    noise = ablate.cross_validate(
        "transformers", dev, [], ablate.Variant("-log_words", frozenset({"log_words"})), **kwargs
    )
    assert full.metrics["f1"] > 0.9
    assert blind.metrics["f1"] < full.metrics["f1"] - 0.2
    assert noise.metrics["f1"] >= full.metrics["f1"] - 0.02
    assert len(full.thresholds) == 5


def test_a_held_out_question_is_never_fitted_on(monkeypatch: pytest.MonkeyPatch) -> None:
    dev = _examples(20)
    fitted_on: list[set[str]] = []
    real = ablate.fit_models

    def recording(reader, train, external, dev_weight, drop):  # type: ignore[no-untyped-def]
        fitted_on.append({ex.item.id for ex in train})
        return real(reader, train, external, dev_weight, drop)

    monkeypatch.setattr(ablate, "fit_models", recording)
    ablate.cross_validate("transformers", dev, [], ablate.Variant("all"), k=4, seeds=(7,))
    parts = ablate.folds(len(dev), 4, seed=7)
    assert len(fitted_on) == 4
    for part, seen in zip(parts, fitted_on, strict=True):
        held = {dev[i].item.id for i in part}
        assert not held & seen and len(seen) == len(dev) - len(held)


def test_collected_candidates_survive_the_cache(tmp_path: Path) -> None:
    dev = _examples(4)
    again = ablate._examples_from_json(ablate._examples_to_json(dev))
    assert [e.item for e in again] == [e.item for e in dev]
    for a, b in zip(again, dev, strict=True):
        assert [(c.start, c.end, c.text, c.sentence, c.features) for c in a.candidates] == [
            (c.start, c.end, c.text, c.sentence, c.features) for c in b.candidates
        ]


def test_the_test_split_is_refused() -> None:
    with pytest.raises(SystemExit):
        ablate.main(["--set", "eval/test.jsonl"])
