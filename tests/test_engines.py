"""The shared engine-start policy (tests/engines.py): a failed start is tried once more,
and a second failure fails with the engine's own log."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.devserver import start_service
from tests.engines import EngineRetryWarning, ready, retry_once


def test_a_failed_start_is_tried_once_more() -> None:
    calls: list[str] = []

    def attempt() -> str:
        calls.append("attempt")
        if len(calls) == 1:
            raise RuntimeError("port in use")
        return "up"

    with pytest.warns(EngineRetryWarning, match="port in use"):
        got = retry_once("engine", attempt, log=lambda: "", reset=lambda: calls.append("reset"))
    assert got == "up" and calls == ["attempt", "reset", "attempt"]


def test_a_second_failure_fails_with_the_engines_log() -> None:
    logs = iter(["first log: bind failed", "second log: still failing"])

    def attempt() -> None:
        raise RuntimeError("timed out waiting for the port file")

    with pytest.warns(EngineRetryWarning), pytest.raises(pytest.fail.Exception) as failed:
        retry_once("engine", attempt, log=lambda: next(logs))
    message = str(failed.value)
    assert "engine failed to start twice" in message
    assert "timed out waiting for the port file" in message
    assert "first log: bind failed" in message and "second log: still failing" in message


@pytest.mark.slow
def test_a_service_that_dies_while_starting_is_started_again(tmp_path: Path) -> None:
    """A real `rag serve` killed before it is ready: started again (a new process and
    log), then ready."""
    empty = tmp_path / "no-index"
    service = start_service("dies", empty, tmp_path)
    try:
        first = service.process
        service.process.kill()
        with pytest.warns(EngineRetryWarning, match="exited"):
            ready(service, expect_status=503)
        assert service.process is not first and service.process.poll() is None
        assert service.log.name == "dies.2.log" and (tmp_path / "dies.log").exists()
    finally:
        service.stop()
