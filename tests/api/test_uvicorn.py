"""The API once through a real uvicorn process on a free local port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_real_server_answers_with_a_citation(index_dir: Path) -> None:
    port = free_port()
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "server exited"
            time.sleep(0.5)
        else:
            pytest.fail("server never became ready")
        r = httpx.post(
            f"{base}/v1/ask",
            json={"question": "What is the CTS reference of the Home Office letter?"},
            timeout=30,
        )
        assert r.status_code == 200
        answer = r.json()["answer"]
        doc = httpx.get(f"{base}/v1/documents/{answer['document_id']}", timeout=10).json()
        assert doc["text"][answer["start"] : answer["end"]] == answer["text"]
        bad = httpx.post(f"{base}/v1/ask", json={"question": ""}, timeout=10)
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_question"
    finally:
        proc.terminate()
        proc.wait(10)
