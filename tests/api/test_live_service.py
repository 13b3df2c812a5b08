"""The real service (`rag serve` on loopback) under rebuilds and spoofed clients."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.devserver import LocalService, publish_copy, start_service
from rag.store.layout import VERSIONS
from tests import engines

pytestmark = pytest.mark.slow

CLIENTS = 8
PUBLISHES = 10
QUESTIONS = [
    "What is the CTS reference of the Home Office letter?",
    "Who wrote to Lucy Allan?",
    "What did Ofsted advise?",
]


def _ready_json(service: LocalService) -> tuple[int, dict[str, Any]]:
    r = httpx.get(service.base + "/readyz", timeout=10)
    return r.status_code, r.json()


def _wait_for_version(service: LocalService, version: str, timeout: float) -> dict[str, Any]:
    """Poll /readyz until it reports ``version`` (a deadline, not a speed requirement)."""
    deadline = time.monotonic() + timeout
    last: tuple[int, dict[str, Any]] = (0, {})
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise AssertionError(f"service exited:\n{service.log_tail()}")
        last = _ready_json(service)
        if last[0] == 200 and last[1].get("index_version") == version:
            return last[1]
        time.sleep(0.1)
    raise AssertionError(f"version {version} not served in {timeout:.0f} s: {last}")


def test_new_versions_are_served_without_a_restart_and_no_request_fails(
    two_versions: tuple[Path, Path], tmp_path: Path
) -> None:
    index_dir = tmp_path / "idx"
    index_dir.mkdir()
    service = start_service(
        "live",
        index_dir,
        tmp_path,
        RAG_READER="heuristic",
        RAG_INDEX_POLL_SECONDS="0.2",
        RAG_RATE_LIMIT_PER_MINUTE="0",
        RAG_ASK_QUEUE="64",
        RAG_ASK_QUEUE_TIMEOUT_SECONDS="120",
    )
    try:
        # Started before any index exists: 503 with the reason, and no server path in it.
        engines.ready(service, expect_status=503)
        status, body = _ready_json(service)
        assert status == 503 and body["error"]["code"] == "not_ready"
        assert "rag index" in body["error"]["message"]
        assert str(tmp_path) not in str(body) and "/tmp" not in str(body)

        # It becomes ready by itself once an index is published.
        first = publish_copy(index_dir, two_versions[0], keep=3)
        ready = _wait_for_version(service, first, timeout=240)
        assert ready["documents"] == 5

        # Publishes under concurrent clients: every request answers, each new version is
        # served, old folders are retired down to the newest three.
        stop = threading.Event()
        outcomes: list[str] = []

        def client(n: int) -> None:
            with httpx.Client(base_url=service.base, timeout=120) as http:
                i = n
                while not stop.is_set():
                    i += 1
                    try:
                        if i % 3:
                            r = http.post("/v1/ask", json={"question": QUESTIONS[i % 3]})
                        else:
                            r = http.get("/v1/documents")
                        ok = r.status_code == 200
                        outcomes.append("ok" if ok else f"{r.status_code} {r.text[:200]}")
                    except httpx.HTTPError as exc:
                        outcomes.append(repr(exc))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        try:
            served = [first]
            for n in range(PUBLISHES):
                version = publish_copy(index_dir, two_versions[(n + 1) % 2], keep=3)
                ready = _wait_for_version(service, version, timeout=60)
                assert ready["documents"] == (4 if n % 2 == 0 else 5)
                served.append(version)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=180)
        failures = [o for o in outcomes if o != "ok"]
        assert outcomes and not failures, f"{len(failures)} of {len(outcomes)}: {failures[:5]}"
        assert ready["index_swaps"] == PUBLISHES
        left = sorted(p.name for p in (index_dir / VERSIONS).iterdir())
        assert left == served[-3:]
        ids = {d["id"] for d in httpx.get(service.base + "/v1/documents", timeout=10).json()}
        assert ("rudd-2016-10-24" in ids) == (PUBLISHES % 2 == 0)

        # The log: JSON lines, each question's line with its request id, no question text.
        text = service.log.read_text()
        lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        asks = [line for line in lines if line["logger"] == "rag.ask"]
        assert asks and all(line["request_id"] and "question" not in line for line in asks)
        assert not [q for q in QUESTIONS if q in text]
        swaps = [line for line in lines if "serving index version" in line["message"]]
        assert len(swaps) == PUBLISHES + 1
    finally:
        service.stop()


def test_rate_limit_keys_on_the_socket_peer_and_covers_every_route(tmp_path: Path) -> None:
    empty = tmp_path / "no-index"
    empty.mkdir()
    service = start_service("spoof", empty, tmp_path, RAG_RATE_LIMIT_PER_MINUTE="3")
    try:
        engines.ready(service, expect_status=503)  # probes are never limited
        statuses = [
            httpx.get(
                service.base + "/widget.js", headers={"X-Forwarded-For": f"203.0.113.{n}"}
            ).status_code
            for n in range(10)
        ]
        assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) == {429}, statuses
        refused = httpx.get(service.base + "/docs")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limited"
        assert httpx.get(service.base + "/healthz").status_code == 200
    finally:
        service.stop()


def test_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    empty = tmp_path / "no-index"
    empty.mkdir()
    service = start_service(
        "proxy",
        empty,
        tmp_path,
        RAG_RATE_LIMIT_PER_MINUTE="2",
        RAG_TRUSTED_PROXIES="127.0.0.1",
        RAG_MAX_BODY_BYTES="1000",
    )
    try:
        engines.ready(service, expect_status=503)
        for n in range(5):  # five clients behind the proxy: each has its own budget
            forwarded = {"X-Forwarded-For": f"198.51.100.{n}"}
            r = httpx.get(service.base + "/widget.js", headers=forwarded)
            assert r.status_code == 200
        same = [
            httpx.get(
                service.base + "/widget.js", headers={"X-Forwarded-For": "198.51.100.99"}
            ).status_code
            for _ in range(3)
        ]
        assert same == [200, 200, 429]
        big = httpx.post(
            service.base + "/v1/ask",
            content=b"x" * 300_000,
            headers={"Content-Type": "application/json", "X-Forwarded-For": "198.51.100.50"},
        )
        assert big.status_code == 413 and big.json()["error"]["code"] == "body_too_large"
    finally:
        service.stop()


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(c) for c in text]
    return found


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_several_worker_processes_serve_the_same_index(index_dir: Path, tmp_path: Path) -> None:
    service = start_service(
        "workers",
        index_dir,
        tmp_path,
        args=("--workers", "2"),
        RAG_READER="heuristic",
        RAG_RATE_LIMIT_PER_MINUTE="0",
        RAG_ASK_QUEUE="64",  # four clients at once: none refused,
        RAG_ASK_QUEUE_TIMEOUT_SECONDS="120",  # however slow a shared CI machine is
    )
    try:
        engines.ready(service, all_workers=True)  # both workers load on their own
        workers = [c for c in _children(service.process.pid) if _rss_mb(c) > 200]
        assert len(workers) == 2, workers  # each with its own models and index
        outcomes: list[int] = []

        def client() -> None:
            with httpx.Client(base_url=service.base, timeout=120) as http:
                for q in QUESTIONS:
                    outcomes.append(http.post("/v1/ask", json={"question": q}).status_code)

        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        assert outcomes == [200] * 12
        lines = [line for line in service.log.read_text().splitlines() if line.startswith("{")]
        assert any(json.loads(line)["logger"] == "rag.ask" for line in lines)  # workers log JSON
    finally:
        service.stop()
