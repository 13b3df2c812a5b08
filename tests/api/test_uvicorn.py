"""The API once through a real uvicorn process (`rag serve`) on a free local port."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from rag.devserver import start_service
from tests.engines import ready

pytestmark = pytest.mark.slow


def test_real_server_answers_with_a_citation(index_dir: Path, tmp_path: Path) -> None:
    service = start_service("api", index_dir, tmp_path)
    try:
        base = ready(service).base
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
        service.stop()
