"""Benchmark: warm /v1/ask latency per stage, and throughput with 8 concurrent clients.

Starts the real service (uvicorn) on a free local port for each reader variant, asks
every question of eval/dev.jsonl and eval/test.jsonl once to warm up, then measures
each question sequentially (server-side stage timings from ``timings_ms`` and the
client-side round trip) and finally the requests per second with 8 concurrent clients.

    .venv/bin/python bench/ask_latency.py [--readers heuristic,fused] [--out reports/bench]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def questions() -> list[str]:
    out = []
    for name in ("dev.jsonl", "test.jsonl"):
        for line in (ROOT / "eval" / name).read_text(encoding="utf-8").splitlines():
            out.append(json.loads(line)["question"])
    return out


def serve(reader: str, index_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "RAG_READER": reader,
        "RAG_INDEX_DIR": str(index_dir),
        "RAG_RATE_LIMIT_PER_MINUTE": "0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server for reader {reader} exited")
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("server never became ready")


def measure(base: str, qs: list[str]) -> dict[str, object]:
    with httpx.Client(base_url=base, timeout=60) as client:
        for q in qs:  # warm-up pass
            client.post("/v1/ask", json={"question": q})
        stages: dict[str, list[float]] = {}
        round_trips = []
        for q in qs:
            started = time.perf_counter()
            body = client.post("/v1/ask", json={"question": q}).json()
            round_trips.append((time.perf_counter() - started) * 1000)
            for stage, ms in body["timings_ms"].items():
                stages.setdefault(stage, []).append(ms)
    result: dict[str, object] = {
        stage: {"p50": round(percentile(v, 50), 1), "p95": round(percentile(v, 95), 1)}
        for stage, v in stages.items()
    }
    result["http_round_trip"] = {
        "p50": round(percentile(round_trips, 50), 1),
        "p95": round(percentile(round_trips, 95), 1),
    }

    def one(q: str) -> float:
        with httpx.Client(base_url=base, timeout=60) as c:
            started = time.perf_counter()
            c.post("/v1/ask", json={"question": q}).raise_for_status()
            return time.perf_counter() - started

    work = qs * 2
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        latencies = list(pool.map(one, work))
    elapsed = time.perf_counter() - started
    result["concurrent_8"] = {
        "requests": len(work),
        "requests_per_second": round(len(work) / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
    }
    result["questions"] = len(qs)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", default="heuristic,transformers,fused")
    parser.add_argument("--index", type=Path, default=ROOT / "index")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    qs = questions()
    results = {}
    for reader in args.readers.split(","):
        proc, base = serve(reader, args.index)
        try:
            print(f"measuring reader {reader} over {len(qs)} questions ...", flush=True)
            results[reader] = measure(base, qs)
            print(json.dumps(results[reader]), flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ask_latency.json").write_text(json.dumps(results, indent=2))
    print("\n| reader | retrieve p50/p95 | read p50/p95 | total p50/p95 | HTTP p50/p95 | rps (8) |")
    print("|---|---|---|---|---|---|")
    for reader, r in results.items():
        cells = [_cell(r, s) for s in ("retrieve", "read", "total", "http_round_trip")]
        rps = r["concurrent_8"]["requests_per_second"]  # type: ignore[index]
        print(f"| {reader} | " + " | ".join(cells) + f" | {rps} |")


def _cell(result: dict[str, object], stage: str) -> str:
    value = result.get(stage)
    if not isinstance(value, dict):
        return "–"
    return f"{value.get('p50')} / {value.get('p95')}"


if __name__ == "__main__":
    main()
