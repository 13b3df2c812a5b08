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
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.store.layout import resolve_index_dir  # noqa: E402
from rag.synthetic import write_synthetic_corpus  # noqa: E402


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def build(corpus: Path, out: Path, extra: Sequence[str] = ()) -> dict[str, float]:
    """One full build in a child process (``rag index`` with ``extra`` arguments); wall
    time, peak RSS, sizes and counts."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rag.cli",
                "index",
                "--corpus",
                str(corpus),
                "--out",
                str(out),
                *extra,
            ],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "TQDM_DISABLE": "1"},
        )
        # wait4 gives this child's own peak RSS (RUSAGE_CHILDREN would keep the largest
        # of all children so far).
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        out_text, err_text = stdout.read().decode(), stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(err_text[-2000:])
    manifest = json.loads((resolve_index_dir(out) / "manifest.json").read_text())
    chunks = manifest["counts"]["chunks"]
    return {
        "documents": manifest["counts"]["documents"],
        "chunks": chunks,
        "corpus_mb": round(folder_size(corpus) / 1e6, 3),
        "seconds": round(seconds, 2),
        "chunks_per_second": round(chunks / seconds, 1),
        "index_mb": round(folder_size(resolve_index_dir(out)) / 1e6, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # KiB on Linux
        "summary": out_text.strip().splitlines()[-1],
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
