"""Fit when reading by need may stop: the bound of :class:`rag.reader.scoring.Settle`.

``python -m rag.train.fit_settle`` (``make fit-settle``) asks every dev question through
:meth:`rag.pipeline.Pipeline.steps`, which reads as ``ask`` does but never stops early:
it gives the best verified answer after each step of the schedule (2, 4, then 8
passages by default). A bound then says where ``ask`` would have stopped: at the first
step whose best answer scores at least the bound.

The bound kept is the lowest one for which the dev answers are *no worse* than reading
every passage: overall F1, answerable F1 and unanswerable abstained each at least as
high, at the fitted abstention threshold. To keep a lucky isolated value out, every
higher bound must pass too. If none passes below the top, reading by need is fitted
off (a bound above every score: every question reads to the full depth). The test
split is never read.

The bound is written into the reader's section of the weights file, beside the scorer
it was fitted with, and records the ``RAG_READ_FIRST`` it holds for.
"""

from __future__ import annotations

import argparse
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
from rag.reader.compose import build_reader
from rag.reader.scoring import WEIGHTS_FILE, Settle, load_weights, write_weights
from rag.types import Answer

#: Bounds above every calibrated score: never settle early.
NEVER = 1.01
#: The dev scores a bound must not lower against reading every passage.
GUARDED = ("f1", "answerable_f1", "unanswerable_abstained")


@dataclass(frozen=True, slots=True)
class Stepped:
    """One dev question's best verified answer after each step of reading."""

    item: EvalItem
    steps: list[tuple[int, Answer | None]]

    def stop(self, bound: float) -> tuple[int, Answer | None]:
        """Where ``ask`` stops with ``bound``: the first settled step, else the last."""
        for read, best in self.steps:
            if best is not None and best.score >= bound:
                return read, best
        return self.steps[-1]


def _prediction(item: EvalItem, best: Answer | None) -> Prediction:
    c = best.citation if best else None
    return Prediction(
        item=item,
        answer=None,
        best=best.text if best else None,
        best_score=best.score if best else 0.0,
        document_id=c.document_id if c else None,
        start=c.start if c else None,
        end=c.end if c else None,
        citation_valid=True,
        timings_ms={},
    )


def outcome(questions: Sequence[Stepped], bound: float, threshold: float) -> dict[str, float]:
    """Dev scores and mean passages read when stopping at ``bound``."""
    stops = [q.stop(bound) for q in questions]
    preds = [_prediction(q.item, best) for q, (_, best) in zip(questions, stops, strict=True)]
    metrics = answer_metrics(preds, threshold)
    metrics["passages_read"] = sum(read for read, _ in stops) / max(len(stops), 1)
    return metrics


def choose_bound(
    questions: Sequence[Stepped], threshold: float
) -> tuple[float, dict[str, float], dict[str, float]]:
    """The lowest bound no worse than reading everything, every higher one passing too.

    Returns the bound, its dev scores, and those of reading every passage.
    """
    full = outcome(questions, NEVER, threshold)
    scores = {
        round(best.score, 4)
        for q in questions
        for _, best in q.steps[:-1]
        if best is not None and best.score >= threshold
    }
    chosen, chosen_metrics = NEVER, full
    for bound in sorted(scores, reverse=True):
        metrics = outcome(questions, bound, threshold)
        if any(metrics[k] < full[k] - 1e-9 for k in GUARDED):
            break
        chosen, chosen_metrics = bound, metrics
    return chosen, chosen_metrics, full


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="sets", action="append", type=Path, default=None)
    parser.add_argument("--reader", default=None, choices=[k.value for k in ReaderKind])
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE)
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
    questions = [
        Stepped(item, pipeline.steps(item.question))
        for item in tqdm(items, desc="dev steps", unit="q")
    ]
    bound, metrics, full = choose_bound(questions, fitted.threshold)
    info: dict[str, Any] = {
        "sets": [str(p) for p in sets],
        "questions": len(items),
        "threshold": fitted.threshold,
        "read_all": {k: round(v, 4) for k, v in full.items() if isinstance(v, float)},
        "at_bound": {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)},
    }
    settle = Settle(settings.read_first, bound, info)
    write_weights(replace(fitted, settle=settle), args.out)
    print(json.dumps({"section": fitted.target.section(), **settle.to_dict()}, indent=2))


if __name__ == "__main__":
    main()
