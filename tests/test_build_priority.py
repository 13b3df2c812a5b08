"""rag/build_priority.py: the thread environment, the service's default and the niceness.

The niceness is changed only in child processes: this one keeps its own priority.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag import build_priority
from rag.build_priority import THREAD_VARIABLES, service_build_threads, thread_environment

ROOT = Path(__file__).resolve().parent.parent


def test_thread_environment_sizes_every_pool_or_none() -> None:
    assert thread_environment(0) == {}
    env = thread_environment(2)
    assert set(env) == set(THREAD_VARIABLES) and set(env.values()) == {"2"}


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (3, 1), (8, 4)])
def test_a_build_the_service_starts_takes_half_the_cores_unless_set(
    monkeypatch: pytest.MonkeyPatch, cores: int, expected: int
) -> None:
    monkeypatch.setattr(build_priority, "usable_cpus", lambda: cores)
    assert service_build_threads(0) == expected
    assert service_build_threads(3) == 3  # a setting wins


_CHILD = """
import json, os, sys, threading
from rag.build_priority import lower_priority
os.nice(int(sys.argv[1]))
before = os.getpriority(os.PRIO_PROCESS, 0)
after = lower_priority(int(sys.argv[2]))
seen = {}
def report():
    stat = open(f"/proc/self/task/{threading.get_native_id()}/stat").read()
    seen["thread"] = int(stat.rsplit(")", 1)[1].split()[16])
t = threading.Thread(target=report); t.start(); t.join()
print(json.dumps({"before": before, "after": after, **seen}))
"""


def _niceness(start: int, wanted: int) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(start), str(wanted)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, int] = json.loads(out.stdout)
    return result


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_lower_priority_raises_the_niceness_for_threads_started_after() -> None:
    here = os.getpriority(os.PRIO_PROCESS, 0)
    got = _niceness(0, min(here + 10, 19))
    assert got["after"] == got["thread"] == min(here + 10, 19)


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux's /proc")
def test_lower_priority_never_raises_a_priority_already_lower() -> None:
    here = os.getpriority(os.PRIO_PROCESS, 0)
    if here + 15 > 19:
        pytest.skip("this process already runs near the lowest priority")
    got = _niceness(15, here + 5)  # started lower than asked: kept as it is
    assert got["before"] == got["after"] == got["thread"] == here + 15
