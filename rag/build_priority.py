"""An index build that leaves the CPU to the questions a service answers beside it.

A build is CPU-heavy for minutes: torch embeds every new chunk on every core and spaCy
annotates on a thread of its own. A service on the same machine answers questions on
the same cores, and without a rule the kernel shares them evenly between the two, so
questions slow down and queue up while a build runs. ``rag index`` applies two rules to
its own process before it loads a model (every build runs as that process: by hand, or
as the child process the service's admin reindex starts):

- **Lower priority** (``RAG_BUILD_NICE``). The build's niceness is raised, so the kernel
  gives it only the CPU time the service's threads leave: when a question comes, the
  build steps aside within the scheduler's next decision; when none comes, the build has
  every core, so on an idle machine it is no slower. This is what isolates the embedding
  model's CPU use from the serving threads: only the scheduler can take a core back at
  once, many times a second. It is raised in the main thread before any other thread
  exists, because Linux keeps a niceness per thread and new threads (torch's and
  OpenMP's pools, spaCy's thread) inherit their creator's.
- **Fewer threads** (``RAG_BUILD_THREADS``). The math libraries' pools (torch, OpenMP,
  BLAS, faiss, the tokenizers) are sized to N. Niceness orders only threads that compete
  in one scheduling group: with Linux's autogroup each session (a terminal, a service
  unit) first gets its share of the CPU, and cgroups do the same, so a ``rag index``
  started from another terminal competes with the service as an equal whatever its
  niceness; a bound on its threads leaves the other cores free anyway. The admin
  reindex, a child of the service and so in its group, gets both by default
  (``service_build_threads``). spaCy's one annotation thread runs beside the pools while
  it lasts.

Why a process of its own and not a thread of the service: ``torch.set_num_threads`` and
the OpenMP and BLAS pools belong to the whole process, so bounding the build's would
bound the service's own question embedding too; a child process has pools and a
priority of its own, and gives its memory back when it ends.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

#: Variables each math library reads, once, when it loads, for the size of its pool.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "RAYON_NUM_THREADS",
)


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def service_build_threads(configured: int) -> int:
    """Threads of a build the service starts: the setting, or when it is 0, half the
    cores (at least one), because the service is answering on the rest."""
    return configured if configured > 0 else max(1, usable_cpus() // 2)


def thread_environment(threads: int) -> dict[str, str]:
    """The environment that sizes every math library's pool to ``threads`` (0: none)."""
    return {name: str(threads) for name in THREAD_VARIABLES} if threads > 0 else {}


def lower_priority(nice: int) -> int | None:
    """Raise this process's niceness to ``nice`` if it is lower; returns the niceness now.

    Call it before any thread is started: on Linux the niceness is per thread and only
    threads created afterwards inherit it. Where the OS has no niceness or refuses, the
    build runs as it is (a warning says so) and None is returned.
    """
    if not hasattr(os, "getpriority"):
        return None
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        if nice > current:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        return os.getpriority(os.PRIO_PROCESS, 0)
    except OSError as exc:
        log.warning("cannot lower the build's priority to niceness %d: %s", nice, exc)
        return None


def bound_threads(threads: int) -> None:
    """Size the math libraries' thread pools to ``threads`` (0: leave them as they are).

    The variables are read when a library loads, so this runs before the build imports
    any (this module imports none: it sits outside ``rag.store``, whose package loads
    numpy and faiss); torch's count is set directly as well.
    """
    if threads <= 0:
        return
    os.environ.update(thread_environment(threads))
    import torch

    torch.set_num_threads(threads)
