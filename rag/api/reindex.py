"""The incremental index build behind ``POST /v1/admin/reindex``, one at a time.

The build runs as ``rag index`` in a child process: it loads its own models (the
service's keep answering undisturbed, and the memory is given back when it ends), and a
crash or a kill of the child leaves the live index as it was, as for any build. The
child runs at a lower priority (``RAG_BUILD_NICE``) and, unless ``RAG_BUILD_THREADS``
says otherwise, on half the cores, so that questions keep flowing while it builds (why
both, and why a process of its own: rag/build_priority.py). When the child exits the
service looks at ``current`` at once, so a new version is served without waiting for the
next poll. A request made while a build runs is remembered and runs right after it:
every request is followed by a build that saw its files.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.build_priority import service_build_threads, thread_environment
from rag.config import Settings

log = logging.getLogger(__name__)

#: Lines of the build's output kept for the progress report.
_TAIL = 12


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ReindexJob:
    def __init__(self, settings: Settings, on_done: Callable[[], None]) -> None:
        self.settings = settings
        self.on_done = on_done
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.state = "idle"  # idle | running | succeeded | failed
        self.pending = False
        self.runs = 0
        self.reasons: list[str] = []
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self._started = 0.0
        self.seconds: float | None = None
        self.exit_code: int | None = None
        self.report: dict[str, Any] | None = None
        self.tail: deque[str] = deque(maxlen=_TAIL)

    def start(self, reason: str) -> dict[str, Any]:
        """Start a build, or queue one right after the running one."""
        with self._lock:
            if self.state == "running":
                self.pending = True
                self.reasons.append(reason)
            else:
                self.state = "running"
                self.reasons = [reason]
                self._thread = threading.Thread(target=self._loop, name="rag-reindex", daemon=True)
                self._thread.start()
        return self.status()

    def status(self) -> dict[str, Any]:
        running = self.state == "running"
        return {
            "state": self.state,
            "pending": self.pending,
            "runs": self.runs,
            "reasons": list(self.reasons),
            "started_at": self.started_at,
            "finished_at": None if running else self.finished_at,
            "seconds": round(time.monotonic() - self._started, 1) if running else self.seconds,
            "exit_code": None if running else self.exit_code,
            "progress": self.tail[-1] if self.tail else None,
            "output": list(self.tail),
            "report": None if running else self.report,
        }

    def stop(self) -> None:
        """End a running build (the service is shutting down); the live index is intact."""
        self._stopping = True
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    # -- the build ---------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            self._run_once()
            self.on_done()
            with self._lock:
                if not self.pending or self._stopping:
                    self.state = "succeeded" if self.exit_code == 0 else "failed"
                    return
                self.pending = False
                self.reasons = self.reasons[-1:]

    def _run_once(self) -> None:
        self.runs += 1
        self.started_at, self.finished_at = _now(), None
        self._started = time.monotonic()
        self.report, self.exit_code = None, None
        self.tail.clear()
        threads = service_build_threads(self.settings.build_threads)
        with tempfile.TemporaryDirectory(prefix="rag-reindex-") as tmp:
            report = Path(tmp) / "report.json"
            command = [
                sys.executable,
                "-m",
                "rag.cli",
                "index",
                "--corpus",
                str(Path(self.settings.corpus_dir).resolve()),
                "--out",
                str(Path(self.settings.index_dir).resolve()),
                "--report",
                str(report),
                "--nice",
                str(self.settings.build_nice),
                "--threads",
                str(threads),
            ]
            env = {**os.environ, **thread_environment(threads), "PYTHONUNBUFFERED": "1"}
            log.info("reindex started (%s)", "; ".join(self.reasons))
            try:
                self._process = subprocess.Popen(
                    command,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    text=True,
                    errors="replace",
                    env=env,
                )
            except OSError as exc:
                self.tail.append(f"cannot start the build: {exc}")
                self.exit_code = -1
            else:
                assert self._process.stdout is not None
                for line in self._process.stdout:  # universal newlines: tqdm's \r too
                    if line.strip():
                        self.tail.append(line.rstrip())
                self.exit_code = self._process.wait()
            if report.exists():
                try:
                    self.report = json.loads(report.read_text(encoding="utf-8"))
                except ValueError:
                    self.report = None
        self.seconds = round(time.monotonic() - self._started, 1)
        self.finished_at = _now()
        level = logging.INFO if self.exit_code == 0 else logging.ERROR
        log.log(level, "reindex ended with status %s in %.1f s", self.exit_code, self.seconds)
