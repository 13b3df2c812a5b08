"""Fit when reading by need may stop: the rules of :class:`rag.reader.scoring.Settle`.

``python -m rag.train.fit_settle`` (``make fit-settle``) asks every dev question through
:meth:`rag.pipeline.Pipeline.steps`, which reads as ``ask`` does but never stops early:
it gives the best verified answer after each step of the schedule (2, 4, then 8
passages by default). A set of rules (a confident answer's bound, the bound of an answer
two steps agree on, the score below which the question is hopeless) then says where
``ask`` would have stopped.

The rules kept are those reading fewest passages on dev whose dev answers are *no
worse* than reading every passage: overall F1, answerable F1 and unanswerable abstained
each at least as high, at the fitted abstention threshold. The rules are searched on a
coarse grid, and a choice counts only when the next safer value of each rule passes
too, so that a lucky isolated value is not kept. If nothing passes, reading by need is
fitted off (every question reads to the full depth). The test split is never read.

The bound is written into the reader's section of the weights file, beside the scorer
it was fitted with, and records the ``RAG_READ_FIRST`` it holds for.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rag.config import ReaderKind, get_settings
from rag.evaluation.dataset import EvalItem, load_eval_sets
from rag.evaluation.runner import Prediction, answer_metrics
from rag.pipeline import Pipeline, load_components
from rag.reader.by_need import until_settled
from rag.reader.compose import build_reader
from rag.reader.scoring import NEVER, WEIGHTS_FILE, Settle, load_weights, write_weights
from rag.types import Answer, Citation, Span

#: The dev scores the rules must not lower against reading every passage.
GUARDED = ("f1", "answerable_f1", "unanswerable_abstained")
#: The grid searched: a confident answer's bound and an agreed answer's bound (NEVER:
#: that rule off), and the hopeless score, at most the abstention threshold (0: off).
BOUNDS = (*(round(0.3 + 0.05 * i, 2) for i in range(14)), NEVER)
HOPELESS_STEP = 0.02
#: Where the dev steps are kept, so that refitting the rules does not read them again.
STEPS_CACHE = Path(".cache") / "fit-settle"


@dataclass(frozen=True, slots=True)
class Stepped:
    """One dev question's best verified answer after each step of reading."""

    item: EvalItem
    steps: list[tuple[int, Answer | None]]

    def stop(self, settle: Settle) -> tuple[int, Answer | None]:
        """Where ``ask`` stops with ``settle``: the first settled step, else the last."""
        return until_settled(self.steps, settle)


def _answer_to_json(best: Answer | None) -> dict[str, Any] | None:
    if best is None:
        return None
    c = best.citation
    return {"text": best.text, "score": best.score, "at": [c.document_id, c.start, c.end]}


def _answer_from_json(data: dict[str, Any] | None) -> Answer | None:
    if data is None:
        return None
    doc, start, end = data["at"]
    citation = Citation(doc, "", None, start, end, None, Span(start, end), data["text"])
    return Answer(text=data["text"], score=float(data["score"]), citation=citation)


def read_steps(
    pipeline: Pipeline, items: Sequence[EvalItem], key: str, cache: Path | None
) -> list[Stepped]:
    """Every question's steps, from ``cache`` when it was written for the same ``key``
    (scorer, schedule, settings and questions), else read and written there."""
    if cache is not None and cache.is_file():
        data = json.loads(cache.read_text(encoding="utf-8"))
        if data.get("key") == key:
            by_id = {item.id: item for item in items}
            return [
                Stepped(by_id[q["id"]], [(r, _answer_from_json(a)) for r, a in q["steps"]])
                for q in data["questions"]
            ]
    out = [
        Stepped(item, pipeline.steps(item.question))
        for item in tqdm(items, desc="dev steps", unit="q")
    ]
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            {"id": q.item.id, "steps": [(r, _answer_to_json(a)) for r, a in q.steps]} for q in out
        ]
        cache.write_text(json.dumps({"key": key, "questions": rows}), encoding="utf-8")
    return out


def outcome(questions: Sequence[Stepped], settle: Settle, threshold: float) -> dict[str, float]:
    """Dev scores and mean passages read when stopping by ``settle``."""
    stops = [q.stop(settle) for q in questions]
    preds = [
        Prediction.of(q.item, best, answered=False, citation_valid=True)
        for q, (_, best) in zip(questions, stops, strict=True)
    ]
    metrics = answer_metrics(preds, threshold)
    metrics["passages_read"] = sum(read for read, _ in stops) / max(len(stops), 1)
    return metrics


def _safer(settle: Settle) -> list[Settle]:
    """The next safer value of each rule that is on (a higher bound, a lower hopeless)."""

    def above(value: float) -> float:
        return min(b for b in BOUNDS if b > value)

    out = []
    if settle.bound < NEVER:
        out.append(replace(settle, bound=above(settle.bound)))
    if settle.agree < NEVER:
        out.append(replace(settle, agree=above(settle.agree)))
    if settle.hopeless > 0:
        out.append(replace(settle, hopeless=round(settle.hopeless - HOPELESS_STEP, 2)))
    return out


def choose_rules(
    questions: Sequence[Stepped], first: int, threshold: float
) -> tuple[Settle, dict[str, float], dict[str, float]]:
    """The rules reading fewest passages with dev answers no worse than reading all.

    Returns the rules, their dev scores, and those of reading every passage.
    """
    never = Settle(first, NEVER)
    full = outcome(questions, never, threshold)
    hopeless = [0.0] + [
        round(HOPELESS_STEP * i, 2) for i in range(1, int(threshold / HOPELESS_STEP) + 1)
    ]
    cache: dict[tuple[float, float, float], dict[str, float]] = {}

    def passes(settle: Settle) -> dict[str, float] | None:
        key = (settle.bound, settle.agree, settle.hopeless)
        if key not in cache:
            cache[key] = outcome(questions, settle, threshold)
        metrics = cache[key]
        return None if any(metrics[k] < full[k] - 1e-9 for k in GUARDED) else metrics

    best, best_metrics = never, full
    # Safest first, so that of rules reading as few passages the safest is kept.
    for bound in reversed(BOUNDS):
        for agree in reversed(BOUNDS):
            for low in hopeless:
                settle = Settle(first, bound, agree, low)
                metrics = passes(settle)
                if metrics is None or metrics["passages_read"] >= best_metrics["passages_read"]:
                    continue
                if all(passes(s) is not None for s in _safer(settle)):
                    best, best_metrics = settle, metrics
    return best, best_metrics, full


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="sets", action="append", type=Path, default=None)
    parser.add_argument("--reader", default=None, choices=[k.value for k in ReaderKind])
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
    parser.add_argument(
        "--no-cache", action="store_true", help=f"read every step again, not from {STEPS_CACHE}"
    )
    args = parser.parse_args(argv)
    sets = args.sets or [Path("eval/dev.jsonl")]
    if any("test" in p.name for p in sets):
        parser.error("fit on the dev split only; the test split is for reporting")
    settings = get_settings()
    if not 0 < settings.read_first < settings.read_passages:
        parser.error(
            f"reading by need is off (RAG_READ_FIRST={settings.read_first}, "
            f"RAG_READ_PASSAGES={settings.read_passages}): nothing to fit"
        )
    kind = ReaderKind(args.reader) if args.reader else settings.reader
    reader = build_reader(settings, kind, weights_path=args.out)
    # The scorer as fitted; its old stopping rule (perhaps for another RAG_READ_FIRST)
    # set aside for one that never stops, so that every step is read.
    fitted = load_weights(reader.target(), args.out)
    reader.use_weights(replace(fitted, settle=Settle(settings.read_first, NEVER)))
    pipeline = Pipeline(settings, load_components(settings, reader=reader))
    items = load_eval_sets(sets)
    key = hashlib.sha256(
        json.dumps(
            [
                replace(fitted, settle=None, dev_metrics={}).to_dict(),
                settings.model_dump(mode="json", exclude={"admin_token", "milvus_token"}),
                [(i.id, i.question) for i in items],
            ],
            sort_keys=True,
        ).encode()
    ).hexdigest()
    cache = None if args.no_cache else STEPS_CACHE / f"{kind.value}-{fitted.target.runtime}.json"
    questions = read_steps(pipeline, items, key, cache)
    rules, metrics, full = choose_rules(questions, settings.read_first, fitted.threshold)
    info: dict[str, Any] = {
        "sets": [str(p) for p in sets],
        "questions": len(items),
        "threshold": fitted.threshold,
        "read_all": {k: round(v, 4) for k, v in full.items() if isinstance(v, float)},
        "at_bound": {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)},
    }
    settle = replace(rules, dev_metrics=info)
    write_weights(replace(fitted, settle=settle), args.out)
    print(json.dumps({"section": fitted.target.section(), **settle.to_dict()}, indent=2))


if __name__ == "__main__":
    main()
