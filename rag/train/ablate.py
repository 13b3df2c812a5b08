"""What each of the scorer's hand-made features and caps still earns, by cross-validation
on the dev split.

``python -m rag.train.ablate`` (``make ablate``) collects every dev question's candidates
once, through the served path exactly as ``make fit-reader`` does (with the held-out
questions of the QA model's training data beside them), and then, for every variant
(all features; each feature left out; each producer's features left out together; each
cap switched off):

1. splits the dev questions into ``--folds`` folds (``--repeats`` seeded shuffles);
2. for each fold, fits the ranker and the calibration on the other folds and the
   external questions (as ``fit_scorer`` fits them), chooses the abstention threshold
   by ``rag eval``'s rule on the other folds' answers, and answers the fold's questions
   with their top candidate, abstaining below that threshold;
3. scores the answers of all folds together (``rag eval``'s overall F1, answerable F1,
   unanswerable abstained), averaged over the repeats.

Every dev question is answered by a scorer that never saw it, so a feature that only
fits dev's noise shows up as no loss (or a gain) when it is left out. The test split is
never read. The candidates are cached under ``.cache/ablate/`` by what produced them
(reader section, QA model, questions, the reader's code), so a second run only refits.

The report is a table of each variant against "all", best first; deciding what to
remove is left to a person, with the table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag.config import ReaderKind, get_settings
from rag.evaluation.dataset import EvalItem
from rag.evaluation.runner import Prediction, answer_metrics, best_threshold, threshold_sweep
from rag.pipeline import make_reader
from rag.reader.base import Candidate
from rag.reader.scoring import (
    CALIBRATION_FEATURES,
    CAPS,
    FEATURES,
    RANKER_FEATURES,
    SCORER,
    FitTarget,
    ScorerWeights,
    score,
)
from rag.train.fit_scorer import Example, collect_examples, fit_models
from rag.types import Span

CACHE_DIR = Path(".cache") / "ablate"
#: The scores compared, as ``answer_metrics`` names them.
METRICS = ("f1", "answerable_f1", "unanswerable_abstained", "answerable_abstained")


@dataclass(frozen=True, slots=True)
class Variant:
    """One scorer to cross-validate: features left out, caps kept."""

    name: str
    drop: frozenset[str] = frozenset()
    caps: frozenset[str] = CAPS


def variants(reader: str) -> list[Variant]:
    """ "all", then each producer's features left out together, each feature alone, and
    each cap off. The scorer's own ``logit`` and ``margin`` are not hand-made: kept."""
    names = dict.fromkeys([*RANKER_FEATURES[reader], *CALIBRATION_FEATURES[reader]])
    own = [n for n in names if FEATURES[n][0] != SCORER]
    out = [Variant("all")]
    producers = dict.fromkeys(FEATURES[n][0] for n in own)
    for producer in producers:
        group = frozenset(n for n in own if FEATURES[n][0] == producer)
        if group and len(group) < len(own):
            out.append(Variant(f"-{producer} ({len(group)} features)", drop=group))
    out += [Variant(f"-{n}", drop=frozenset({n})) for n in own]
    out += [Variant(f"-cap {cap}", caps=CAPS - {cap}) for cap in sorted(CAPS)]
    return out


def folds(n: int, k: int, seed: int) -> list[list[int]]:
    """``k`` folds of the indices ``0..n-1`` after a seeded shuffle (sizes differ by 1)."""
    if not 2 <= k <= n:
        raise ValueError(f"need 2 <= folds <= questions, got {k} folds for {n}")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return [sorted(order[i::k]) for i in range(k)]


def top_prediction(ex: Example, weights: ScorerWeights, caps: frozenset[str]) -> Prediction:
    """The question's top scored candidate as a prediction (not yet thresholded)."""
    scored = score(ex.candidates, weights, caps)
    best = scored[0] if scored else None
    return Prediction(
        item=ex.item,
        answer=None,
        best=best.text if best else None,
        best_score=best.score if best else 0.0,
        document_id=best.document_id if best else None,
        start=best.start if best else None,
        end=best.end if best else None,
        citation_valid=True,
        timings_ms={},
    )


def _abstain_below(pred: Prediction, threshold: float) -> Prediction:
    """The prediction as answered at ``threshold``: its best kept only at or above it."""
    if pred.best is not None and pred.best_score >= threshold:
        return pred
    return Prediction.of(pred.item, None, answered=False, citation_valid=True)


@dataclass(slots=True)
class Outcome:
    """A variant's cross-validated dev scores (mean over repeats) and its thresholds."""

    variant: Variant
    metrics: dict[str, float]
    thresholds: list[float] = field(default_factory=list)


def cross_validate(
    reader: str,
    dev: Sequence[Example],
    external: Sequence[Example],
    variant: Variant,
    *,
    k: int = 5,
    seeds: Sequence[int] = (0,),
    dev_weight: float = 3.0,
) -> Outcome:
    """``variant``'s dev scores, each question answered by a scorer fitted without it."""
    target = FitTarget(reader, None, None, 0)
    totals = dict.fromkeys(METRICS, 0.0)
    thresholds: list[float] = []
    for seed in seeds:
        answered: list[Prediction] = []
        for fold in folds(len(dev), k, seed):
            held = set(fold)
            train = [ex for i, ex in enumerate(dev) if i not in held]
            ranker, calibration = fit_models(reader, train, external, dev_weight, variant.drop)
            weights = ScorerWeights(target, ranker, calibration, threshold=0.5)
            seen = [top_prediction(ex, weights, variant.caps) for ex in train]
            threshold = best_threshold(threshold_sweep(seen))
            thresholds.append(threshold)
            answered += [
                _abstain_below(top_prediction(dev[i], weights, variant.caps), threshold)
                for i in fold
            ]
        metrics = answer_metrics(answered, 0.0)  # abstentions applied per fold above
        for name in METRICS:
            totals[name] += metrics[name] / len(seeds)
    return Outcome(variant, {n: round(v, 4) for n, v in totals.items()}, thresholds)


# -- the collected candidates, cached --------------------------------------------------------


def _candidate_to_json(c: Candidate) -> dict[str, Any]:
    return {
        "d": c.document_id,
        "s": c.start,
        "e": c.end,
        "t": c.text,
        "ss": c.sentence.start,
        "se": c.sentence.end,
        "f": c.features,
        "src": c.source,
    }


def _candidate_from_json(d: dict[str, Any]) -> Candidate:
    return Candidate(
        document_id=d["d"],
        start=d["s"],
        end=d["e"],
        text=d["t"],
        sentence=Span(d["ss"], d["se"]),
        features={k: float(v) for k, v in d["f"].items()},
        source=d["src"],
    )


def _item_to_json(item: EvalItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "question": item.question,
        "answers": list(item.answers),
        "documents": list(item.documents),
        "evidence": item.evidence,
        "context_id": item.context_id,
    }


def _item_from_json(d: dict[str, Any]) -> EvalItem:
    return EvalItem(
        d["id"],
        d["question"],
        tuple(d["answers"]),
        tuple(d["documents"]),
        d["evidence"],
        d["context_id"],
    )


def _examples_to_json(examples: Sequence[Example]) -> list[dict[str, Any]]:
    return [
        {
            "item": _item_to_json(ex.item),
            "candidates": [_candidate_to_json(c) for c in ex.candidates],
        }
        for ex in examples
    ]


def _examples_from_json(rows: list[dict[str, Any]]) -> list[Example]:
    return [
        Example(_item_from_json(r["item"]), [_candidate_from_json(c) for c in r["candidates"]])
        for r in rows
    ]


def cache_key(target: FitTarget, sets: Sequence[Path], external: int) -> str:
    """What the candidates depend on: reader section and model, questions, reader code."""
    h = hashlib.sha256()
    h.update(json.dumps([target.section(), target.qa_model_sha256, external]).encode())
    for path in sets:
        h.update(path.read_bytes())
    for source in sorted(Path(__file__).resolve().parent.parent.joinpath("reader").glob("*.py")):
        h.update(source.read_bytes())
    return h.hexdigest()[:20]


def markdown(outcomes: Sequence[Outcome]) -> str:
    """Each variant against "all" (the first), best overall F1 first."""
    base = outcomes[0].metrics
    lines = [
        "| variant | F1 | Δ F1 | answerable F1 | unanswerable abstained | answerable abstained |",
        "|---|---|---|---|---|---|",
    ]
    for o in sorted(outcomes, key=lambda o: -o.metrics["f1"]):
        m = o.metrics
        lines.append(
            f"| {o.variant.name} | {m['f1']:.3f} | {m['f1'] - base['f1']:+.3f} | "
            f"{m['answerable_f1']:.3f} | {m['unanswerable_abstained']:.3f} | "
            f"{m['answerable_abstained']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reader", default=None, choices=[k.value for k in ReaderKind])
    parser.add_argument("--set", dest="sets", action="append", type=Path, default=None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--dev-weight", type=float, default=3.0)
    parser.add_argument("--external", type=int, default=100, metavar="N")
    parser.add_argument("--only", default="", help="variants whose name holds this text")
    parser.add_argument("--out", type=Path, default=Path("reports/ablate.json"))
    args = parser.parse_args(argv)
    sets = args.sets or [Path("eval/dev.jsonl")]
    if any("test" in p.name for p in sets):
        parser.error("ablate on the dev split only; the test split is for reporting")
    settings = get_settings()
    kind = ReaderKind(args.reader) if args.reader else settings.reader
    target = make_reader(settings, kind).target()
    cache = CACHE_DIR / f"{cache_key(target, sets, args.external)}.json"
    if cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        dev, external = _examples_from_json(data["dev"]), _examples_from_json(data["external"])
    else:
        fitting = collect_examples(settings, kind, sets, args.external)
        dev, external = fitting.dev, fitting.external
        cache.parent.mkdir(parents=True, exist_ok=True)
        payload = {"dev": _examples_to_json(dev), "external": _examples_to_json(external)}
        cache.write_text(json.dumps(payload), encoding="utf-8")
    chosen = [v for v in variants(kind.value) if v.name == "all" or args.only in v.name]
    seeds = list(range(args.repeats))
    outcomes = [
        cross_validate(
            kind.value, dev, external, v, k=args.folds, seeds=seeds, dev_weight=args.dev_weight
        )
        for v in tqdm(chosen, desc="variants", unit="variant")
    ]
    table = markdown(outcomes)
    print(
        f"{target.section()}: {len(dev)} dev questions, {len(external)} external, "
        f"{args.folds} folds x {args.repeats} repeats\n\n{table}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "section": target.section(),
        "qa_model_sha256": target.qa_model_sha256,
        "dev_questions": len(dev),
        "external_questions": len(external),
        "folds": args.folds,
        "repeats": args.repeats,
        "outcomes": [
            {
                "variant": o.variant.name,
                "drop": sorted(o.variant.drop),
                "caps": sorted(o.variant.caps),
                "metrics": o.metrics,
                "thresholds": o.thresholds,
            }
            for o in outcomes
        ],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
