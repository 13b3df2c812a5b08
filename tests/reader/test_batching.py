"""Cross-request batching: concurrent callers share model calls and get their own results.

The runner's logic is tested with a scripted batch function (which lets a test hold a
batch while others queue up); that running windows of several questions in one call
leaves each window's logits as they are is tested with a tiny QA model.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag.reader.batching import CoalescingRunner
from rag.reader.qa_model import QAModel, encode_windows


class Scripted:
    """A batch function that records each call and can be held on its first call."""

    def __init__(self) -> None:
        self.calls: list[list[int]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, items: list[int]) -> list[int]:
        self.calls.append(list(items))
        self.entered.set()
        assert self.release.wait(10)
        return [i * 10 for i in items]


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_one_caller_runs_alone_with_its_results_in_order() -> None:
    fn = Scripted()
    runner = CoalescingRunner(fn)
    assert runner.run([3, 1, 2]) == [30, 10, 20]
    assert runner.run([]) == []
    assert fn.calls == [[3, 1, 2]]
    assert runner.stats().batches == 1


def test_callers_arriving_during_a_batch_share_the_next_one() -> None:
    fn = Scripted()
    runner = CoalescingRunner(fn)
    fn.release.clear()
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(runner.run, [1])
        assert fn.entered.wait(10)  # the first batch is running and held
        later = [pool.submit(runner.run, [n, n + 1]) for n in (10, 20, 30)]
        _wait_until(lambda: len(runner._pending) == 3)
        fn.release.set()
        assert first.result(10) == [10]
        assert [f.result(10) for f in later] == [[100, 110], [200, 210], [300, 310]]
    assert len(fn.calls) == 2  # the three waiting callers ran in one call
    assert sorted(fn.calls[1]) == [10, 11, 20, 21, 30, 31]
    stats = runner.stats()
    assert (stats.batches, stats.jobs, stats.items, stats.largest_batch_jobs) == (2, 4, 7, 3)


def test_max_items_bounds_a_batch_without_splitting_a_caller() -> None:
    fn = Scripted()
    runner = CoalescingRunner(fn, max_items=4)
    fn.release.clear()
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(runner.run, [0])
        assert fn.entered.wait(10)
        later = [pool.submit(runner.run, [n, n, n]) for n in (1, 2, 3)]
        _wait_until(lambda: len(runner._pending) == 3)
        fn.release.set()
        assert first.result(10) == [0]
        assert [f.result(10) for f in later] == [[10] * 3, [20] * 3, [30] * 3]
    assert [len(c) for c in fn.calls] == [1, 3, 3, 3]  # 3 + 3 > 4: one caller per batch


def test_an_error_reaches_every_caller_of_the_batch_and_the_runner_recovers() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def failing(items: list[int]) -> list[int]:
        calls.append(items)
        if len(calls) == 1:
            assert gate.wait(10)
            return [0] * len(items)
        if len(calls) == 2:
            raise RuntimeError("model failed")
        return items

    runner = CoalescingRunner(failing)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(runner.run, [1])
        _wait_until(lambda: len(calls) == 1)
        doomed = [pool.submit(runner.run, [n]) for n in (2, 3)]
        _wait_until(lambda: len(runner._pending) == 2)
        gate.set()
        assert first.result(10) == [0]
        for f in doomed:
            with pytest.raises(RuntimeError, match="model failed"):
                f.result(10)
    assert runner.run([7]) == [7]


def test_a_wrong_result_count_is_an_error_not_a_misassignment() -> None:
    runner = CoalescingRunner(lambda items: items[:-1])
    with pytest.raises(RuntimeError, match="1 results for 2 items"):
        runner.run([1, 2])


def test_wait_lets_a_lone_leader_gather_company() -> None:
    fn = Scripted()
    runner = CoalescingRunner(fn, wait_s=5.0)
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(runner.run, [1])
        _wait_until(lambda: runner._leading)
        b = pool.submit(runner.run, [2])
        assert (a.result(10), b.result(10)) == ([10], [20])
    assert fn.calls == [[1, 2]]  # the leader waited and took the second caller along


@pytest.mark.parametrize("kwargs", [{"max_items": 0}, {"wait_s": -1.0}])
def test_bad_settings(kwargs) -> None:
    with pytest.raises(ValueError):
        CoalescingRunner(lambda items: items, **kwargs)


CONTEXTS = [
    "The river Severn flows through Shrewsbury and Worcester before it reaches the sea.",
    " ".join(
        f"Town {i} lies {i * 3} miles from bridge {i * 11} on road {i + 40}." for i in range(30)
    ),
    "Short one.",
]


def test_windows_run_together_give_the_logits_they_give_alone(tiny_model_dir: Path) -> None:
    """Padding to another question's longer window must not change a window's logits."""
    model = QAModel(str(tiny_model_dir), max_seq_len=64, doc_stride=16, max_answer_tokens=5)
    model.warm_up()
    tok = model._tokenizer
    per_question = [
        encode_windows(tok, [q] * len(CONTEXTS), CONTEXTS, max_seq_len=64, doc_stride=16)
        for q in ("Where does the Severn flow?", "Who was Telford named after, and why?")
    ]
    alone = [model._run_windows(ws) for ws in per_question]
    together = model._run_windows(per_question[0] + per_question[1])
    flat_alone = alone[0] + alone[1]
    assert len(together) == len(flat_alone)
    for (s1, e1), (s2, e2), w in zip(
        together, flat_alone, per_question[0] + per_question[1], strict=True
    ):
        n = len(w.input_ids)
        np.testing.assert_allclose(s1[:n], s2[:n], atol=1e-4)
        np.testing.assert_allclose(e1[:n], e2[:n], atol=1e-4)


def test_int8_never_batches_across_questions(tiny_model_dir: Path) -> None:
    """Dynamic int8 quantisation scales activations by the batch: a batch mate would
    change the answer, so the int8 runtime runs each question's windows on their own."""
    assert not QAModel(str(tiny_model_dir), runtime="int8").coalesce
    assert QAModel(str(tiny_model_dir), runtime="onnx").coalesce
    assert not QAModel(str(tiny_model_dir), runtime="onnx", coalesce=False).coalesce
