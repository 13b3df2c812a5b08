"""Admin routes: token, upload, background reindex, the new version served (real server)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from rag.api import create_app
from rag.config import Settings
from rag.devserver import LocalService
from tests.engines import ready

TOKEN = "s3cret-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MINUTES = (
    "Minutes of the scrutiny committee, 3 March 2016.\n\n"
    "The committee approved the budget of 4.2 million pounds for the new children's "
    "services hub. The chair thanked the officers for their report.\n"
) * 8


def make_settings(**overrides: object) -> Settings:
    return Settings(_env_file=None).model_copy(update=overrides)  # type: ignore[call-arg]


def _paths(settings: Settings) -> set[str]:
    return set(create_app(settings).openapi()["paths"])


def test_admin_routes_exist_only_with_a_token() -> None:
    assert "/v1/admin/reindex" not in _paths(make_settings())
    assert "/v1/admin/reindex" not in _paths(make_settings(admin_token=SecretStr("")))
    assert "/v1/admin/reindex" in _paths(make_settings(admin_token=SecretStr(TOKEN)))


def _poll(get: Any, done: Any, timeout: float, what: str) -> Any:
    """Poll with a deadline (not a speed requirement)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = get()
        if done(last):
            return last
        time.sleep(0.25)
    raise AssertionError(f"{what} not reached in {timeout:.0f} s: {last}")


@pytest.mark.slow
def test_upload_reindexes_in_the_background_and_the_document_is_served(
    admin_service: Callable[..., LocalService], corpus_copy: Path
) -> None:
    service = admin_service(
        "admin",
        TOKEN,
        RAG_MAX_BODY_BYTES="1000",  # uploads have their own limit, RAG_MAX_FILE_BYTES
    )
    try:
        base = ready(service).base
        with httpx.Client(base_url=base, timeout=30) as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
                r = http.post("/v1/admin/reindex", headers=headers)
                assert r.status_code == 401, r.text
                assert r.json()["error"]["code"] == "unauthorized"
                assert r.headers["www-authenticate"] == "Bearer"

            bad = http.put("/v1/admin/documents/../escape", content=b"text", headers=AUTH)
            assert bad.status_code in (404, 422)  # normalised away by the client, or refused
            bad = http.put("/v1/admin/documents/.hidden", content=b"some text", headers=AUTH)
            assert bad.json()["error"]["code"] == "invalid_document_id"
            binary = http.put("/v1/admin/documents/blob", content=bytes(range(256)), headers=AUTH)
            assert binary.status_code == 422
            assert binary.json()["error"]["code"] == "document_unreadable"

            assert len(MINUTES) > 1000
            r = http.put(
                "/v1/admin/documents/uploads/minutes-2016",
                content=MINUTES.encode(),
                headers={**AUTH, "Content-Type": "text/plain"},
            )
            assert r.status_code == 202, r.text
            body = r.json()
            assert body["path"] == "uploads/minutes-2016.txt"
            assert body["reindex"]["state"] == "running"
            assert (corpus_copy / "uploads" / "minutes-2016.txt").read_text() == MINUTES

            status = _poll(
                lambda: http.get("/v1/admin/reindex", headers=AUTH).json(),
                lambda s: s["state"] != "running",
                timeout=300,
                what="end of the reindex",
            )
            assert status["state"] == "succeeded", status
            assert status["report"]["new"] == ["uploads/minutes-2016"]
            assert status["report"]["embedded"] > 0

            _poll(
                lambda: http.get("/readyz").json(),
                lambda r: r.get("documents") == 6,
                timeout=60,
                what="the new version served",
            )
            doc = http.get("/v1/documents/uploads/minutes-2016").json()
            assert "approved the budget" in doc["text"]
    finally:
        service.stop()
