"""Measurement: does the reader's candidate pool hold the answer, and where does it rank?

Why: when the default reader misses, the fault is either in the pool (no candidate is
right: a proposal problem) or in the order (a right candidate is there but not first: a
scoring problem). This asks every answerable question of a split through
``Pipeline.candidates`` (the served path and read depth), scores the pool with the fitted
weights and reports:

- the oracle F1 (best candidate of the pool) and the share of questions whose pool holds
  a candidate with F1 >= 0.5;
- the share with such a candidate among the scorer's first five;
- the F1 of the first candidate before any abstention.

    .venv/bin/python bench/candidate_pool.py [--set eval/dev.jsonl]

Dev only by default: the test split is for the report, read once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.config import get_settings
from rag.evaluation.dataset import load_eval_sets
from rag.metrics import f1_score
from rag.pipeline import Pipeline
from rag.reader.compose import ScoredReader
from rag.reader.scoring import score

#: A candidate counts as right when its F1 against a gold answer reaches this.
RIGHT_F1 = 0.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="path", type=Path, default=Path("eval/dev.jsonl"))
    args = parser.parse_args()
    pipeline = Pipeline.from_settings(get_settings())
    reader = pipeline.components.reader
    if not isinstance(reader, ScoredReader):
        raise SystemExit(f"reader {reader.name!r} has no candidate pool")
    items = [i for i in load_eval_sets([args.path]) if i.answerable]
    best, first, top5, pool = [], [], 0, 0
    for item in items:
        ranked = score(pipeline.candidates(item.question), reader.weights)
        f1s = [f1_score(c.text, item.answers) for c in ranked]
        best.append(max(f1s, default=0.0))
        first.append(f1s[0] if f1s else 0.0)
        top5 += max(f1s[:5], default=0.0) >= RIGHT_F1
        pool += len(ranked)
    n = max(len(items), 1)
    result = {
        "set": str(args.path),
        "answerable_questions": len(items),
        "oracle_f1": round(sum(best) / n, 3),
        "pool_holds_right": round(sum(b >= RIGHT_F1 for b in best) / n, 3),
        "right_in_first_five": round(top5 / n, 3),
        "first_candidate_f1": round(sum(first) / n, 3),
        "mean_pool_size": round(pool / n, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
