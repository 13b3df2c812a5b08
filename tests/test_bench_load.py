"""bench/load.py's pure logic: the widget's retry schedule and the people summary.

No service is started and nothing is timed: a fake clock, a mocked transport.
"""

from __future__ import annotations

import random

import httpx
import pytest

from bench.load import (
    Asked,
    LoadRun,
    WidgetRetry,
    ask_like_widget,
    refusal_kind,
    retry_after_seconds,
    summarize_people,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _service(*responses: tuple[int, str | None, str | None]) -> httpx.Client:
    """A client whose service answers ``(status, error code, Retry-After)`` in turn."""
    queue = list(responses)

    def answer(request: httpx.Request) -> httpx.Response:
        status, code, retry_after = queue.pop(0) if len(queue) > 1 else queue[0]
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        body: dict[str, object] = (
            {"answer": None, "passages": []} if status == 200 else {"error": {"code": code}}
        )
        return httpx.Response(status, json=body, headers=headers)

    return httpx.Client(transport=httpx.MockTransport(answer), base_url="http://rag.test")


def test_next_wait_is_never_less_than_asked_and_the_jitter_is_bounded() -> None:
    retry = WidgetRetry()
    rng = random.Random(1)
    for asked in (0.0, 1.0, 4.0):
        for _ in range(200):
            wait = retry.next_wait("busy", asked, 0.0, 0.0, rng)
            assert wait is not None
            assert asked <= wait <= asked + max(0.25, asked * 0.5)


def test_next_wait_gives_up_when_asked_for_more_than_is_left() -> None:
    retry = WidgetRetry(max_wait=15.0)
    rng = random.Random(2)
    assert retry.next_wait("busy", 6.0, first_refusal=0.0, now=10.0, rng=rng) is None
    wait = retry.next_wait("busy", 5.0, first_refusal=0.0, now=10.0, rng=rng)
    assert wait == 5.0  # exactly what is left: never past the bound
    assert retry.next_wait("busy", None, 0.0, 0.0, rng) >= 1.0  # type: ignore[operator]
    assert retry.next_wait("limited", None, 0.0, 0.0, rng) >= 5.0  # type: ignore[operator]


def test_a_refused_question_is_asked_again_after_retry_after_and_answered() -> None:
    clock = Clock()
    http = _service((503, "overloaded", "2"), (503, "overloaded", "3"), (200, None, None))
    got = ask_like_widget(http, "q?", random.Random(3), WidgetRetry(), clock, clock.sleep)
    assert got.answered and got.tries == 3 and got.error is None
    assert clock.slept[0] >= 2 and clock.slept[1] >= 3
    assert got.seconds == pytest.approx(sum(clock.slept))


def test_a_person_sees_an_error_once_the_wait_would_pass_15_s() -> None:
    clock = Clock()
    http = _service((503, "overloaded", "5"))
    got = ask_like_widget(http, "q?", random.Random(4), WidgetRetry(), clock, clock.sleep)
    assert not got.answered and got.error == "busy"
    assert all(wait >= 5 for wait in clock.slept)
    assert sum(clock.slept) <= 15.0 and got.tries == len(clock.slept) + 1


def test_a_rate_limit_is_waited_out_and_other_errors_are_shown_at_once() -> None:
    clock = Clock()
    limited = _service((429, "rate_limited", "1"), (200, None, None))
    got = ask_like_widget(limited, "q?", random.Random(5), WidgetRetry(), clock, clock.sleep)
    assert got.answered and got.tries == 2
    broken = _service((500, "internal_error", None))
    got = ask_like_widget(broken, "q?", random.Random(5), WidgetRetry(), clock, clock.sleep)
    assert (got.answered, got.tries, got.error) == (False, 1, "500 internal_error")


def test_refusals_and_retry_after_as_the_widget_reads_them() -> None:
    assert refusal_kind(503, "overloaded") == "busy"
    assert refusal_kind(429, "rate_limited") == "limited"
    assert refusal_kind(503, "index_missing") is None
    assert retry_after_seconds("4") == 4.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None


def test_people_summary_shares_and_percentiles() -> None:
    outcomes = [Asked(True, 1, 0.4 + i / 100) for i in range(16)]
    outcomes += [Asked(True, 2, 3.0), Asked(True, 3, 8.0)]
    outcomes += [Asked(False, 4, 15.0, "busy"), Asked(False, 1, 0.1, "500 internal_error")]
    run = summarize_people(8, outcomes, elapsed=10.0)
    assert (run.questions, run.answered, run.answered_per_second) == (20, 18, 1.8)
    assert run.first_try_share == 0.8 and run.error_share == 0.1
    assert run.retries == 1 + 2 + 3
    assert run.errors == {"busy": 1, "500 internal_error": 1}
    # Of the answered only, waits included: 18 values, linear interpolation.
    assert run.p50_s == pytest.approx(0.485, abs=0.006) and run.p95_s == 3.75
    empty = summarize_people(4, [], elapsed=5.0)
    assert (empty.questions, empty.p95_s, empty.error_share) == (0, None, 0.0)


def test_people_and_hammer_rows_run_against_a_service(monkeypatch: pytest.MonkeyPatch) -> None:
    """The threads, the reading pauses and the summaries, on a mocked service (the
    benchmark's numbers themselves come from the real one)."""
    from bench import load

    asked: list[str] = []
    client = httpx.Client

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.read().decode())
        if len(asked) == 2:  # one refusal, waited out as the widget does
            return httpx.Response(
                503, json={"error": {"code": "overloaded"}}, headers={"Retry-After": "0"}
            )
        return httpx.Response(200, json={"answer": None, "passages": []})

    def mocked(**kwargs: object) -> httpx.Client:
        return client(transport=httpx.MockTransport(answer), base_url=str(kwargs["base_url"]))

    monkeypatch.setattr(load.httpx, "Client", mocked)
    crowd = load.people("http://rag.test", 3, 0.3, ["a?", "b?"], seed=1, reading=(0.01, 0.02))
    assert crowd.users == 3 and crowd.questions >= 3 and crowd.error_share == 0.0
    assert crowd.retries == 1 and crowd.answered == crowd.questions
    hammer = load.run("http://rag.test", 2, 0.2, ["a?"], backoff=True)
    assert hammer.answered > 0 and hammer.refused_503 == 0 and hammer.other == {}


def _load(answered_per_second: float) -> LoadRun:
    return LoadRun(
        clients=4,
        seconds=60.0,
        answered=int(answered_per_second * 60),
        answered_per_second=answered_per_second,
        p50_ms=400.0,
        p95_ms=900.0,
        p99_ms=1000.0,
        refused_503=0,
        refused_share=0.0,
        refused_p95_ms=None,
        other={},
    )


def test_the_rebuild_table_compares_each_rebuild_with_idle() -> None:
    from bench.load import ServiceConfig
    from bench.load_rebuild import Phase, answered_share, table

    idle, during = _load(2.4), _load(1.8)
    assert answered_share(during, idle) == 0.75
    assert answered_share(during, _load(0.0)) is None
    phases = [
        Phase("idle", None, idle),
        Phase("rebuild", "admin", during, 95.0, True, True, answered_share(during, idle)),
    ]
    lines = table([(ServiceConfig("default", 1, {}), phases)])
    assert len(lines) == 4 and "| idle |" in lines[2]
    assert "| rebuild (admin) |" in lines[3] and "| 75% |" in lines[3] and "| 95 |" in lines[3]


def test_the_people_and_hammer_tables_line_up_every_setup() -> None:
    from bench.load import Measured, PeopleRun, ServiceConfig, results_table

    crowd = PeopleRun(4, 120.0, 50, 48, 0.4, 0.9, 1.23, 4.5, 0.04, 3, {"busy": 2})
    hammer = LoadRun(8, 30.0, 100, 3.33, 400.0, 900.5, None, 5, 0.048, 120.0, {"500": 1, "x": 2})
    table = [
        Measured(ServiceConfig("one", 1, {}), [crowd], [hammer]),
        Measured(ServiceConfig("two", 2, {}), [], [_load(0.0)]),
    ]
    assert results_table(table, "people") == [
        "| setup | people | questions | answered/s | answered at first try | p50 s "
        "| p95 s (waits included) | error shown |",
        "|---|---|---|---|---|---|---|---|",
        "| one | 4 | 50 | 0.4 | 90% | 1.23 | 4.5 | 4% |",
    ]
    assert results_table(table, "hammer") == [
        "| setup | clients | answered/s | p50 ms | p95 ms | p99 ms | refused 503 "
        "| refused p95 ms | other |",
        "|---|---|---|---|---|---|---|---|---|",
        "| one | 8 | 3.33 | 400.0 | 900.5 | None | 5 (5%) | 120.0 | 3 |",
        "| two | 4 | 0.0 | 400.0 | 900.0 | 1000.0 | 0 (0%) | None | 0 |",
    ]
