"""Questions keep being answered while the admin reindex rebuilds (real server, real build).

Correctness only: every question asked during the build is answered, and the build
runs as rag/build_priority.py says (lower priority, bounded threads). Nothing is timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from rag.build_priority import service_build_threads
from rag.config import Settings
from rag.devserver import LocalService
from rag.synthetic import write_synthetic_corpus

pytestmark = pytest.mark.slow

TOKEN = "rebuild-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
QUESTIONS = [
    "What is the CTS reference of the Home Office letter?",
    "Who wrote to Lucy Allan?",
]


def _build_process(service_pid: int) -> dict[str, object] | None:
    """The running ``rag index`` child of the service, from Linux's /proc, or None."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile, or not ours
        if int(fields[1]) == service_pid and b"index" in cmdline:
            env = dict(e.decode(errors="replace").partition("=")[::2] for e in environ if e)
            return {"nice": int(fields[16]), "env": env, "cmdline": cmdline}
    return None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the build from /proc")
def test_questions_are_answered_while_an_admin_reindex_builds(
    admin_service: Callable[..., LocalService], corpus_copy: Path, corpus_dir: Path
) -> None:
    # New documents: the build has real work to do (load, annotate, chunk, embed).
    write_synthetic_corpus(corpus_dir, corpus_copy / "synthetic", 30)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    service = admin_service("rebuild", TOKEN)
    try:
        base = service.wait_ready(timeout=180).base
        with httpx.Client(base_url=base, timeout=120) as http:
            started = http.post("/v1/admin/reindex", headers=AUTH)
            assert started.status_code == 202, started.text
            assert started.json()["state"] == "running"
            answered_during, statuses, build, nice = 0, [], None, -1
            deadline = time.monotonic() + 900  # a deadline, not a speed requirement
            while time.monotonic() < deadline:
                # Seen again each time: the build lowers its priority once it has started.
                seen = _build_process(service.process.pid)
                if seen is not None:
                    build, nice = seen, max(nice, int(str(seen["nice"])))
                for q in QUESTIONS:
                    r = http.post("/v1/ask", json={"question": q})
                    statuses.append(r.status_code)
                    assert r.status_code == 200, r.text
                    assert r.json()["passages"]
                state = http.get("/v1/admin/reindex", headers=AUTH).json()
                if state["state"] != "running":
                    break
                answered_during += len(QUESTIONS)  # asked and answered, the build still on
                time.sleep(0.2)
            assert state["state"] == "succeeded", state
            assert len(state["report"]["new"]) == 30 and state["report"]["embedded"] > 0
    finally:
        service.stop()
    assert answered_during > 0 and set(statuses) == {200}
    assert build is not None, "the build process was never seen"
    assert nice >= defaults.build_nice  # RAG_BUILD_NICE, 10
    threads = str(service_build_threads(defaults.build_threads))
    env = build["env"]
    assert isinstance(env, dict) and env["OMP_NUM_THREADS"] == threads
    assert [b"--nice", str(defaults.build_nice).encode()] == _after(build["cmdline"], b"--nice")


def _after(cmdline: object, flag: bytes) -> list[bytes]:
    assert isinstance(cmdline, list)
    i = cmdline.index(flag)
    return list(cmdline[i : i + 2])
