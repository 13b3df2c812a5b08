"""Benchmark: exact against IVF dense search, p50 latency and recall@10, at several sizes.

What it measures is what chose the defaults of ``RAG_DENSE_IVF_MIN_CHUNKS`` and
``RAG_DENSE_NPROBE`` (README "Index types"), through the code the service runs
(``rag.store.dense``: ``build_dense`` and ``search``).

The vectors are real: paragraphs of SQuAD 1.1 train (``../shared/datasets``), one chunk
each, embedded by the packaged model; the queries are real questions about those
paragraphs, embedded by the same model. A size above the number of real paragraphs is
**synthetic**: the real vectors, then copies of randomly chosen real vectors with
isotropic noise of norm ``--noise`` added and renormalised (cosine to their source about
1/√(1 + noise²)). Recall@10 is the share of exact search's ten best rows that the IVF
search also returns, averaged over the queries. Latency is one question at a time.

**Filtered searches**, side by side in the same run: for each share in ``--shares`` a
seeded random set of allowed rows (that share of the collection), searched as the
service searches a filter (``search``: up to 1,000 rows gathered and searched exactly,
above that ``filtered_probes`` cells through a row bitmap) and through the bitmap with
each rule of ``PROBE_RULES`` for the cells probed (``nprobe`` alone: what the service did
before above 20,000 rows; every cell: exact, what it did before for 1,000 to 20,000),
each against exact search over the allowed rows, beside the unfiltered search.

    .venv/bin/python bench/dense_search.py [--texts 3000] [--sizes 3000,10000,30000,100000]
        [--shares 0.02,0.125,0.5] [--vectors-from .cache/open-large/index]

Embeddings are cached in ``.cache/bench/`` (keyed by the texts and the model), so a second
run only searches.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import faiss  # noqa: E402

from rag.config import get_settings  # noqa: E402
from rag.embedding import SentenceTransformerEmbedder  # noqa: E402
from rag.store.dense import (  # noqa: E402
    DenseKind,
    DenseSettings,
    build_dense,
    filtered_probes,
    row_bitmap,
    search,
    vectors_of,
)
from rag.store.index import read_dense  # noqa: E402
from rag.store.layout import resolve_version  # noqa: E402

K = 10


def squad_texts(data_dir: Path, n_texts: int, n_queries: int) -> tuple[list[str], list[str]]:
    """The first ``n_texts`` distinct paragraphs of SQuAD 1.1 train and one question each."""
    paragraphs: list[str] = []
    questions: list[str] = []
    seen: set[str] = set()
    for path in sorted((data_dir / "squad11-train").glob("*.json")):
        for article in json.loads(path.read_text(encoding="utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                context = paragraph["context"]
                if context in seen or not paragraph["qas"]:
                    continue
                seen.add(context)
                paragraphs.append(context)
                questions.append(paragraph["qas"][0]["question"])
                if len(paragraphs) == n_texts:
                    step = max(1, n_texts // n_queries)
                    return paragraphs, questions[::step][:n_queries]
    raise SystemExit(f"only {len(paragraphs)} paragraphs in {data_dir}; ask for fewer --texts")


def embed_cached(
    embedder: SentenceTransformerEmbedder, texts: list[str], cache: Path
) -> np.ndarray:
    key = hashlib.sha256(("\n".join([embedder.model_id, *texts])).encode()).hexdigest()[:16]
    path = cache / f"dense_search-{key}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    vectors = embedder.embed(texts, batch_size=64, progress=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, vectors, allow_pickle=False)
    return vectors


def replicate(real: np.ndarray, size: int, noise: float, seed: int) -> np.ndarray:
    """The real rows, then noisy copies of random real rows up to ``size`` (synthetic)."""
    if size <= len(real):
        return np.ascontiguousarray(real[:size])
    rng = np.random.default_rng(seed)
    extra = size - len(real)
    source = real[rng.integers(0, len(real), size=extra)]
    step = rng.standard_normal(source.shape).astype(np.float32)
    step *= noise / np.linalg.norm(step, axis=1, keepdims=True)
    copies = source + step
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    return np.ascontiguousarray(np.concatenate([real, copies]), dtype=np.float32)


def timed(
    queries: np.ndarray, find: Callable[[np.ndarray], np.ndarray]
) -> tuple[list[list[int]], list[float]]:
    """The rows ``find`` returns for each query, one at a time, and its milliseconds."""
    rows: list[list[int]] = []
    times: list[float] = []
    for query in queries:
        started = time.perf_counter()
        found = find(query)
        times.append((time.perf_counter() - started) * 1000)
        rows.append([int(r) for r in found if r >= 0])
    return rows, times


def timed_search(
    index: faiss.Index,
    queries: np.ndarray,
    nprobe: int | None,
    allowed: np.ndarray | None = None,
) -> tuple[list[list[int]], list[float]]:
    """The served search (``rag.store.dense.search``), timed per query."""
    return timed(queries, lambda query: search(index, query, K, allowed, nprobe)[1])


def recall(found: list[list[int]], exact: list[list[int]]) -> float:
    return float(
        np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)])
    )


def exact_over(vectors: np.ndarray, queries: np.ndarray, allowed: np.ndarray) -> list[list[int]]:
    """Exact search's ten best allowed rows for each query."""
    scores = queries @ vectors[allowed].T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return [[int(allowed[i]) for i in row] for row in top]


def probe_search(
    ivf: faiss.Index, queries: np.ndarray, probes: int, allowed: np.ndarray
) -> tuple[list[list[int]], list[float]]:
    """A bitmap-filtered IVF search of ``probes`` cells (the bitmap built per question)."""
    inner = faiss.extract_index_ivf(ivf)

    def find(query: np.ndarray) -> np.ndarray:
        params = faiss.SearchParametersIVF()
        params.nprobe = probes
        selector = row_bitmap(allowed, int(inner.ntotal))
        params.sel = selector  # held here while FAISS searches with it
        return inner.search(query.reshape(1, -1), K, params=params)[1][0]

    return timed(queries, find)


#: Filtered-search rules compared: cells probed from (nprobe, nlist, rows, rows allowed).
#: The served rule is ``filtered_probes`` itself, so its column is what the service does.
PROBE_RULES: dict[str, Callable[[int, int, int, int], int]] = {
    "nprobe": lambda p, nlist, n, allowed: min(p, nlist),
    "nprobe/sqrt(share) (served)": filtered_probes,
    "nprobe/share": lambda p, nlist, n, allowed: min(nlist, math.ceil(p * n / allowed)),
    "every cell": lambda p, nlist, n, allowed: nlist,
}


def filtered_rows(
    ivf: faiss.Index, vectors: np.ndarray, queries: np.ndarray, shares: list[float], seed: int
) -> list[dict[str, object]]:
    """Per share of allowed rows: the served filtered search and each rule of
    ``PROBE_RULES``, p50 and recall@10 against exact search over the allowed rows."""
    nlist = int(faiss.extract_index_ivf(ivf).nlist)
    nprobe = DenseSettings().nprobe
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for share in shares:
        n_allowed = max(1, round(share * len(vectors)))
        allowed = np.sort(rng.choice(len(vectors), size=n_allowed, replace=False)).astype(np.int64)
        exact = exact_over(vectors, queries, allowed)
        served, served_times = timed_search(ivf, queries, None, allowed)
        rules = {}
        for name, rule in PROBE_RULES.items():
            probes = rule(nprobe, nlist, len(vectors), n_allowed)
            found, times = probe_search(ivf, queries, probes, allowed)
            rules[name] = {
                "probes": probes,
                "p50_ms": round(float(np.median(times)), 3),
                "recall_at_10": round(recall(found, exact), 4),
            }
        rows.append(
            {
                "share": share,
                "allowed": n_allowed,
                "served_probes": filtered_probes(nprobe, nlist, len(vectors), n_allowed),
                "served_p50_ms": round(float(np.median(served_times)), 3),
                "served_recall_at_10": round(recall(served, exact), 4),
                "rules": rules,
            }
        )
    return rows


def probes_of(row: dict[str, object]) -> list[dict[str, float]]:
    probes = row["ivf"]
    assert isinstance(probes, list)
    return probes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "datasets")
    parser.add_argument("--texts", type=int, default=3000, help="real paragraphs embedded")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sizes", default="3000,10000,30000,100000")
    parser.add_argument("--nprobe", default="4,8,16,32,64")
    parser.add_argument(
        "--vectors-from",
        type=Path,
        help="an index folder (e.g. bench/open_retrieval_large.py's): search its real chunk "
        "vectors, at their own size only, with the SQuAD questions of the first --texts "
        "paragraphs",
    )
    parser.add_argument("--shares", default="0.02,0.125,0.5", help="filtered shares of rows")
    parser.add_argument("--noise", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    nprobes = [int(p) for p in args.nprobe.split(",")]
    shares = [float(s) for s in args.shares.split(",")]

    settings = get_settings()
    embedder = SentenceTransformerEmbedder(settings.embedding_model)
    texts, questions = squad_texts(args.data_dir, args.texts, args.queries)
    started = time.perf_counter()
    if args.vectors_from:  # every chunk vector of a built index: real at its whole size
        real = vectors_of(read_dense(resolve_version(args.vectors_from)))
        sizes = [len(real)]
    else:
        real = embed_cached(embedder, texts, ROOT / ".cache" / "bench")
    embed_seconds = time.perf_counter() - started
    queries = embedder.embed(questions)
    print(f"{len(real)} real paragraph vectors ({embed_seconds:.1f} s), {len(queries)} questions")

    results: list[dict[str, object]] = []
    for size in sizes:
        vectors = replicate(real, size, args.noise, args.seed)
        label = "real" if size <= len(real) else f"synthetic (real + noisy copies, {args.noise})"
        flat, _ = build_dense(vectors, DenseSettings(kind=DenseKind.FLAT))
        exact, flat_times = timed_search(flat, queries, None)
        t = time.perf_counter()
        ivf, info = build_dense(vectors, DenseSettings(kind=DenseKind.IVF, seed=args.seed))
        ivf_build = time.perf_counter() - t
        probes = []
        for nprobe in [p for p in nprobes if p <= info.nlist]:
            found, times = timed_search(ivf, queries, nprobe)
            probes.append(
                {
                    "nprobe": nprobe,
                    "p50_ms": round(float(np.median(times)), 3),
                    "recall_at_10": round(recall(found, exact), 4),
                }
            )
        _, plain_times = timed_search(ivf, queries, None)
        row = {
            "size": size,
            "vectors": label,
            "flat_p50_ms": round(float(np.median(flat_times)), 3),
            "ivf_nlist": info.nlist,
            "ivf_build_s": round(ivf_build, 2),
            "ivf": probes,
            "unfiltered_p50_ms": round(float(np.median(plain_times)), 3),
            "filtered": filtered_rows(ivf, vectors, queries, shares, args.seed),
        }
        results.append(row)
        print(json.dumps(row), flush=True)

    print()
    print("| size | vectors | exact p50 ms | nlist | IVF build s | nprobe: p50 ms / recall@10 |")
    print("|---|---|---|---|---|---|")
    for row in results:
        cells = ", ".join(
            f"{e['nprobe']}: {e['p50_ms']:.2f} / {e['recall_at_10']:.3f}" for e in probes_of(row)
        )
        print(
            f"| {row['size']:,} | {row['vectors']} | {row['flat_p50_ms']:.2f} | "
            f"{row['ivf_nlist']} | {row['ivf_build_s']} | {cells} |"
        )
    print()
    names = list(PROBE_RULES)
    print(
        "| size | unfiltered p50 ms | share allowed | served: cells, p50 ms / recall@10 | "
        + " | ".join(f"{n}: cells, p50 ms / recall@10" for n in names)
        + " |"
    )
    print("|---" * (4 + len(names)) + "|")
    for row in results:
        filtered = row["filtered"]
        assert isinstance(filtered, list)
        for f in filtered:
            cells = " | ".join(
                f"{r['probes']}, {r['p50_ms']:.2f} / {r['recall_at_10']:.3f}"
                for r in (f["rules"][n] for n in names)
            )
            print(
                f"| {row['size']:,} | {row['unfiltered_p50_ms']:.2f} | {f['share']} "
                f"({f['allowed']:,}) | {f['served_probes']}, {f['served_p50_ms']:.2f} / "
                f"{f['served_recall_at_10']:.3f} | {cells} |"
            )
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": faiss.omp_get_max_threads(), "python": platform.python_version()},
        "model": embedder.model_id,
        "texts": "SQuAD 1.1 train paragraphs (one chunk each), real embeddings",
        "queries": f"{len(queries)} SQuAD 1.1 train questions about those paragraphs",
        "real_vectors": len(real),
        "noise": args.noise,
        "k": K,
        "results": results,
    }
    path = args.out / "dense_search.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
