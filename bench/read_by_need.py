"""Benchmark: reading by need against reading every passage, side by side in one run.

Why: the reader's read is nearly all of a question's time, and reading by need
(``RAG_READ_FIRST``, ``rag/reader/by_need.py``) is meant to cut it without losing answer
quality. This loads the served pipeline once and asks every question of eval/dev.jsonl
and eval/test.jsonl through each setup, in one process, the setups alternating which
goes first on each question so that other load on the machine falls on all alike:

- **read all**: ``RAG_READ_FIRST=0``, every one of the ``RAG_READ_PASSAGES`` passages
  read at once (what the service did before);
- **by need**: the configured ``RAG_READ_FIRST`` (default 2) with the rules fitted on dev;
- with ``--rerank``, **rerank + by need**: the packaged cross-encoder reorders the first
  ``RAG_RERANK_DEPTH`` fused passages first (``RAG_RERANKER=cross-encoder``, the same
  loaded QA model, the scorer and rules fitted for that order).

It reports per-question stage times (p50/p95 of analyse, retrieve, read, total) over
every question, the mean number of passages read, and answer quality on the dev split
only (the split every choice is made on; the test split's quality is for ``rag eval``).

    .venv/bin/python bench/read_by_need.py [--questions N] [--index index] [--rerank]
        [--out reports/bench/read_by_need.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import get_settings  # noqa: E402
from rag.evaluation.dataset import EvalItem, load_eval_sets  # noqa: E402
from rag.evaluation.runner import Prediction, answer_metrics, predict  # noqa: E402
from rag.metrics import percentile  # noqa: E402
from rag.pipeline import Pipeline, load_components, make_reader  # noqa: E402
from rag.reader.compose import ScoredReader  # noqa: E402
from rag.rerank import build_reranker  # noqa: E402

STAGES = ("analyse", "retrieve", "rerank", "read", "total")
QUALITY = ("f1", "answerable_f1", "unanswerable_abstained", "answerable_abstained")


def setups(pipeline: Pipeline, rerank: bool = False) -> dict[str, Pipeline]:
    """The served pipeline, the same loaded models reading every passage at once, and
    (``rerank``) the cross-encoder's order read by need."""
    reader = pipeline.components.reader
    if not isinstance(reader, ScoredReader):
        raise SystemExit(f"reader {reader.name!r} does not read passages by need")
    if reader.settle is None:
        raise SystemExit("reading by need is off or unfitted: run `make fit-settle` first")
    read_all = replace(pipeline.components, reader=replace(reader, read_first=0))
    out = {"read all": Pipeline(pipeline.settings, read_all), "by need": pipeline}
    if rerank:
        settings = pipeline.settings.model_copy(update={"reranker": "cross-encoder"})
        reranker = build_reranker(settings)
        reranker.warm_up()
        reranked = make_reader(settings, model=reader.model)
        reranked.warm_up()
        components = replace(pipeline.components, reader=reranked, reranker=reranker)
        out["rerank + by need"] = Pipeline(settings, components)
    return out


def measure(named: dict[str, Pipeline], items: list[EvalItem]) -> dict[str, Any]:
    """Every question through every setup, alternating the order; then the summary."""
    preds: dict[str, list[Prediction]] = {name: [] for name in named}
    for pipe in named.values():  # warm-up: sessions, caches, first-call costs
        for item in items[:5]:
            pipe.ask(item.question)
    names = list(named)
    for n, item in enumerate(items):
        order = names if n % 2 == 0 else names[::-1]
        for name in order:
            preds[name].append(predict(named[name], item))
    out: dict[str, Any] = {}
    for name, ps in preds.items():
        dev = [p for p in ps if "dev" in p.item.source]
        threshold = named[name].threshold
        metrics = answer_metrics(dev, threshold)
        out[name] = {
            "questions": len(ps),
            "passages_read": sum(p.passages_read for p in ps) / max(len(ps), 1),
            "dev_passages_read": sum(p.passages_read for p in dev) / max(len(dev), 1),
            "latency_ms": {
                s: {
                    "p50": percentile([p.timings_ms.get(s, 0.0) for p in ps], 50),
                    "p95": percentile([p.timings_ms.get(s, 0.0) for p in ps], 95),
                }
                for s in STAGES
            },
            "dev": {k: metrics[k] for k in QUALITY},
        }
    return out


def table(results: dict[str, Any]) -> str:
    head = ["setup", "passages read"]
    head += [f"{s} p50/p95 ms" for s in STAGES]
    head += [f"dev {k}" for k in QUALITY]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        cells = [name, f"{r['passages_read']:.2f}"]
        cells += [
            f"{r['latency_ms'][s]['p50']:.0f} / {r['latency_ms'][s]['p95']:.0f}" for s in STAGES
        ]
        cells += [f"{r['dev'][k]:.3f}" for k in QUALITY]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=None, help="only the first N")
    parser.add_argument("--index", type=Path, default=ROOT / "index")
    parser.add_argument("--rerank", action="store_true", help="add the cross-encoder's order")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "reports" / "bench" / "read_by_need.json"
    )
    args = parser.parse_args(argv)
    settings = get_settings().model_copy(update={"index_dir": args.index})
    pipeline = Pipeline(settings, load_components(settings))
    items = load_eval_sets([ROOT / "eval" / "dev.jsonl", ROOT / "eval" / "test.jsonl"])
    items = items[: args.questions] if args.questions else items
    results = measure(setups(pipeline, args.rerank), items)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(table(results))


if __name__ == "__main__":
    main()
