"""Fit a reader's ranker, calibration and abstention threshold on the dev split.

``python -m rag.reader.fit --set eval/dev.jsonl --reader heuristic`` runs every dev
question through retrieval and the reader, labels each candidate span by its F1 against
the gold answers, and fits two small logistic models with scikit-learn:

1. the ranker, over span features: which candidate of a question is the answer;
2. the calibration, over the best candidate's ranker logit, its margin over the
   runner-up and its grounding features: how likely that answer is right.

The abstention threshold is the one that maximises SQuAD 2.0 F1 on the dev split. The
result replaces the reader's section of ``weights.json``. Only the dev split is used:
the test split and the SQuAD benchmark are for reporting. A 5-fold cross-validation over
questions is printed so that over-fitting shows.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from rag.config import ReaderKind, Settings, get_settings
from rag.evaluation.dataset import EvalItem, load_eval_sets
from rag.filters import Filters
from rag.metrics import f1_score
from rag.pipeline import Pipeline, load_components, make_reader
from rag.reader.base import Candidate, ReadContext
from rag.reader.heuristic import WEIGHTS_FILE, LogisticModel, ReaderWeights, calibrate
from rag.reader.question import analyse
from rag.store.builder import IndexBuilder
from rag.types import Span

#: Features the ranker may use, per reader (others in ``Candidate.features`` are for display).
RANKER_FEATURES = {
    "heuristic": [
        "cos",
        "coverage",
        "window_coverage",
        "missing_entities",
        "missing_entities_doc",
        "missing_numbers",
        "passage_rank",
        "sentence_rank",
        "cos_gap",
        "relevance",
        "type_fit",
        "type_fit_typed",
        "typed_question",
        "specificity",
        "capitalised",
        "has_digit",
        "is_chain",
        "overlap",
        "proximity",
        "length_penalty",
        "log_words",
        "is_entity",
        "is_clause",
        "clause_question",
        "local_coverage",
        "head_near",
        "meta_any",
        "meta_match",
        "asks_letter",
    ],
}
RANKER_FEATURES["fused"] = RANKER_FEATURES["heuristic"] + [
    "qa_logit",
    "qa_prob",
    "qa_null_gap",
    "qa_found",
    "qa_rank",
]
RANKER_FEATURES["transformers"] = ["qa_logit", "qa_prob", "qa_null_gap", "qa_rank", "log_words"]
CALIBRATION_FEATURES = [
    "logit",
    "margin",
    "window_coverage",
    "missing_entities",
    "missing_entities_doc",
    "missing_numbers",
    "cos",
]
CALIBRATION_FEATURES_QA = ["logit", "margin", "qa_null_gap", "qa_prob"]
POSITIVE_F1 = 0.5


@dataclass(slots=True)
class Example:
    item: EvalItem
    candidates: list[Candidate]


def collect(pipeline: Pipeline, items: Sequence[EvalItem], *, progress: str = "") -> list[Example]:
    """Every question's candidates, with the features the reader computes.

    An item with a ``context_id`` is read from that document only (reading
    comprehension), as the external training questions are.
    """
    comps = pipeline.components
    examples = []
    for item in tqdm(items, desc=progress or "collect", disable=not progress, unit="q"):
        question = analyse(item.question, comps.annotator.nlp)
        qvec = comps.embedder.embed([item.question])[0]
        depth = max(pipeline.settings.top_k, pipeline.settings.read_passages)
        only = Filters.create(documents=[item.context_id]) if item.context_id else None
        passages = pipeline.retriever.retrieve(item.question, depth, only)
        context = ReadContext(question, qvec, passages, pipeline.index)
        examples.append(Example(item, comps.reader.read(context)))
    return examples


def save_examples(path: Path, examples: Sequence[Example]) -> None:
    """Keep collected candidates so the fit can be repeated without reading again."""
    rows = [
        {
            "item": ex.item.id,
            "candidates": [
                {
                    "document_id": c.document_id,
                    "start": c.start,
                    "end": c.end,
                    "text": c.text,
                    "sentence": [c.sentence.start, c.sentence.end],
                    "features": c.features,
                    "source": c.source,
                }
                for c in ex.candidates
            ],
        }
        for ex in examples
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows), encoding="utf-8")


def load_examples(path: Path, items: Sequence[EvalItem]) -> list[Example]:
    by_id = {i.id: i for i in items}
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [
        Example(
            by_id[row["item"]],
            [
                Candidate(
                    document_id=c["document_id"],
                    start=c["start"],
                    end=c["end"],
                    text=c["text"],
                    sentence=Span(*c["sentence"]),
                    score=0.0,
                    features=c["features"],
                    source=c["source"],
                )
                for c in row["candidates"]
            ],
        )
        for row in rows
        if row["item"] in by_id
    ]


def _fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    names: list[str],
    c: float,
    sample_weight: np.ndarray | None = None,
) -> LogisticModel:
    """L2 logistic regression on standardised features, returned in raw feature space."""
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


def _matrix(cands: Sequence[Candidate], names: list[str]) -> np.ndarray:
    return np.array([[c.features.get(n, 0.0) for n in names] for c in cands], dtype=np.float64)


def fit_ranker(
    examples: Sequence[Example],
    names: list[str],
    c: float = 0.5,
    weights: Sequence[float] | None = None,
) -> LogisticModel:
    """Candidate ranker; ``weights`` (one per example) weigh each question's candidates."""
    cands = [cand for ex in examples for cand in ex.candidates]
    w = None
    if weights is not None:
        w = np.array([wt for ex, wt in zip(examples, weights, strict=True) for _ in ex.candidates])
    y = np.array(
        [
            float(f1_score(cand.text, ex.item.answers) >= POSITIVE_F1)
            if ex.item.answerable
            else 0.0
            for ex in examples
            for cand in ex.candidates
        ]
    )
    if y.sum() == 0:
        raise ValueError("no positive candidates to fit on")
    return _fit_logistic(_matrix(cands, names), y, names, c, w)


def _tops(
    examples: Sequence[Example], ranker: LogisticModel
) -> list[tuple[Example, Candidate | None]]:
    neutral = LogisticModel(weights={}, bias=0.0)
    weights = ReaderWeights(ranker=ranker, calibration=neutral, threshold=0.5)
    out = []
    for ex in examples:
        ranked = calibrate(list(ex.candidates), weights)
        out.append((ex, ranked[0] if ranked else None))
    return out


def fit_calibration(
    tops: Sequence[tuple[Example, Candidate | None]], names: list[str], c: float = 1.0
) -> LogisticModel:
    rows = [(ex, cand) for ex, cand in tops if cand is not None]
    y = np.array(
        [
            float(ex.item.answerable and f1_score(cand.text, ex.item.answers) >= POSITIVE_F1)
            for ex, cand in rows
        ]
    )
    if len(set(y.tolist())) < 2:
        return LogisticModel(weights={"logit": 1.0}, bias=0.0)
    return _fit_logistic(_matrix([cand for _, cand in rows], names), y, names, c)


def _f1_at(scored: Sequence[tuple[EvalItem, str | None, float]], threshold: float) -> float:
    total = 0.0
    for item, text, score in scored:
        answer = text if text is not None and score >= threshold else None
        total += f1_score(answer, item.answers)
    return total / len(scored)


def choose_threshold(scored: Sequence[tuple[EvalItem, str | None, float]]) -> float:
    grid = [round(i / 100, 2) for i in range(5, 96)]
    best = max(grid, key=lambda t: (round(_f1_at(scored, t), 6), -abs(t - 0.5)))
    return best


def fit(
    examples: Sequence[Example],
    reader: str,
    external: Sequence[Example] = (),
    dev_weight: float = 1.0,
) -> tuple[ReaderWeights, dict[str, float]]:
    """Ranker on dev + external questions; calibration and threshold on dev alone.

    ``dev_weight`` weighs a dev question against an external one: the external questions
    come from other kinds of text, the dev questions from the letters.
    """
    names = RANKER_FEATURES[reader]
    cal_names = CALIBRATION_FEATURES_QA if reader == "transformers" else CALIBRATION_FEATURES
    per_question = [dev_weight] * len(examples) + [1.0] * len(external)
    ranker = fit_ranker([*examples, *external], names, weights=per_question)
    tops = _tops(examples, ranker)
    calibration = fit_calibration(tops, cal_names)
    weights = ReaderWeights(ranker=ranker, calibration=calibration, threshold=0.5)
    scored = _score(examples, weights)
    threshold = choose_threshold(scored)
    weights = ReaderWeights(ranker=ranker, calibration=calibration, threshold=threshold)
    return weights, {"dev_f1_fitted": _f1_at(scored, threshold), "threshold": threshold}


def _score(
    examples: Sequence[Example], weights: ReaderWeights
) -> list[tuple[EvalItem, str | None, float]]:
    out = []
    for ex in examples:
        ranked = calibrate(list(ex.candidates), weights)
        top = ranked[0] if ranked else None
        out.append((ex.item, top.text if top else None, top.score if top else 0.0))
    return out


def cross_validate(
    examples: Sequence[Example],
    reader: str,
    external: Sequence[Example] = (),
    dev_weight: float = 1.0,
    folds: int = 5,
) -> float:
    """Mean F1 on held-out dev questions when fitting on the other folds (+ external)."""
    order = list(range(len(examples)))
    random.Random(7).shuffle(order)
    scores: list[float] = []
    for k in range(folds):
        held = [examples[i] for i in order[k::folds]]
        train = [examples[i] for i in order if i not in set(order[k::folds])]
        weights, _ = fit(train, reader, external, dev_weight)
        scored = _score(held, weights)
        scores.extend(_f1_at([row], weights.threshold) for row in scored)
    return sum(scores) / len(scores)


def write_weights(section: str, weights: ReaderWeights, info: dict[str, Any], path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    data[section] = {
        "fitted_on": info,
        "threshold": weights.threshold,
        "ranker": weights.ranker.to_dict(),
        "calibration": weights.calibration.to_dict(),
    }
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="sets", action="append", type=Path, default=None)
    parser.add_argument("--reader", default="heuristic", choices=sorted(RANKER_FEATURES))
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    parser.add_argument("--no-cv", action="store_true", help="Skip the cross-validation.")
    parser.add_argument(
        "--dev-weight", type=float, default=1.0, help="Weight of a dev question in the ranker."
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="Reuse the candidates collected by the last run (.cache/fit/) instead of reading.",
    )
    parser.add_argument(
        "--external",
        type=int,
        default=0,
        metavar="N",
        help="Also fit the ranker on N questions of the readers' held-out training slice "
        "(QED + PolicyQA, never trained on), read from their own paragraphs.",
    )
    args = parser.parse_args(argv)
    sets = args.sets or [Path("eval/dev.jsonl")]
    if any("test" in p.name for p in sets):
        parser.error("fit on the dev split only; the test split is for reporting")
    settings = get_settings()
    kind = ReaderKind(args.reader)
    pipeline = Pipeline(settings, load_components(settings, reader=make_reader(settings, kind)))
    items = load_eval_sets(sets)
    cache = Path(".cache") / "fit" / f"{args.reader}"
    if args.reuse and (cache / "dev.json").exists():
        examples = load_examples(cache / "dev.json", items)
    else:
        examples = collect(pipeline, items, progress="dev")
        save_examples(cache / "dev.json", examples)
    external: list[Example] = []
    if args.external:
        if args.reuse and (cache / "external.json").exists():
            ext_items = external_items(args.external, EXTERNAL_DIR / "corpus")
            external = load_examples(cache / "external.json", ext_items)
        else:
            external = collect_external(settings, kind, args.external)
            save_examples(cache / "external.json", external)
    weights, info = fit(examples, args.reader, external, args.dev_weight)
    info.update(
        {
            "questions": len(items),
            "external_questions": len(external),
            "dev_weight": args.dev_weight,
        }
    )
    if not args.no_cv:
        info["cv5_f1"] = cross_validate(examples, args.reader, external, args.dev_weight)
    record: dict[str, Any] = {k: _round(v) for k, v in info.items()}
    record["set"] = [str(p) for p in sets]
    write_weights(args.reader, weights, record, args.out)
    print(json.dumps(info, indent=2, default=str))


EXTERNAL_DIR = Path(".cache") / "fit-external"


def external_items(limit: int, corpus: Path) -> list[EvalItem]:
    """Questions of the held-out slice of the reader's training data, one file a context.

    The QA model never trained on this slice (``rag.train`` holds it out by context), so
    its scores there are honest; our own evaluation questions are never part of it.
    """
    from rag.train.data import load_policyqa, load_qed, split_examples
    from rag.train.train import TrainConfig

    cfg = TrainConfig()
    qed, _ = load_qed(sorted(cfg.qed_dir.glob("*.jsonl")))
    policy, _ = load_policyqa(sorted(cfg.policyqa_dir.glob("*.json")))
    _, held = split_examples([*qed, *policy], cfg.heldout_fraction)
    held = [ex for ex in held if ex.has_answer]
    random.Random(11).shuffle(held)
    corpus.mkdir(parents=True, exist_ok=True)
    items = []
    for ex in held[:limit]:
        doc_id = f"{ex.source}-{ex.id}"
        (corpus / f"{doc_id}.txt").write_text(ex.context, encoding="utf-8")
        items.append(EvalItem(ex.id, ex.question, ex.answers, (doc_id,), None, context_id=doc_id))
    return items


def collect_external(settings: Settings, kind: ReaderKind, limit: int) -> list[Example]:
    """Index the external contexts (incrementally, under .cache/) and collect candidates."""
    corpus, index_dir = EXTERNAL_DIR / "corpus", EXTERNAL_DIR / "index"
    items = external_items(limit, corpus)
    IndexBuilder.from_settings(settings).build(corpus, index_dir, progress=True)
    ext_settings = settings.model_copy(update={"index_dir": index_dir, "corpus_dir": corpus})
    pipeline = Pipeline(
        ext_settings, load_components(ext_settings, reader=make_reader(ext_settings, kind))
    )
    return collect(pipeline, items, progress="external")


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


if __name__ == "__main__":
    main()
