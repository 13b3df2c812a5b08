"""Benchmark: /v1/ask under 1, 8 and 32 concurrent clients, as served (`rag serve`).

Starts the real service on a free local port with the default limits (a bounded number
of questions in flight and a short bounded queue), warms it up, then for each client
count runs that many clients for ``--seconds``, each asking the dev and test questions
in turn as fast as it gets answers; a client told 503 waits its ``Retry-After``, as a
well-behaved client does (``--no-backoff``: it retries at once). Reports per client
count: answered requests per second, p50/p95/p99 latency of the admitted (200)
requests, how many were refused with 503 ``overloaded`` and how fast those refusals
came (p95), and anything else (which should be nothing).

    .venv/bin/python bench/load.py [--clients 1,8,32] [--seconds 30] [--reader fused]
        [--workers 1] [--env RAG_ASK_QUEUE=4 ...]
        [--config one:RAG_ASK_CONCURRENCY=1 --config four:RAG_ASK_CONCURRENCY=4 ...]

With several ``--config`` the setups are measured one after another in the same run,
for a side-by-side table (for example concurrency with and without cross-request
batching, or two workers).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
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


@dataclass
class LoadRun:
    clients: int
    seconds: float
    answered: int
    answered_per_second: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    refused_503: int
    refused_share: float
    refused_p95_ms: float | None
    other: dict[str, int]


def run(base: str, clients: int, seconds: float, qs: list[str], *, backoff: bool) -> LoadRun:
    admitted: list[float] = []
    refused: list[float] = []
    other: Counter[str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        i = n * 7
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.monotonic() < stop:
                q = qs[i % len(qs)]
                i += 1
                started = time.perf_counter()
                try:
                    r = http.post("/v1/ask", json={"question": q})
                    status = str(r.status_code)
                    code = r.json().get("error", {}).get("code") if r.status_code != 200 else ""
                    wait = float(r.headers.get("retry-after", 0)) if status == "503" else 0.0
                except httpx.HTTPError as exc:
                    status, code, wait = type(exc).__name__, "", 0.0
                ms = (time.perf_counter() - started) * 1000
                with lock:
                    if status == "200":
                        admitted.append(ms)
                    elif status == "503" and code == "overloaded":
                        refused.append(ms)
                    else:
                        other[f"{status} {code}".strip()] += 1
                if backoff and wait:  # as a well-behaved client does
                    time.sleep(min(wait, max(stop - time.monotonic(), 0)))

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started

    def pct(values: list[float], p: float) -> float | None:
        return round(percentile(values, p), 1) if values else None

    return LoadRun(
        clients=clients,
        seconds=round(elapsed, 1),
        answered=len(admitted),
        answered_per_second=round(len(admitted) / elapsed, 1),
        p50_ms=pct(admitted, 50),
        p95_ms=pct(admitted, 95),
        p99_ms=pct(admitted, 99),
        refused_503=len(refused),
        refused_share=round(len(refused) / max(len(admitted) + len(refused), 1), 3),
        refused_p95_ms=pct(refused, 95),
        other=dict(other),
    )


@dataclass(frozen=True)
class ServiceConfig:
    """One way of running the service: a name, its workers and its RAG_* settings."""

    name: str
    workers: int
    env: dict[str, str]

    @classmethod
    def parse(cls, text: str, *, workers: int, env: dict[str, str]) -> ServiceConfig:
        """``name:RAG_X=1,RAG_Y=2,workers=2`` (on top of the common --env and --workers)."""
        name, _, rest = text.partition(":")
        own = dict(env)
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            if key == "workers":
                workers = int(value)
            else:
                own[key] = value
        return cls(name, workers, own)


def measure(config: ServiceConfig, args: argparse.Namespace, qs: list[str]) -> list[LoadRun]:
    """Start the service as ``config`` says, warm it up, run every client count, stop it."""
    service = start_service(
        f"load-{config.name}",
        args.index,
        args.out / "services",
        args=("--workers", str(config.workers)),
        RAG_READER=args.reader,
        RAG_RATE_LIMIT_PER_MINUTE="0",
        **config.env,
    )
    results = []
    try:
        base = service.wait_all_ready().base
        with httpx.Client(base_url=base, timeout=60) as http:
            for q in qs[:20]:  # warm-up
                http.post("/v1/ask", json={"question": q})
        for clients in (int(c) for c in args.clients.split(",")):
            print(f"[{config.name}] {clients} clients for {args.seconds:g} s ...", flush=True)
            results.append(run(base, clients, args.seconds, qs, backoff=not args.no_backoff))
            print(json.dumps(asdict(results[-1])), flush=True)
    except ServiceStartError as exc:
        raise SystemExit(str(exc)) from None
    finally:
        service.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--reader", default="fused")
    parser.add_argument("--index", type=Path, default=ROOT / "index")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    parser.add_argument("--workers", type=int, default=1, help="rag serve --workers")
    parser.add_argument(
        "--no-backoff",
        action="store_true",
        help="clients retry a 503 at once instead of waiting its Retry-After",
    )
    parser.add_argument(
        "--env", action="append", default=[], help="RAG_X=value for the service; repeatable"
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        help="name:RAG_X=1,workers=2 -- one service setup to compare; repeatable (the "
        "setups run one after another in this run, on the same questions)",
    )
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    configs = [
        ServiceConfig.parse(c, workers=args.workers, env=env) for c in args.config or ["default:"]
    ]
    qs = questions()
    table = [(c, measure(c, args, qs)) for c in configs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "load.json").write_text(
        json.dumps(
            {
                "reader": args.reader,
                "configs": [{**asdict(c), "runs": [asdict(r) for r in runs]} for c, runs in table],
            }
        )
    )
    print(
        "\n| setup | clients | answered/s | p50 ms | p95 ms | p99 ms | refused 503 "
        "| refused p95 ms | other |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for c, runs in table:
        for r in runs:
            print(
                f"| {c.name} | {r.clients} | {r.answered_per_second} | {r.p50_ms} | {r.p95_ms} "
                f"| {r.p99_ms} | {r.refused_503} ({r.refused_share:.0%}) | {r.refused_p95_ms} "
                f"| {sum(r.other.values())} |"
            )


if __name__ == "__main__":
    main()
