"""The service state's watcher: first load, swaps, failures (fake pipelines, real folders)."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rag.api.state import ServiceState
from rag.errors import IndexCorruptError, IndexNotFoundError, NotReadyError
from rag.store.layout import MANIFEST, current_target, new_version_dir, publish


def _publish(index_dir: Path, name: str) -> Path:
    tmp = new_version_dir(index_dir, name)
    (tmp / MANIFEST).write_text("{}")
    return publish(index_dir, tmp)


def _fake(path: Path) -> Any:
    index = SimpleNamespace(path=path.resolve(), version=path.name, documents={})
    return SimpleNamespace(index=index)


class Loader:
    """Loads whatever ``current`` points at, or fails like the real loader would."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self.broken: set[str] = set()
        self.calls = 0

    def _load(self) -> Any:
        self.calls += 1
        if current_target(self.index_dir) is None:
            raise IndexNotFoundError(f"no index at {self.index_dir}")
        folder = (self.index_dir / "current").resolve()
        if folder.name in self.broken:
            raise IndexCorruptError(f"index file {folder}/vectors.npy does not match")
        return _fake(folder)

    def load(self) -> Any:
        return self._load()

    def swap(self, pipeline: Any) -> Any:
        return self._load()


def _until(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached before the deadline"
        time.sleep(0.01)


@pytest.fixture()
def state() -> Any:
    service = ServiceState()
    yield service
    service.stop()


def test_a_service_started_without_an_index_becomes_ready_when_one_is_published(
    tmp_path: Path, state: ServiceState
) -> None:
    loader = Loader(tmp_path)
    state.start_loading(loader.load, index_dir=tmp_path, poll_seconds=0.01, swap=loader.swap)
    assert state.wait(10)
    with pytest.raises(NotReadyError) as not_ready:
        state.require()
    assert str(tmp_path) not in str(not_ready.value)  # no server path in what clients see
    assert "rag index" in str(not_ready.value)
    _publish(tmp_path, "20260101T000000Z")
    _until(lambda: state.pipeline is not None)
    assert state.require().index.version == "20260101T000000Z"


def test_each_publish_is_swapped_in_and_a_broken_one_keeps_the_previous(
    tmp_path: Path, state: ServiceState
) -> None:
    loader = Loader(tmp_path)
    _publish(tmp_path, "20260101T000000Z")
    state.start_loading(loader.load, index_dir=tmp_path, poll_seconds=0.01, swap=loader.swap)
    _until(lambda: state.pipeline is not None)
    held = state.require()  # an in-flight request keeps its version
    _publish(tmp_path, "20260102T000000Z")
    _until(lambda: state.require().index.version == "20260102T000000Z")
    assert held.index.version == "20260101T000000Z"
    assert state.swaps == 1

    loader.broken.add("20260103T000000Z")
    _publish(tmp_path, "20260103T000000Z")
    _until(lambda: state.reload_error is not None)
    assert state.require().index.version == "20260102T000000Z"
    calls = loader.calls
    time.sleep(0.1)  # the broken version is not retried at every poll
    assert loader.calls == calls

    _publish(tmp_path, "20260104T000000Z")
    _until(lambda: state.require().index.version == "20260104T000000Z")
    assert state.reload_error is None and state.swaps == 2


def test_a_failed_first_load_is_reported_without_paths(tmp_path: Path, state: ServiceState) -> None:
    loader = Loader(tmp_path)
    loader.broken.add("20260101T000000Z")
    _publish(tmp_path, "20260101T000000Z")
    state.start_loading(loader.load, index_dir=tmp_path, poll_seconds=0.01, swap=loader.swap)
    assert state.wait(10)
    with pytest.raises(NotReadyError, match="index_corrupt") as not_ready:
        state.require()
    assert str(tmp_path) not in str(not_ready.value)
