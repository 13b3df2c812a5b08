"""Cross-request batching: the model runs the windows of concurrent questions together.

When several questions are answered at once (``RAG_ASK_CONCURRENCY`` > 1), each would
otherwise call the model on its own few windows, and the calls would compete for the
same two cores. ``CoalescingRunner`` lets one caller at a time run the model (the
*leader*) on its own windows and on those of every caller that arrived meanwhile; the
others wait for their share of the results. With one question at a time it adds no wait
and no copy: the leader finds nobody else and runs alone.

This is opportunistic batching, with no timer by default: a batch forms from the
callers that queued up while the previous batch ran, so no question is delayed on the
chance that another one comes. ``wait_s`` adds such a delay for those who measure a gain
from it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False, slots=True)
class _Job(Generic[T, R]):
    items: Sequence[T]
    done: bool = False
    results: list[R] = field(default_factory=list)
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class BatchStats:
    """What the runner did: calls of the model, callers served, items run."""

    batches: int
    jobs: int
    items: int
    largest_batch_jobs: int


class CoalescingRunner(Generic[T, R]):
    """Run ``run_batch`` over the items of concurrent callers in one call.

    ``run_batch`` takes a list of items and returns one result per item, in order. It
    is called by one thread at a time, so a model that is not safe to call from two
    threads at once is safe behind it. ``max_items`` bounds what one batch takes (a
    caller's own items are never split); ``wait_s`` is how long a leader that found
    nobody else waits for company before it runs.
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], list[R]],
        *,
        max_items: int = 256,
        wait_s: float = 0.0,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be at least 1, got {max_items}")
        if wait_s < 0:
            raise ValueError(f"wait_s must not be negative, got {wait_s}")
        self._run_batch = run_batch
        self.max_items = max_items
        self.wait_s = wait_s
        self._cond = threading.Condition()
        self._pending: list[_Job[T, R]] = []
        self._leading = False
        self._batches = 0
        self._jobs = 0
        self._items = 0
        self._largest = 0

    def stats(self) -> BatchStats:
        with self._cond:
            return BatchStats(self._batches, self._jobs, self._items, self._largest)

    def run(self, items: Sequence[T]) -> list[R]:
        """Results for ``items``, in order, computed alone or beside other callers'."""
        if not items:
            return []
        job: _Job[T, R] = _Job(items)
        with self._cond:
            self._pending.append(job)
            self._cond.notify_all()
        while True:  # a leader whose job did not fit the batch it ran leads again
            with self._cond:
                while not job.done and self._leading:
                    self._cond.wait()
                if job.done:
                    return self._result(job)
                self._leading = True
            try:
                self._lead()
            finally:
                with self._cond:
                    self._leading = False
                    self._cond.notify_all()

    def _lead(self) -> None:
        """Take the waiting jobs (at least the oldest), run them as one batch, hand out."""
        with self._cond:
            if self.wait_s and len(self._pending) == 1:
                deadline = time.monotonic() + self.wait_s
                while len(self._pending) == 1 and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
            batch: list[_Job[T, R]] = []
            total = 0
            for pending in self._pending:
                if batch and total + len(pending.items) > self.max_items:
                    break
                batch.append(pending)
                total += len(pending.items)
            del self._pending[: len(batch)]
        flat = [item for j in batch for item in j.items]
        try:
            results = self._run_batch(flat)
            if len(results) != len(flat):
                raise RuntimeError(f"run_batch gave {len(results)} results for {len(flat)} items")
        except BaseException as exc:  # handed to every caller of the batch
            with self._cond:
                for j in batch:
                    j.error, j.done = exc, True
                self._cond.notify_all()
            return
        with self._cond:
            at = 0
            for j in batch:
                j.results = list(results[at : at + len(j.items)])
                at += len(j.items)
                j.done = True
            self._batches += 1
            self._jobs += len(batch)
            self._items += len(flat)
            self._largest = max(self._largest, len(batch))
            self._cond.notify_all()

    @staticmethod
    def _result(job: _Job[T, R]) -> list[R]:
        if job.error is not None:
            raise job.error
        return job.results
