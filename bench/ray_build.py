"""Benchmark: the local build against the Ray engine on the same corpus, in one run.

Each build is its own ``rag index`` process (``--engine ray`` starts a local Ray with
``--workers`` actors per step, as a user's first try would), so the Ray figures include
starting Ray and its workers and each worker loading the models: what Ray costs on one
machine. The two indexes are then compared the way ``tests/store/test_ray_engine.py``
compares them on ``corpus/``: the same chunk ids, documents, offsets and texts, and
chunk vectors within 1e-5.

The default corpus is the 300-document synthetic one of ``bench/index_stages.py``
(shuffled real sentences of the letters, so every chunk is new text).

    .venv/bin/python bench/ray_build.py [--documents 300] [--workers 2] [--out reports/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from index_build import build  # noqa: E402

from rag.store.dense import vectors_of  # noqa: E402
from rag.store.index import Index  # noqa: E402
from rag.synthetic import write_synthetic_corpus  # noqa: E402


def compare(local_dir: Path, ray_dir: Path) -> dict[str, object]:
    """Chunk-for-chunk equality and the largest vector difference of two builds."""
    local, remote = Index.load(local_dir), Index.load(ray_dir)
    key = [(c.id, c.document_id, c.start, c.end, c.text) for c in local.chunks]
    same_chunks = [(c.id, c.document_id, c.start, c.end, c.text) for c in remote.chunks] == key
    same_annotations = all(
        remote.annotations[d].to_dict() == local.annotations[d].to_dict() for d in local.documents
    )
    assert local._dense is not None and remote._dense is not None
    diff = float(np.abs(vectors_of(remote._dense) - vectors_of(local._dense)).max())
    return {
        "chunks": len(key),
        "same_chunks_offsets_texts": same_chunks,
        "same_annotations": same_annotations,
        "max_vector_difference": diff,
        "equivalent": same_chunks and same_annotations and diff <= 1e-5,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--sentences-per-doc", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        corpus = tmp_path / "synthetic"
        write_synthetic_corpus(
            ROOT / "corpus", corpus, args.documents, sentences_per_doc=args.sentences_per_doc
        )
        rows = {}
        print("local build ...", flush=True)
        rows["local"] = build(corpus, tmp_path / "local")
        print(json.dumps(rows["local"]), flush=True)
        print(f"Ray build ({args.workers} workers) ...", flush=True)
        extra = ["--engine", "ray", "--workers", str(args.workers)]
        rows[f"ray, {args.workers} workers"] = build(corpus, tmp_path / "ray", extra)
        print(json.dumps(rows[f"ray, {args.workers} workers"]), flush=True)
        equivalence = compare(tmp_path / "local", tmp_path / "ray")
    result = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "corpus": f"synthetic: {args.documents} documents of shuffled real sentences",
        "builds": rows,
        "equivalence": equivalence,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_build.json").write_text(json.dumps(result, indent=2))
    print("\n| engine | documents | chunks | seconds | chunks/s | peak RSS MB (parent) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['documents']} | {r['chunks']} | {r['seconds']} | "
            f"{r['chunks_per_second']} | {r['peak_rss_mb']} |"
        )
    print(f"\nequivalence: {json.dumps(equivalence)}")
    if not equivalence["equivalent"]:
        raise SystemExit("the Ray build differs from the local build")


if __name__ == "__main__":
    main()
