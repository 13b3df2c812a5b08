"""Fixtures of the API tests that start the real service (`rag serve`, rag.devserver)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rag.devserver import LocalService, publish_copy, start_service


@pytest.fixture()
def admin_service(
    index_dir: Path, corpus_copy: Path, tmp_path: Path
) -> Iterator[Callable[..., LocalService]]:
    """``admin_service(name, token, **env)``: `rag serve` with the admin routes on (bearer
    ``token``) over a copy of the session's index (``tmp_path/idx``) and ``corpus_copy``,
    the heuristic reader and no rate limit; ``env`` adds or overrides RAG_ settings.
    Returned as soon as started: the test waits for it, and may stop it; whatever is still
    running is stopped after the test."""
    from rag.store.layout import resolve_version

    started: list[LocalService] = []

    def start(name: str, token: str, **env: str) -> LocalService:
        index = tmp_path / "idx"
        publish_copy(index, resolve_version(index_dir))
        settings: dict[str, Any] = {
            "RAG_ADMIN_TOKEN": token,
            "RAG_CORPUS_DIR": str(corpus_copy),
            "RAG_READER": "heuristic",
            "RAG_RATE_LIMIT_PER_MINUTE": "0",
            "RAG_INDEX_POLL_SECONDS": "600",  # the end of the build itself triggers the swap
            **env,
        }
        service = start_service(name, index, tmp_path, **settings)
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()
