"""Two `rag serve` replicas over one index folder, as behind a load balancer.

They share read-only FAISS files and the live swap: the same question gets the same
answer from either, and a published version reaches both by itself. The rate limiter is
the one piece of per-process state: each replica counts only what it saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.devserver import LocalService, publish_copy, start_service
from tests.engines import ready

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is the CTS reference of the Home Office letter?",
    "Who wrote to Lucy Allan?",
]

#: Requests a client may make per minute, per replica.
LIMIT = 6


def _ask(service: LocalService, question: str) -> dict[str, Any]:
    r = httpx.post(service.base + "/v1/ask", json={"question": question}, timeout=120)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _version(service: LocalService) -> str | None:
    r = httpx.get(service.base + "/readyz", timeout=10)
    return r.json().get("index_version") if r.status_code == 200 else None


def test_two_replicas_answer_alike_swap_alike_and_limit_apart(
    two_versions: tuple[Path, Path], tmp_path: Path
) -> None:
    import time

    index_dir = tmp_path / "idx"
    index_dir.mkdir()
    first = publish_copy(index_dir, two_versions[0])
    env = {
        "RAG_READER": "heuristic",
        "RAG_INDEX_POLL_SECONDS": "0.2",
        "RAG_RATE_LIMIT_PER_MINUTE": str(LIMIT),
    }
    replicas = [start_service(f"replica-{n}", index_dir, tmp_path / f"r{n}", **env) for n in (1, 2)]
    try:
        for replica in replicas:
            ready(replica)
            assert _version(replica) == first
        # The same answer, citation and passages from either replica.
        for question in QUESTIONS:
            a, b = (_ask(r, question) for r in replicas)
            assert a["answer"] == b["answer"] and a["abstained"] == b["abstained"]
            assert [p["id"] for p in a["passages"]] == [p["id"] for p in b["passages"]]

        # A published version reaches both (the second folder lacks one letter).
        second = publish_copy(index_dir, two_versions[1])
        deadline = time.monotonic() + 60
        while any(_version(r) != second for r in replicas) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [_version(r) for r in replicas] == [second, second]
        for replica in replicas:
            ids = {d["id"] for d in httpx.get(replica.base + "/v1/documents").json()}
            assert "rudd-2016-10-24" not in ids

        # Each replica limits what it saw: past one replica's limit, the other still answers.
        # (2 questions each went to both above, plus the /v1/documents call.)
        first_replica, other = replicas
        codes = [
            httpx.get(first_replica.base + "/v1/documents", timeout=10).status_code
            for _ in range(LIMIT)
        ]
        assert codes[-1] == 429
        assert httpx.get(other.base + "/v1/documents", timeout=10).status_code == 200
    finally:
        for replica in replicas:
            replica.stop()
