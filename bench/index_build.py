"""Benchmark: index build time, chunks per second, index size and peak memory.

Two corpora: the real one (corpus/) and a synthetic one of 5,000 documents whose
sentences are drawn from the real letters and shuffled into new documents (so chunks are
new text, not duplicates the embedding cache would skip). Each build runs in its own
process (``rag index``) so peak memory is that build's alone.

    .venv/bin/python bench/index_build.py [--synthetic-docs 5000] [--out reports/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.store.layout import resolve_index_dir  # noqa: E402
from rag.synthetic import write_synthetic_corpus  # noqa: E402


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(corpus: Path, out: Path) -> dict[str, float]:
    """One full build in a child process; wall time, peak RSS, sizes and counts."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "rag.cli", "index", "--corpus", str(corpus), "--out", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    manifest = json.loads((resolve_index_dir(out) / "manifest.json").read_text())
    chunks = manifest["counts"]["chunks"]
    return {
        "documents": manifest["counts"]["documents"],
        "chunks": chunks,
        "corpus_mb": round(folder_size(corpus) / 1e6, 3),
        "seconds": round(seconds, 2),
        "chunks_per_second": round(chunks / seconds, 1),
        "index_mb": round(folder_size(resolve_index_dir(out)) / 1e6, 2),
        # ru_maxrss of children is the largest child so far: report it only if it grew.
        "peak_rss_mb": round(max(peak_kib, before) / 1024, 1),
        "summary": proc.stdout.strip().splitlines()[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic-docs", type=int, default=5000)
    parser.add_argument("--sentences-per-doc", type=int, default=12)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        print("building the real corpus ...", flush=True)
        results["real corpus"] = build(ROOT / "corpus", tmp_path / "idx-real")
        print(json.dumps(results["real corpus"]), flush=True)
        synthetic = tmp_path / "synthetic"
        write_synthetic_corpus(
            ROOT / "corpus",
            synthetic,
            args.synthetic_docs,
            sentences_per_doc=args.sentences_per_doc,
        )
        label = f"synthetic {args.synthetic_docs} documents (shuffled real sentences)"
        print(f"building {label} ...", flush=True)
        results[label] = build(synthetic, tmp_path / "idx-synthetic")
        print(json.dumps(results[label]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "index_build.json").write_text(json.dumps(results, indent=2))
    print("\n| corpus | documents | chunks | seconds | chunks/s | index MB | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(
            f"| {name} | {r['documents']} | {r['chunks']} | {r['seconds']} | "
            f"{r['chunks_per_second']} | {r['index_mb']} | {r['peak_rss_mb']} |"
        )


if __name__ == "__main__":
    main()
