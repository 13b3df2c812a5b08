"""Benchmark: how soon a published index is served, under concurrent clients.

Starts the real service on a copy of an index, runs ``--clients`` clients asking
questions without pause, and publishes ``--publishes`` new versions (copies of the live
one) one after another. For each publish it reports the time until ``/readyz`` names the
new version; at the end, how many requests were answered and how many failed (anything
but 200 or a 503 ``overloaded``).

    .venv/bin/python bench/swap.py [--clients 8] [--publishes 10] [--reader fused]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from rag.devserver import publish_copy, start_service
from rag.evaluation.dataset import load_eval_sets
from rag.metrics import percentile
from rag.store.layout import resolve_version

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--publishes", type=int, default=10)
    parser.add_argument("--reader", default="fused")
    parser.add_argument("--index", type=Path, default=ROOT / "index")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = parser.parse_args()
    qs = [i.question for i in load_eval_sets([ROOT / "eval" / "dev.jsonl"])]
    source = resolve_version(args.index)
    work = Path(tempfile.mkdtemp(prefix="rag-swap-"))
    index = work / "idx"
    publish_copy(index, source, keep=3)
    service = start_service(
        "swap", index, args.out / "services", RAG_READER=args.reader, RAG_RATE_LIMIT_PER_MINUTE="0"
    )
    outcomes: Counter[str] = Counter()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=service.base, timeout=60) as http:
            i = n
            while not stop.is_set():
                i += 1
                try:
                    r = http.post("/v1/ask", json={"question": qs[i % len(qs)]})
                    code = "" if r.status_code == 200 else r.json()["error"]["code"]
                    outcomes[f"{r.status_code} {code}".strip()] += 1
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__] += 1

    lags: list[float] = []
    try:
        service.wait_ready()
        threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
        for t in threads:
            t.start()
        try:
            for n in range(args.publishes):
                version = publish_copy(index, source, keep=3)
                published = time.perf_counter()
                while (
                    httpx.get(service.base + "/readyz", timeout=10).json().get("index_version")
                    != version
                ):
                    time.sleep(0.02)
                lags.append(time.perf_counter() - published)
                print(f"publish {n + 1}: served after {lags[-1]:.2f} s", flush=True)
        finally:
            stop.set()
            for t in threads:
                t.join()
    finally:
        service.stop()
    failed = sum(v for k, v in outcomes.items() if k not in ("200", "503 overloaded"))
    result = {
        "clients": args.clients,
        "publishes": args.publishes,
        "lag_s": {
            "p50": round(percentile(lags, 50), 2),
            "max": round(max(lags), 2),
        },
        "outcomes": dict(outcomes),
        "failed": failed,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "swap.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
