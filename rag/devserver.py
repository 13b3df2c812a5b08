"""The real service in a child process on a free local port, for tests and benchmarks.

`rag serve` runs in its own process (as a user runs it), with its output kept in a log
file so that a service that fails to start says why. Only the ``RAG_`` variables given
here reach it (a developer's own settings would change what is measured), except a
pinned ``RAG_READER``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx


class ServiceStartError(RuntimeError):
    """The service exited or never reached the expected readiness."""


def publish_copy(index_dir: Path, source: Path, keep: int | None = None) -> str:
    """Publish a copy of a built version folder as a new version, as `rag index` does;
    with ``keep``, retire old versions as it does. Returns the new version's name."""
    from rag.store.layout import new_version_dir, publish, remove_stale

    tmp = new_version_dir(index_dir, datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ"))
    shutil.copytree(source, tmp, dirs_exist_ok=True)
    final = publish(index_dir, tmp)
    if keep is not None:
        remove_stale(index_dir, keep)
    return final.name


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """TERM, then KILL after ``grace`` seconds: a server gets to shut down cleanly, but a
    hung one never outlives its test or benchmark."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalService:
    name: str
    base: str
    process: subprocess.Popen[bytes]
    log: Path
    ready: bool = False
    #: What started it (``start_service``'s arguments), so that ``restart`` can again.
    started_with: dict[str, Any] = field(default_factory=dict, repr=False)

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def wait_ready(self, expect_status: int = 200, timeout: float = 180.0) -> LocalService:
        """Wait until /readyz answers ``expect_status`` (200, or 503 for a broken service)."""
        if self.ready:
            return self
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceStartError(f"service {self.name} exited:\n{self.log_tail()}")
            try:
                r = httpx.get(self.base + "/readyz", timeout=2)
                last = f"{r.status_code} {r.text[:300]}"
                if r.status_code == expect_status:
                    self.ready = True
                    return self
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.25)
        raise ServiceStartError(
            f"service {self.name} not ready in {timeout:.0f} s ({last}):\n{self.log_tail()}"
        )

    def wait_all_ready(self, streak: int = 20, timeout: float = 240.0) -> LocalService:
        """With several workers, each loads on its own: wait for ``streak`` 200s in a row."""
        self.wait_ready(timeout=timeout)
        deadline = time.monotonic() + timeout
        seen = 0
        while seen < streak:
            if time.monotonic() > deadline:
                raise ServiceStartError(f"service {self.name}: not every worker became ready")
            try:
                ok = httpx.get(self.base + "/readyz", timeout=5).status_code == 200
            except httpx.HTTPError:
                ok = False
            seen = seen + 1 if ok else 0
            time.sleep(0.05)
        return self

    def restart(self) -> LocalService:
        """Stop it and start it again as it was first started, in place: a new process on
        a new port, logging to a new file (the old log stays for the post-mortem)."""
        self.stop()
        args = dict(self.started_with)
        attempt = int(args.pop("attempt", 1)) + 1
        fresh = start_service(self.name, attempt=attempt, **args)
        self.base, self.process, self.log = fresh.base, fresh.process, fresh.log
        self.started_with, self.ready = fresh.started_with, False
        return self

    def stop(self) -> None:
        stop_process(self.process)


def start_service(
    name: str,
    index: Path,
    workdir: Path,
    *,
    args: tuple[str, ...] = (),
    attempt: int = 1,
    **env: str,
) -> LocalService:
    """Start `rag serve` on a free port, reading ``index``; returns before it is ready.

    It runs in ``workdir`` (so no developer ``.env`` is read) and logs to
    ``workdir/<name>.log`` (``<name>.<attempt>.log`` for a later attempt).
    """
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / (f"{name}.log" if attempt == 1 else f"{name}.{attempt}.log")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    if "RAG_READER" in os.environ:  # a developer may pin the reader for every run
        environ["RAG_READER"] = os.environ["RAG_READER"]
    environ.update({"RAG_INDEX_DIR": str(index.resolve()), "PYTHONUNBUFFERED": "1", **env})
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                *("-m", "rag.cli", "serve", "--host", "127.0.0.1", "--port", str(port)),
                *args,
            ],
            cwd=workdir,
            env=environ,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    started_with = {"index": index, "workdir": workdir, "args": args, "attempt": attempt, **env}
    return LocalService(name, f"http://127.0.0.1:{port}", process, log, started_with=started_with)
