"""Real engines the tests start (`rag serve` in uvicorn, nginx, Ray, Chromium): how long
to wait for them, and one retry.

A machine busy with another job makes an engine slow to start, not wrong. So every start
here waits against a generous, explicit deadline (minutes where an idle start takes
seconds: a deadline, never a speed requirement); a start that fails anyway is tried once
more from scratch (a new process, a new port, a new Ray session), and a second failure
fails the test with the engine's own log in the message.

``RAG_TEST_START_TIMEOUT`` (seconds) overrides the deadline of a `rag serve` start.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from rag.devserver import LocalService

T = TypeVar("T")

#: Longest wait for a `rag serve` to load its models and index and answer /readyz
#: (idle: 10-40 s, several services starting together included).
SERVICE_START_TIMEOUT = float(os.environ.get("RAG_TEST_START_TIMEOUT", "300"))
#: Longest wait for nginx to proxy a request (idle: well under a second).
NGINX_START_TIMEOUT = 60.0
#: Longest wait for Chromium to launch, in milliseconds as Playwright takes it (its
#: default is 30 s; idle: about a second).
CHROMIUM_LAUNCH_TIMEOUT_MS = 180_000
#: Ray's wait for its GCS server to publish its port (Ray's default is 30 s; under load
#: the head did not come up in time), and for a worker process to register (default 60).
RAY_GCS_PORT_WAIT_SECONDS = 180
RAY_WORKER_REGISTER_TIMEOUT_SECONDS = 180

#: How much of an engine's log goes into a failure message, per file.
LOG_TAIL_CHARS = 4000


class EngineRetryWarning(UserWarning):
    """An engine failed to start once and was started again (the run goes on)."""


def retry_once(
    what: str,
    attempt: Callable[[], T],
    *,
    log: Callable[[], str],
    reset: Callable[[], object] = lambda: None,
) -> T:
    """``attempt()``; if it raises, ``reset()`` (clean up, start again) and ``attempt()``
    once more. A second failure fails the test with both errors and ``log()``, the
    engine's own log, read after each failure."""
    try:
        return attempt()
    except Exception as exc:
        first, first_log = exc, log()
    warnings.warn(
        f"{what} failed to start; trying once more: {first}", EngineRetryWarning, stacklevel=2
    )
    try:
        reset()
        return attempt()
    except Exception as second:
        pytest.fail(
            f"{what} failed to start twice.\n"
            f"first attempt: {first}\n--- its log ---\n{first_log}\n"
            f"second attempt: {second}\n--- its log ---\n{log()}",
            pytrace=False,
        )


# ---- rag serve -------------------------------------------------------------------------


def ready(
    service: LocalService,
    *,
    expect_status: int = 200,
    timeout: float = SERVICE_START_TIMEOUT,
    all_workers: bool = False,
) -> LocalService:
    """``service`` once /readyz answers ``expect_status`` (with ``all_workers``: every
    worker 200), restarted once if it exits or misses the deadline."""

    def attempt() -> LocalService:
        if all_workers:
            return service.wait_all_ready(timeout=timeout)
        return service.wait_ready(expect_status=expect_status, timeout=timeout)

    return retry_once(
        f"rag serve ({service.name})", attempt, log=service.log_tail, reset=service.restart
    )


# ---- Chromium --------------------------------------------------------------------------


def launch_chromium(playwright: Any, executable: Path, args: list[str]) -> Any:
    """Debian's Chromium through Playwright (whose launch error carries the browser's
    own output), launched again once if the first launch fails."""

    def attempt() -> Any:
        return playwright.chromium.launch(
            executable_path=str(executable), args=args, timeout=CHROMIUM_LAUNCH_TIMEOUT_MS
        )

    return retry_once(
        "Chromium", attempt, log=lambda: "(Chromium's output is in Playwright's error above)"
    )


# ---- Ray -------------------------------------------------------------------------------


def ray_logs(temp_dir: Path) -> str:
    """The tails of the log files of a local Ray session under ``temp_dir``, the head's
    GCS server and raylet first."""
    logs = temp_dir / "session_latest" / "logs"
    if not logs.is_dir():
        found = sorted(temp_dir.glob("session_*/logs"))
        if not found:
            return f"(no Ray session logs under {temp_dir})"
        logs = found[-1]

    def rank(path: Path) -> tuple[int, str]:
        order = ("gcs_server", "raylet", "monitor", "python-core-driver")
        return next((i for i, p in enumerate(order) if path.name.startswith(p)), 9), path.name

    files = sorted((p for p in logs.iterdir() if p.is_file()), key=rank)
    parts = []
    for path in files[:8]:
        try:
            text = path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError as exc:
            text = f"(unreadable: {exc})"
        if text.strip():
            parts.append(f"== {path} ==\n{text}")
    names = ", ".join(p.name for p in files) or "none"
    return "\n".join(parts) or f"(the Ray logs in {logs} are empty; files: {names})"


class LocalRay:
    """A local Ray head started by a test, with its logs in a folder of its own."""

    def __init__(self, num_cpus: int) -> None:
        self.num_cpus = num_cpus
        self.temp_dirs: list[Path] = []

    @property
    def temp_dir(self) -> Path:
        return self.temp_dirs[-1]

    def start(self) -> LocalRay:
        """``ray.init`` with generous start timeouts; started again once if it fails."""
        import ray

        # An environment variable, read when the head starts (ray/_private/node.py).
        os.environ.setdefault("RAY_gcs_server_port_wait_time_s", str(RAY_GCS_PORT_WAIT_SECONDS))
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # CI has no internet to report to

        def attempt() -> LocalRay:
            # Short: Ray's socket paths live under it and must stay under 108 bytes.
            self.temp_dirs.append(Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp")))
            ray.init(
                num_cpus=self.num_cpus,
                include_dashboard=False,
                _temp_dir=str(self.temp_dir),
                _system_config={
                    "worker_register_timeout_seconds": RAY_WORKER_REGISTER_TIMEOUT_SECONDS
                },
            )
            return self

        return retry_once("Ray", attempt, log=lambda: ray_logs(self.temp_dir), reset=self._shutdown)

    def _shutdown(self) -> None:
        import ray

        try:
            ray.shutdown()
        except Exception as exc:  # a half-started head: whatever is left is reported
            print(f"ray.shutdown after a failed start: {exc}", file=sys.stderr)
        if self.temp_dirs:
            self._end_leftovers(self.temp_dir)

    @staticmethod
    def _end_leftovers(temp_dir: Path) -> None:
        """End the processes a failed ``ray.init`` left behind: this process's children
        that run in the failed session's folder (``ray.shutdown`` knows only a node that
        started whole)."""
        import psutil  # a dependency of Ray

        mine = [
            child
            for child in psutil.Process().children(recursive=True)
            if any(str(temp_dir) in part for part in _cmdline(child))
        ]
        for child in mine:
            child.terminate()
        _, alive = psutil.wait_procs(mine, timeout=10)
        for child in alive:
            child.kill()

    def stop(self) -> None:
        self._shutdown()
        for path in self.temp_dirs:
            shutil.rmtree(path, ignore_errors=True)


def _cmdline(process: Any) -> list[str]:
    try:
        return list(process.cmdline())
    except Exception:  # gone meanwhile, or not ours to read
        return []


# ---- waiting for a port ----------------------------------------------------------------


def wait_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    exited: Callable[[], int | None] = lambda: None,
) -> None:
    """Poll ``ready()`` (exceptions count as not yet) until it is true; raise if the
    process ``exited()`` with a code, or at the deadline."""
    deadline = time.monotonic() + timeout
    last = "not tried"
    while True:
        code = exited()
        if code is not None:
            raise RuntimeError(f"{what}: the process exited ({code})")
        try:
            if ready():
                return
            last = "not ready"
        except Exception as exc:
            last = repr(exc)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready in {timeout:.0f} s ({last})")
        time.sleep(0.1)
