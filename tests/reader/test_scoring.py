"""The scorer: declared features, self-describing weights, best-first order with caps.

Pure logic on hand-made candidates: no model, no index.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from rag.errors import ReaderWeightsError
from rag.evaluation.dataset import EvalItem
from rag.reader.base import Candidate, ScoredCandidate
from rag.reader.compose import neutral_weights
from rag.reader.scoring import (
    CALIBRATION_FEATURES,
    FEATURES,
    RANKER_FEATURES,
    UNGROUNDED_CAP,
    WRONG_SHAPE_CAP,
    FitTarget,
    LogisticModel,
    ScorerWeights,
    load_weights,
    score,
    write_weights,
)
from rag.train.fit_scorer import Example, fit_models
from rag.types import Span

TARGET = FitTarget("transformers", "ab" * 32, "int8", 8)


def cand(text: str, **features: float) -> Candidate:
    base = {n: 0.0 for n in RANKER_FEATURES["transformers"]}
    base.update(features)
    return Candidate("doc", 0, len(text), text, Span(0, len(text)), features=base)


def weights(threshold: float = 0.5) -> ScorerWeights:
    ranker = LogisticModel({n: 0.0 for n in RANKER_FEATURES["transformers"]} | {"qa_logit": 1.0}, 0)
    calibration = LogisticModel(
        {n: 0.0 for n in CALIBRATION_FEATURES["transformers"]} | {"logit": 1.0}, 0.0
    )
    return ScorerWeights(TARGET, ranker, calibration, threshold)


def test_every_declared_feature_is_registered() -> None:
    for kind in RANKER_FEATURES:
        assert set(RANKER_FEATURES[kind]) <= set(FEATURES), kind
        assert set(CALIBRATION_FEATURES[kind]) <= set(FEATURES), kind


def test_scores_are_new_frozen_candidates_best_first() -> None:
    low, high = cand("low", qa_logit=-1.0), cand("high", qa_logit=3.0)
    out = score([low, high], weights())
    assert [c.text for c in out] == ["high", "low"]
    assert all(isinstance(c, ScoredCandidate) for c in out)
    assert out[0].score > out[1].score
    assert out[0].features["margin"] == pytest.approx(4.0)
    assert "logit" not in low.features and low.score == 0.0  # inputs untouched
    with pytest.raises(AttributeError):
        out[0].score = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        out[0].features["logit"] = 0.0  # type: ignore[index]


@pytest.mark.parametrize(
    ("flag", "cap"),
    [("missing_entities_doc", UNGROUNDED_CAP), ("wrong_shape", WRONG_SHAPE_CAP)],
)
def test_a_capped_top_candidate_falls_behind_the_runner_up(flag: str, cap: float) -> None:
    top = cand("top", qa_logit=5.0, **{flag: 1.0})
    runner_up = cand("runner-up", qa_logit=2.0)
    out = score([top, runner_up], weights())
    assert [c.text for c in out] == ["runner-up", "top"]
    assert out[1].score == pytest.approx(cap)
    assert out[0].score > cap


def test_a_candidate_without_a_feature_the_weights_use_fails_loudly() -> None:
    broken = cand("x")
    del broken.features["qa_logit"]
    with pytest.raises(ReaderWeightsError, match="qa_logit"):
        score([broken], weights())


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "weights.json"
    path.write_text(json.dumps(data))
    return path


def test_weights_round_trip_and_record_what_they_were_fitted_for(tmp_path: Path) -> None:
    path = tmp_path / "weights.json"
    write_weights(weights(0.3), path)
    data = json.loads(path.read_text())["transformers/int8"]
    assert data["qa_model_sha256"] == TARGET.qa_model_sha256
    assert data["read_passages"] == 8 and data["runtime"] == "int8"
    assert data["ranker_features"] == RANKER_FEATURES["transformers"]
    loaded = load_weights(TARGET, path)
    assert loaded.threshold == 0.3 and loaded.ranker == weights().ranker


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"qa_model_sha256": "cd" * 32}, "QA model"),
        ({"runtime": "torch"}, "runtime"),
        ({"read_passages": 5}, "read depth"),
        ({"reranker": "cross-encoder"}, "reranker"),
        ({"embedding_model": "packaged:bge-small-en-v1.5"}, "embedding model"),
    ],
)
def test_weights_fitted_for_something_else_are_refused(
    tmp_path: Path, change: dict, message: str
) -> None:
    path = tmp_path / "weights.json"
    write_weights(weights(), path)
    data = json.loads(path.read_text())
    data["transformers/int8"].update(change)
    path.write_text(json.dumps(data))
    with pytest.raises(ReaderWeightsError, match=message):
        load_weights(TARGET, path)


def test_weights_for_a_reranked_order_live_in_a_section_of_their_own(tmp_path: Path) -> None:
    """The passage order is part of what weights are fitted for: the fused order's
    weights are never used for the cross-encoder's, nor the other way round."""
    reranked = FitTarget("transformers", "ab" * 32, "int8", 8, reranker="cross-encoder")
    assert reranked.section() == "transformers/int8+cross-encoder"
    path = tmp_path / "weights.json"
    write_weights(weights(), path)
    with pytest.raises(ReaderWeightsError, match="transformers/int8\\+cross-encoder"):
        load_weights(reranked, path)


def test_weights_for_another_embedder_live_in_a_section_of_their_own(tmp_path: Path) -> None:
    """Another embedding model retrieves in another order: weights fitted on the default
    model's order are refused under it, and its own weights live beside them."""
    bge = FitTarget("transformers", "ab" * 32, "int8", 8, embedding_model="packaged:bge-x")
    assert bge.section() == "transformers/int8@packaged:bge-x"
    path = tmp_path / "weights.json"
    write_weights(weights(), path)
    with pytest.raises(ReaderWeightsError, match="@packaged:bge-x"):
        load_weights(bge, path)
    write_weights(replace(weights(), target=bge), path)
    assert load_weights(bge, path).target == bge
    assert load_weights(TARGET, path).target == TARGET


def test_weights_naming_unknown_or_lacking_features_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.json"
    write_weights(weights(), path)
    data = json.loads(path.read_text())
    section = data["transformers/int8"]
    section["ranker"]["weights"]["qa_logit_renamed"] = section["ranker"]["weights"].pop("qa_logit")
    path.write_text(json.dumps(data))
    with pytest.raises(ReaderWeightsError, match=r"unknown features.*qa_logit_renamed"):
        load_weights(TARGET, path)
    del section["ranker"]["weights"]["qa_logit_renamed"]
    path.write_text(json.dumps(data))
    with pytest.raises(ReaderWeightsError, match=r"missing \['qa_logit'\]"):
        load_weights(TARGET, path)


def test_missing_section_and_malformed_file_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ReaderWeightsError, match="no weights for 'transformers/int8'"):
        load_weights(TARGET, write(tmp_path, {}))
    (tmp_path / "weights.json").write_text("{not json")
    with pytest.raises(ReaderWeightsError, match="cannot read"):
        load_weights(TARGET, tmp_path / "weights.json")


def synthetic_examples(n: int = 60) -> list[Example]:
    """Questions whose right candidate has the higher model logit, most of the time."""
    out = []
    for i in range(n):
        answerable = i % 3 != 0
        item = EvalItem(f"q{i}", "q?", ("right",) if answerable else (), (), None)
        right = cand("right", qa_logit=2.0 + (i % 5) / 5, qa_margin=1.0 + (i % 7) / 7)
        wrong = cand("wrong", qa_logit=1.0 + (i % 4) / 3, qa_margin=-1.0 + (i % 3) / 3)
        out.append(Example(item, [right, wrong] if answerable else [wrong]))
    return out


def test_fitting_is_deterministic_and_learns_the_signal() -> None:
    examples = synthetic_examples()
    first = fit_models("transformers", examples)
    second = fit_models("transformers", synthetic_examples())
    assert first == second
    ranker, _calibration = first
    assert ranker.weights["qa_logit"] > 0
    assert list(ranker.weights) == RANKER_FEATURES["transformers"]


def test_neutral_weights_satisfy_the_schema() -> None:
    for kind in RANKER_FEATURES:
        target = FitTarget(kind, None, None, 8)
        w = neutral_weights(target)
        assert list(w.ranker.weights) == RANKER_FEATURES[kind]
        assert list(w.calibration.weights) == CALIBRATION_FEATURES[kind]
