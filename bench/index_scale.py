"""Benchmark: the served index at 10k / 100k / 1M chunks: RSS, load time, retrieval, filters.

The indexes are **synthetic**, honestly so: ``--texts`` real SQuAD 1.1 train paragraphs
(``../shared/datasets``, one chunk each) embedded once by the packaged model (cached in
``.cache/bench/``, shared with ``bench/dense_search.py``), then replicated to N chunks: the
real rows first, then copies of randomly chosen real paragraphs, the same text with its
vector plus isotropic noise of norm ``--noise``, renormalised (``dense_search.replicate``).
The chunks are grouped 20 to a document (N/20 documents, each document's text its chunks'
texts joined); three documents in four carry a date (a random day of 1990-2019), so a
date filter selects something. Annotations hold each chunk's sentences (no entities).
BM25 terms are computed once per distinct text and reused for its copies, so copies are
identical texts for BM25 (document frequencies scale with N as in the real paragraphs).

Each index is written in the served format by the builder's own code (``IndexBuilder``'s
``_manifest`` and ``_write``, ``build_dense`` with the default settings): the same files,
manifest and checksums ``Index.load`` verifies, published as a version like ``rag index``.

Each size is then measured in a fresh child process, so its peak RSS is the service's
own (the child's ``VmHWM`` just before it exits; ``os.wait4``'s ``ru_maxrss``, also
recorded, counts the parent's RSS at the fork, which holds every vector). It loads what
the service loads at start-up (``Pipeline.from_settings``: the index with its checksums,
the embedder, spaCy and the default reader), reports the time from its start to ready,
then asks ``--queries`` real SQuAD questions about the real
paragraphs, one at a time (query vectors embedded beforehand; embedding is not timed):

* dense search as served (``Index.dense_search``, the top 10), p50/p95, and recall@10
  against exact search (a flat inner-product FAISS index over the same vectors, in the
  parent process);
* lexical search as served (``rag.lexical.terms`` of the question + ``Index.lexical_search``);
* both with a document filter (the question's document and four others) and with a date
  range filter (2000-2004), each timed with the filter's ``Index.allowed_rows`` included,
  against the unfiltered time; recall@10 of the date-filtered dense search against exact
  search under the same filter.

    .venv/bin/python bench/index_scale.py [--sizes 10000,100000,1000000] [--texts 3000]
        [--queries 200] [--keep]

Prints a markdown table and writes ``reports/bench/index_scale.json``. The index folders
live in ``.cache/bench/index_scale/`` and are deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import faiss  # noqa: E402

#: Chunks per synthetic document.
CHUNKS_PER_DOC = 20
#: The date filter asked (inclusive); documents are dated uniformly over 1990-2019.
DATE_FROM, DATE_TO = "2000-01-01", "2004-12-31"
K = 10
_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+|$)")


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 3)


# -- building (parent) -------------------------------------------------------------------


def sentence_spans(text: str) -> list[tuple[int, int]]:
    spans = []
    for match in _SENTENCE.finditer(text):
        start, end = match.start(), match.end()
        while start < end and text[start].isspace():
            start += 1
        if start < end:
            spans.append((start, end))
    return spans


def sources_of(n_real: int, size: int, seed: int) -> np.ndarray:
    """The real text behind each row: the same draw ``dense_search.replicate`` makes."""
    if size <= n_real:
        return np.arange(size)
    extra = np.random.default_rng(seed).integers(0, n_real, size=size - n_real)
    return np.concatenate([np.arange(n_real), extra])


def document_dates(n_docs: int, seed: int) -> list[str | None]:
    rng = np.random.default_rng(seed + 1)
    first = dt.date(1990, 1, 1).toordinal()
    days = rng.integers(0, dt.date(2019, 12, 31).toordinal() - first + 1, size=n_docs)
    dated = rng.random(n_docs) < 0.75
    return [
        dt.date.fromordinal(first + int(d)).isoformat() if keep else None
        for d, keep in zip(days, dated, strict=True)
    ]


def write_index(
    index_dir: Path,
    texts: list[str],
    text_terms: list[list[str]],
    sources: np.ndarray,
    vectors: np.ndarray,
    dates: list[str | None],
) -> dict[str, float]:
    """One published index version over the rows, through the builder's own writers."""
    from rag.chunking import chunk_id
    from rag.config import get_settings
    from rag.store.builder import BuildReport, IndexBuilder
    from rag.store.dense import build_dense
    from rag.store.files import sha256_bytes
    from rag.store.index import IndexData
    from rag.store.layout import new_version_dir, publish
    from rag.types import Annotations, Chunk, Document, Metadata, Span

    started = time.perf_counter()
    builder = IndexBuilder.from_settings(get_settings())  # models load lazily: none here
    spans = [sentence_spans(t) for t in texts]
    documents: list[Document] = []
    chunks: list[Chunk] = []
    annotations: list[Annotations] = []
    hashes: dict[str, str] = {}
    n = len(sources)
    for d, row0 in enumerate(range(0, n, CHUNKS_PER_DOC)):
        doc_id = f"synthetic-{d:06d}"
        rows = sources[row0 : row0 + CHUNKS_PER_DOC]
        sentences: list[Span] = []
        offset = 0
        parts = []
        for src in rows:
            text = texts[int(src)]
            chunks.append(
                Chunk(chunk_id(doc_id, offset, text), doc_id, offset, offset + len(text), text)
            )
            sentences += [Span(offset + a, offset + b) for a, b in spans[int(src)]]
            parts.append(text)
            offset += len(text) + 2
        body = "\n\n".join(parts)
        sha = sha256_bytes(body.encode())
        path = f"{doc_id}.txt"
        hashes[path] = sha
        meta = Metadata(title=f"Synthetic document {d}", date=dates[d])
        documents.append(Document(doc_id, body, path, "txt", len(body.encode()), sha, meta))
        annotations.append(Annotations(doc_id, sentences))
    records_s = time.perf_counter() - started
    data = IndexData(documents, chunks, annotations, vectors)
    report = BuildReport(path=index_dir, documents=len(documents), chunks=n)
    manifest = builder._manifest(hashes, documents, report, vectors)
    manifest.vector_store = builder.vector_store_for(index_dir)
    t = time.perf_counter()
    dense, info = build_dense(vectors, builder.dense)
    dense_s = time.perf_counter() - t
    manifest.dense = info.to_dict()
    tmp = new_version_dir(index_dir, dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ"))
    t = time.perf_counter()
    builder._write(
        tmp, data, dense, manifest, started=started, corpus_terms=[text_terms[s] for s in sources]
    )
    write_s = time.perf_counter() - t
    publish(index_dir, tmp)
    return {
        "objects_s": round(records_s, 1),
        "dense_s": round(dense_s, 1),
        "write_s": round(write_s, 1),
        "total_s": round(time.perf_counter() - started, 1),
        "dense_kind": info.kind,
        "nlist": info.nlist,
    }


def exact_top(
    vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray | None = None
) -> list[list[int]]:
    """Exact top ``K`` rows by inner product (a flat FAISS index), optionally among ``allowed``."""
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    params = None
    if allowed is not None:
        params = faiss.SearchParameters()
        params.sel = faiss.IDSelectorBatch(allowed)
    _, rows = flat.search(queries, K, params=params)
    return [[int(r) for r in row if r >= 0] for row in rows]


# -- measuring (child) -------------------------------------------------------------------


def child(args: argparse.Namespace) -> None:
    """Load as the service does, report ready time, then time every retrieval kind."""
    from rag.config import get_settings
    from rag.filters import Filters
    from rag.lexical import terms
    from rag.pipeline import Pipeline

    pipeline = Pipeline.from_settings(get_settings())
    ready_s = time.time() - args.t0
    hwm_ready = status_kb("VmHWM")
    index = pipeline.index
    work = json.loads(Path(args.child_input).read_text())
    queries = np.load(work["queries"])
    questions: list[str] = work["questions"]
    doc_filters = [Filters.create(documents=ids) for ids in work["doc_filters"]]
    date_filter = Filters.create(date_from=DATE_FROM, date_to=DATE_TO)

    def timed(fn: Any) -> tuple[list[float], list[list[int]]]:
        times, found = [], []
        for i in range(len(questions)):
            started = time.perf_counter()
            hits = fn(i)
            times.append((time.perf_counter() - started) * 1000)
            found.append([h.row for h in hits])
        return times, found

    def dense(i: int, f: Filters | None) -> Any:
        allowed = index.allowed_rows(f) if f is not None else None
        return index.dense_search(queries[i], K, allowed, filters=f)

    def lexical(i: int, f: Filters | None) -> Any:
        allowed = index.allowed_rows(f) if f is not None else None
        return index.lexical_search(terms(questions[i]), K, allowed, filters=f)

    for i in range(min(20, len(questions))):  # warm caches and FAISS's threads
        dense(i, None)
        lexical(i, None)
    results: dict[str, Any] = {}
    runs = {
        "dense": lambda i: dense(i, None),
        "dense_doc": lambda i: dense(i, doc_filters[i]),
        "dense_date": lambda i: dense(i, date_filter),
        "lexical": lambda i: lexical(i, None),
        "lexical_doc": lambda i: lexical(i, doc_filters[i]),
        "lexical_date": lambda i: lexical(i, date_filter),
    }
    found: dict[str, list[list[int]]] = {}
    for name, fn in runs.items():
        times, found[name] = timed(fn)
        results[name] = {
            "p50_ms": percentile(times, 50),
            "p95_ms": percentile(times, 95),
            "hwm_after_mb": round(status_kb("VmHWM") / 1024, 1),
        }
    out = {
        "ready_s": round(ready_s, 2),
        "hwm_ready_mb": round(hwm_ready / 1024, 1),
        "date_allowed_rows": int(index.allowed_rows(date_filter).size),
        "dense_info": index.dense_info.to_dict(),
        "nprobe": index.nprobe,
        "timings": results,
        "found": {k: found[k] for k in ("dense", "dense_date")},
    }
    out["hwm_end_mb"] = round(status_kb("VmHWM") / 1024, 1)
    Path(args.child_output).write_text(json.dumps(out))


def status_kb(field: str) -> int:
    """A field of this process's ``/proc/self/status`` in kB (VmRSS, VmHWM); 0 if absent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(index_dir: Path, work_file: Path, extra_env: dict[str, str]) -> dict[str, Any]:
    """One fresh child process over ``index_dir``: its own peak RSS and its numbers."""
    out_file = work_file.with_suffix(".out.json")
    env = {
        **os.environ,
        "RAG_INDEX_DIR": str(index_dir),
        "TQDM_DISABLE": "1",
        "PYTHONPATH": str(ROOT),
        **extra_env,
    }
    t0 = time.time()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child-input", str(work_file)]
    cmd += ["--child-output", str(out_file), "--t0", repr(t0)]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, env=env, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise SystemExit(stderr.read().decode()[-3000:])
    result = json.loads(out_file.read_text())
    # The child's own high-water mark since it started (VmHWM before it exits). Not
    # wait4's ru_maxrss: the kernel counts in it the RSS of the process image the child
    # was forked from, i.e. this parent's, which holds the vectors of the whole collection.
    result["peak_rss_mb"] = result.pop("hwm_end_mb")
    result["wait4_maxrss_mb"] = round(usage.ru_maxrss / 1024, 1)  # KiB on Linux
    return result


# -- the run -----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--texts", type=int, default=3000, help="real paragraphs embedded")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "bench" / "index_scale")
    parser.add_argument("--keep", action="store_true", help="keep the index folders")
    parser.add_argument(
        "--reuse", action="store_true", help="measure index folders kept by --keep, unbuilt"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    parser.add_argument("--child-input", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_input:
        child(args)
        return

    from dense_search import embed_cached, recall, replicate, squad_texts

    from rag.config import get_settings
    from rag.embedding import SentenceTransformerEmbedder
    from rag.filters import Filters
    from rag.lexical import terms
    from rag.store.catalog import DocumentCatalog, DocumentRows

    sizes = [int(s) for s in args.sizes.split(",")]
    settings = get_settings()
    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    texts, questions = squad_texts(args.data_dir, args.texts, args.queries)
    real = embed_cached(embedder, texts, ROOT / ".cache" / "bench")
    queries = np.ascontiguousarray(embedder.embed(questions), dtype=np.float32)
    # The paragraph each question is about (squad_texts keeps every step-th question).
    step = max(1, args.texts // args.queries)
    about = [i * step for i in range(len(questions))]
    text_terms = [terms(t) for t in texts]
    print(f"{len(real)} real paragraph vectors, {len(questions)} questions", flush=True)
    args.work.mkdir(parents=True, exist_ok=True)
    np.save(args.work / "queries.npy", queries, allow_pickle=False)
    rng = np.random.default_rng(args.seed + 2)

    results: list[dict[str, Any]] = []
    for size in sizes:
        n_docs = -(-size // CHUNKS_PER_DOC)
        index_dir = args.work / f"index-{size}"
        sources = sources_of(len(real), size, args.seed)
        vectors = replicate(real, size, args.noise, args.seed)
        dates = document_dates(n_docs, args.seed)
        built = index_dir / "build.json"
        if args.reuse and built.exists():
            build = json.loads(built.read_text())
        else:
            shutil.rmtree(index_dir, ignore_errors=True)
            print(f"building {size:,} chunks ...", flush=True)
            build = write_index(index_dir, texts, text_terms, sources, vectors, dates)
            built.write_text(json.dumps(build))
        print(f"  built: {json.dumps(build)}", flush=True)
        # The question's own document (where its paragraph's real row is) and four others.
        doc_filters = [
            [f"synthetic-{min(a, size - 1) // CHUNKS_PER_DOC:06d}"]
            + [f"synthetic-{int(d):06d}" for d in rng.integers(0, n_docs, size=4)]
            for a in about
        ]
        exact = exact_top(vectors, queries)
        catalog = DocumentCatalog(
            {
                f"synthetic-{d:06d}": DocumentRows(
                    d * CHUNKS_PER_DOC, min(CHUNKS_PER_DOC, size - d * CHUNKS_PER_DOC), dates[d]
                )
                for d in range(n_docs)
            }
        )
        date_rows = catalog.allowed_rows(Filters.create(date_from=DATE_FROM, date_to=DATE_TO))
        exact_date = exact_top(vectors, queries, date_rows)
        del vectors
        work_file = args.work / f"work-{size}.json"
        work_file.write_text(
            json.dumps(
                {
                    "queries": str(args.work / "queries.npy"),
                    "questions": questions,
                    "doc_filters": doc_filters,
                }
            )
        )
        print(f"  measuring {size:,} in a fresh process ...", flush=True)
        measured = measure(index_dir, work_file, {})
        found = measured.pop("found")
        row = {
            "size": size,
            "documents": n_docs,
            "dated_documents": sum(d is not None for d in dates),
            "build": build,
            "index_mb": round(
                sum(p.stat().st_size for p in (index_dir / "current").rglob("*") if p.is_file())
                / 1e6,
                1,
            ),
            **measured,
            "dense_recall_at_10": round(recall(found["dense"], exact), 4),
            "dense_date_recall_at_10": round(recall(found["dense_date"], exact_date), 4),
        }
        results.append(row)
        print(json.dumps(row), flush=True)
        if not args.keep:
            shutil.rmtree(index_dir, ignore_errors=True)

    print_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "model": embedder.model_id,
        "corpus": (
            f"SYNTHETIC: {len(real)} real SQuAD 1.1 train paragraphs (real embeddings) "
            f"replicated with vector noise {args.noise} to each size; {CHUNKS_PER_DOC} "
            "chunks per document, 3 documents in 4 dated"
        ),
        "queries": f"{len(questions)} real SQuAD 1.1 train questions about those paragraphs",
        "filters": {
            "document": "the question's document and 4 random others",
            "date": f"{DATE_FROM}..{DATE_TO}",
        },
        "k": K,
        "results": results,
    }
    path = args.out / "index_scale.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {path}")


def print_table(results: list[dict[str, Any]]) -> None:
    print("\nSynthetic index (real SQuAD paragraphs and embeddings, replicated with noise)\n")
    print(
        "| chunks | index MB | build s | peak RSS MB | ready s | dense p50/p95 ms | recall@10 "
        "| dense doc-filter p50 | dense date-filter p50 (recall@10) | lexical p50/p95 ms "
        "| lexical doc-filter p50 | lexical date-filter p50 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        t = r["timings"]
        print(
            f"| {r['size']:,} | {r['index_mb']} | {r['build']['total_s']} | {r['peak_rss_mb']} "
            f"| {r['ready_s']} | {t['dense']['p50_ms']:.2f} / {t['dense']['p95_ms']:.2f} "
            f"| {r['dense_recall_at_10']:.3f} | {t['dense_doc']['p50_ms']:.2f} "
            f"| {t['dense_date']['p50_ms']:.2f} ({r['dense_date_recall_at_10']:.3f}) "
            f"| {t['lexical']['p50_ms']:.2f} / {t['lexical']['p95_ms']:.2f} "
            f"| {t['lexical_doc']['p50_ms']:.2f} | {t['lexical_date']['p50_ms']:.2f} |"
        )


if __name__ == "__main__":
    main()
