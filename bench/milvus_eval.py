"""Retrieval metrics of `rag eval` on FAISS and on milvus-lite, side by side.

Builds the corpus twice in a temporary folder (FAISS; a milvus-lite collection) with the
packaged models, then scores every dev question the way ``rag eval`` scores retrieval
(``rag.evaluation.runner.run_retrieval``) for each store and mode, plus two Milvus-only
variants: Milvus's own BM25 over our stemmed terms (``RAG_MILVUS_LEXICAL=milvus``), and
Milvus's ``hybrid_search`` with its unweighted RRF ranker in place of our weighted fusion.

    .venv/bin/python bench/milvus_eval.py [--set eval/dev.jsonl] [--corpus corpus]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.annotate import Annotator  # noqa: E402
from rag.config import ReaderKind, RetrievalMode, Settings  # noqa: E402
from rag.evaluation.dataset import load_eval_sets  # noqa: E402
from rag.evaluation.runner import RetrievalRun, run_retrieval, score_rankings  # noqa: E402
from rag.lexical import terms  # noqa: E402
from rag.pipeline import Components, Pipeline, make_reader  # noqa: E402
from rag.store.builder import IndexBuilder  # noqa: E402
from rag.store.index import Index  # noqa: E402

METRICS = ("recall@5", "recall@10", "mrr")


def cells(run: RetrievalRun) -> str:
    doc = " / ".join(f"{run.by_document[m]:.3f}" for m in METRICS)
    ev = " / ".join(f"{run.by_evidence[m]:.3f}" for m in METRICS)
    return f"{doc} | {ev}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", dest="eval_set", type=Path, default=ROOT / "eval" / "dev.jsonl")
    parser.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    args = parser.parse_args()
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    items = load_eval_sets([args.eval_set])
    builder = IndexBuilder.from_settings(base)
    embedder = builder.embedder
    with tempfile.TemporaryDirectory(prefix="milvus-eval-") as tmp:
        faiss_dir, milvus_dir = Path(tmp) / "faiss", Path(tmp) / "milvus"
        builder.build(args.corpus, faiss_dir)
        on_milvus = base.model_copy(update={"vector_store": "milvus"})
        milvus_builder = IndexBuilder.from_settings(on_milvus)
        milvus_builder.embedder, milvus_builder.annotator = embedder, builder.annotator
        milvus_builder.build(args.corpus, milvus_dir)
        variants = {
            "FAISS": (base, faiss_dir),
            "milvus-lite": (on_milvus, milvus_dir),
            "milvus-lite, Milvus BM25": (
                on_milvus.model_copy(update={"milvus_lexical": "milvus"}),
                milvus_dir,
            ),
        }
        print(f"{len(items)} questions of {args.eval_set.name}; retrieval at k = 10")
        print(
            f"| store | mode | by document {'/'.join(METRICS)} | by evidence {'/'.join(METRICS)} |"
        )
        print("|---|---|---|---|")
        milvus_index: Index | None = None
        for name, (settings, folder) in variants.items():
            index = Index.from_settings(settings, folder)
            reader = make_reader(settings, ReaderKind.HEURISTIC)
            components = Components(index, embedder, Annotator(settings.spacy_model), reader)
            pipeline = Pipeline(settings, components)
            for mode in RetrievalMode:
                print(f"| {name} | {mode.value} | {cells(run_retrieval(pipeline, items, mode))} |")
            milvus_index = index if name == "milvus-lite" else milvus_index
        assert milvus_index is not None and milvus_index.milvus is not None
        rankings = []
        for item in items:
            if not item.answerable:
                rankings.append([])
                continue
            vector = embedder.embed([item.question])[0]
            found = milvus_index.milvus.hybrid_search(
                vector, terms(item.question), 10, rrf_k=base.rrf_k, depth=base.candidates
            )
            chunks = [milvus_index.chunks[h.row] for h in milvus_index._rows_of(found)]
            rankings.append([(c.document_id, c.start, c.end) for c in chunks])
        run = score_rankings(items, rankings, milvus_index)
        print(f"| milvus-lite hybrid_search, RRFRanker(k={base.rrf_k}) | hybrid | {cells(run)} |")


if __name__ == "__main__":
    main()
