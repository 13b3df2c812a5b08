"""Fit the reader's scorer (ranker, calibration, threshold) through the served path.

``python -m rag.train.fit_scorer`` (``make fit-reader``) asks every dev question through
:meth:`rag.pipeline.Pipeline.candidates`, which reads exactly as ``ask`` does (same
validation, retrieval and ``RAG_READ_PASSAGES`` depth), labels each candidate by its F1
against the gold answers and fits two L2 logistic models:

1. the *ranker*, over the declared ranker features: which candidate is the answer;
2. the *calibration*, over the top candidate's ranker logit, its margin and grounding
   features: how likely that answer is right.

The ranker and the calibration also learn from held-out questions of the QA model's
own training data (articles it never trained on, including SQuAD 2.0's adversarial
unanswerable ones), read from their own paragraphs; ``--dev-weight`` weighs a dev
question against one of those. The abstention threshold is chosen on the dev split
alone, by the rule ``rag eval`` reports (:func:`rag.evaluation.runner.best_threshold`
over :func:`~rag.evaluation.runner.threshold_sweep`), from answers given by the
pipeline itself with the fitted weights. The test split is never read.

The weights file records what it was fitted for (reader, QA-model sha256, runtime,
read depth, features, code commit, dev metrics); the service refuses it for anything
else.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rag.config import ReaderKind, Settings, get_settings
from rag.evaluation.dataset import EvalItem, load_eval_sets
from rag.evaluation.runner import answer_metrics, best_threshold, run_answers, threshold_sweep
from rag.filters import Filters
from rag.metrics import f1_score
from rag.pipeline import Components, Pipeline, load_components, make_reader
from rag.reader.base import Candidate
from rag.reader.compose import ScoredReader, neutral_weights
from rag.reader.scoring import (
    CALIBRATION_FEATURES,
    RANKER_FEATURES,
    WEIGHTS_FILE,
    LogisticModel,
    ScorerWeights,
    rank,
    write_weights,
)
from rag.store.builder import IndexBuilder
from rag.store.index import Index
from rag.train.train import git_commit

#: A candidate counts as right when its F1 against a gold answer reaches this.
POSITIVE_F1 = 0.5
EXTERNAL_DIR = Path(".cache") / "fit-external"


@dataclass(slots=True)
class Example:
    """One question and the candidates the served path read for it."""

    item: EvalItem
    candidates: list[Candidate]


def collect(pipeline: Pipeline, items: Sequence[EvalItem], label: str = "") -> list[Example]:
    """Candidates of every question; an item with a ``context_id`` reads only that
    document (reading comprehension, as the external questions are asked)."""
    out = []
    for item in tqdm(items, desc=label or "collect", disable=not label, unit="q"):
        only = Filters.create(documents=[item.context_id]) if item.context_id else None
        out.append(Example(item, pipeline.candidates(item.question, only)))
    return out


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, names: list[str], c: float, sample_weight: np.ndarray
) -> LogisticModel:
    """L2 logistic regression on standardised features, returned in raw feature space.

    lbfgs on fixed data is deterministic: the same examples give the same weights.
    """
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1.0
    model = LogisticRegression(C=c, max_iter=5000)
    model.fit((x - mean) / std, y, sample_weight=sample_weight)
    w = model.coef_[0] / std
    b = float(model.intercept_[0] - np.sum(model.coef_[0] * mean / std))
    return LogisticModel(
        weights={n: round(float(v), 6) for n, v in zip(names, w, strict=True)}, bias=round(b, 6)
    )


def _matrix(feature_rows: Sequence[dict[str, float]], names: list[str]) -> np.ndarray:
    return np.array([[row[n] for n in names] for row in feature_rows], dtype=np.float64)


def _right(item: EvalItem, cand: Candidate) -> float:
    return float(item.answerable and f1_score(cand.text, item.answers) >= POSITIVE_F1)


def fit_ranker(
    examples: Sequence[Example], names: list[str], weights: Sequence[float], c: float = 0.5
) -> LogisticModel:
    """Which candidate of a question is the answer; ``weights``: one per question."""
    rows, y, w = [], [], []
    for ex, wt in zip(examples, weights, strict=True):
        for cand in ex.candidates:
            rows.append(cand.features)
            y.append(_right(ex.item, cand))
            w.append(wt)
    if not any(y):
        raise ValueError("no right candidate to fit on")
    return _fit_logistic(_matrix(rows, names), np.array(y), names, c, np.array(w))


def top_of(ex: Example, ranker: LogisticModel) -> tuple[Candidate, dict[str, float]] | None:
    """The top candidate and its features with ranker logit and margin, as the scorer
    computes them."""
    ranked = rank(ex.candidates, ranker)
    if not ranked:
        return None
    (top, logit), rest = ranked[0], ranked[1:]
    margin = logit - rest[0][1] if rest else 5.0
    return top, {**top.features, "logit": logit, "margin": margin}


def fit_calibration(
    examples: Sequence[Example],
    ranker: LogisticModel,
    names: list[str],
    weights: Sequence[float],
    c: float = 1.0,
) -> LogisticModel:
    """How likely the top candidate is right."""
    rows, y, w = [], [], []
    for ex, wt in zip(examples, weights, strict=True):
        found = top_of(ex, ranker)
        if found is None:
            continue
        top, feats = found
        rows.append(feats)
        y.append(_right(ex.item, top))
        w.append(wt)
    if len(set(y)) < 2:
        return LogisticModel({n: 1.0 if n == "logit" else 0.0 for n in names}, 0.0)
    return _fit_logistic(_matrix(rows, names), np.array(y), names, c, np.array(w))


def fit_models(
    reader: str,
    dev: Sequence[Example],
    external: Sequence[Example] = (),
    dev_weight: float = 1.0,
    drop: frozenset[str] = frozenset(),
) -> tuple[LogisticModel, LogisticModel]:
    """Ranker and calibration on dev + external questions (dev weighted); ``drop`` leaves
    features out (``rag.train.ablate`` measures what each one earns)."""
    examples = [*dev, *external]
    weights = [dev_weight] * len(dev) + [1.0] * len(external)
    ranker_names = [n for n in RANKER_FEATURES[reader] if n not in drop]
    ranker = fit_ranker(examples, ranker_names, weights)
    calibration_names = [n for n in CALIBRATION_FEATURES[reader] if n not in drop]
    calibration = fit_calibration(examples, ranker, calibration_names, weights)
    return ranker, calibration


def choose_threshold(pipeline: Pipeline, items: Sequence[EvalItem]) -> tuple[float, dict]:
    """The dev threshold, by ``rag eval``'s rule, from the pipeline's own answers."""
    preds = run_answers(pipeline, items, progress=False)
    threshold = best_threshold(threshold_sweep(preds))
    return threshold, answer_metrics(preds, threshold)


def external_items(manifest: dict[str, Any], per_source: int, corpus: Path) -> list[EvalItem]:
    """Held-out questions of the QA model's training data, one file per context.

    The same split as the model's (its manifest's ``--heldout`` setting): articles the
    model never trained on. Our own evaluation questions are never part of it.
    """
    from rag.train.data import SOURCES, SQUAD2, load_source, split_examples
    from rag.train.train import TrainConfig, data_path, heldout_fractions

    hyper = manifest.get("hyperparameters", {})
    cfg = TrainConfig()
    fractions = heldout_fractions(str(hyper.get("heldout", cfg.heldout)))
    used = set(manifest.get("data", {}).get("sources", {}))
    corpus.mkdir(parents=True, exist_ok=True)
    items: list[EvalItem] = []
    rng = random.Random(11)
    for spec in SOURCES:
        if spec.name not in used or spec.name == "contractnli":
            continue  # contracts: 17 repeated hypotheses over 11k-character agreements
        examples, _ = load_source(spec, data_path(cfg))
        _, held = split_examples(examples, fractions[spec.name])
        rng.shuffle(held)
        # SQuAD 2.0's held-out articles weigh 4x: the only adversarial unanswerable
        # questions, so the calibration learns abstention from them.
        for ex in held[: per_source * (4 if spec.name == SQUAD2 else 1)]:
            doc_id = f"{spec.name}-{hashlib.sha256(ex.context.encode()).hexdigest()[:16]}"
            path = corpus / f"{doc_id}.txt"
            if not path.exists():
                path.write_text(ex.context, encoding="utf-8")
            items.append(EvalItem(ex.id, ex.question, ex.answers, (doc_id,), None, doc_id))
    return items


def external_pipeline(settings: Settings, components: Components, corpus: Path) -> Pipeline:
    """The same loaded models over the external contexts (indexed incrementally)."""
    index_dir = EXTERNAL_DIR / "index"
    IndexBuilder.from_settings(settings).build(corpus, index_dir, progress=True)
    ext = settings.model_copy(update={"index_dir": index_dir, "corpus_dir": corpus})
    index = Index.from_settings(settings, index_dir)
    return Pipeline(ext, replace(components, index=index))


@dataclass(slots=True)
class Fitting:
    """What a fit reads: the reader (with neutral weights), its loaded components, the
    dev questions and the candidates collected for them and for the external ones."""

    reader: ScoredReader
    components: Components
    items: list[EvalItem]
    dev: list[Example]
    external: list[Example]


def collect_examples(
    settings: Settings, kind: ReaderKind, sets: Sequence[Path], external_per_source: int
) -> Fitting:
    """Every dev question's candidates through the served path, and ``external_per_source``
    held-out training questions per source (4x SQuAD 2.0's) when the reader has a model."""
    reader = make_reader(settings, kind)
    reader.use_weights(neutral_weights(reader.target()))
    components = load_components(settings, reader=reader)
    pipeline = Pipeline(settings, components)
    items = load_eval_sets(list(sets))
    dev = collect(pipeline, items, "dev")
    external: list[Example] = []
    if external_per_source and reader.model is not None:
        manifest_path = Path(settings.reader_model) / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
        corpus = EXTERNAL_DIR / "corpus"
        ext_items = external_items(manifest, external_per_source, corpus)
        ext_pipeline = external_pipeline(settings, components, corpus)
        external = collect(ext_pipeline, ext_items, "external")
    return Fitting(reader, components, items, dev, external)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="sets", action="append", type=Path, default=None)
    parser.add_argument("--reader", default=None, choices=[k.value for k in ReaderKind])
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    parser.add_argument("--dev-weight", type=float, default=3.0)
    parser.add_argument(
        "--external",
        type=int,
        default=100,
        metavar="N",
        help="held-out training questions per source, 4N of SQuAD 2.0 (0: dev only)",
    )
    args = parser.parse_args(argv)
    sets = args.sets or [Path("eval/dev.jsonl")]
    if any("test" in p.name for p in sets):
        parser.error("fit on the dev split only; the test split is for reporting")
    settings = get_settings()
    kind = ReaderKind(args.reader) if args.reader else settings.reader
    fitting = collect_examples(settings, kind, sets, args.external)
    reader, components, items = fitting.reader, fitting.components, fitting.items
    dev, external, target = fitting.dev, fitting.external, fitting.reader.target()
    ranker, calibration = fit_models(kind.value, dev, external, args.dev_weight)
    weights = ScorerWeights(target, ranker, calibration, threshold=0.5)
    reader.use_weights(weights)
    threshold, metrics = choose_threshold(Pipeline(settings, components), items)
    info = {
        "sets": [str(p) for p in sets],
        "questions": len(items),
        "external_questions": len(external),
        "dev_weight": args.dev_weight,
        "at_threshold": {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)},
    }
    commit = git_commit()
    weights = replace(weights, threshold=threshold, code_commit=commit, dev_metrics=info)
    write_weights(weights, args.out)
    print(json.dumps({"section": target.section(), "threshold": threshold, **info}, indent=2))


if __name__ == "__main__":
    main()
