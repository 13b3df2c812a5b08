"""Benchmark: warm /v1/ask latency per stage, and throughput with 8 concurrent clients.

Starts the real service (uvicorn) on a free local port for each reader variant, asks
every question of eval/dev.jsonl and eval/test.jsonl once to warm up, then measures
each question sequentially (server-side stage timings from ``timings_ms`` and the
client-side round trip) and finally the requests per second with 8 concurrent clients.

    .venv/bin/python bench/ask_latency.py [--readers heuristic,fused/onnx,fused/int8]
        [--out reports/bench]

A variant is a reader kind with an optional QA-model runtime after a slash
(``RAG_READER_RUNTIME``); without one the service's default runtime is used.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from rag.devserver import ServiceStartError, start_service
from rag.evaluation.dataset import load_eval_sets
from rag.metrics import percentile

ROOT = Path(__file__).resolve().parent.parent


def questions() -> list[str]:
    return [
        i.question
        for i in load_eval_sets([ROOT / "eval" / "dev.jsonl", ROOT / "eval" / "test.jsonl"])
    ]


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
    logs = args.out / "services"
    for reader in args.readers.split(","):
        kind, _, runtime = reader.partition("/")
        # A queue deep enough for the 8 clients: this measures latency and throughput;
        # refusals under overload are bench/load.py's subject.
        env = {
            "RAG_READER": kind,
            "RAG_RATE_LIMIT_PER_MINUTE": "0",
            "RAG_ASK_QUEUE": "16",
            "RAG_ASK_QUEUE_TIMEOUT_SECONDS": "60",
        }
        if runtime:
            env["RAG_READER_RUNTIME"] = runtime
        service = start_service(reader.replace("/", "-"), args.index, logs, **env)
        try:
            base = service.wait_ready().base
            print(f"measuring reader {reader} over {len(qs)} questions ...", flush=True)
            results[reader] = measure(base, qs)
            print(json.dumps(results[reader]), flush=True)
        except ServiceStartError as exc:
            raise SystemExit(str(exc)) from None
        finally:
            service.stop()
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
