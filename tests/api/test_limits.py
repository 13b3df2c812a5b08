"""The limits' own logic: client address, rate limiter, question gate (no models)."""

from __future__ import annotations

import asyncio

import pytest

from rag.api.limits import AskGate, RateLimiter, ServiceTime, client_address, parse_networks
from rag.config import Settings
from rag.errors import OverloadedError, RateLimitedError

PROXIES = parse_networks(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),  # from a trusted proxy
        ("198.51.100.7", "203.0.113.9", "198.51.100.7"),  # anyone else: the header is ignored
        ("198.51.100.7", None, "198.51.100.7"),
        ("127.0.0.1", "1.1.1.1, 203.0.113.9", "203.0.113.9"),  # client-written part is ignored
        ("127.0.0.1", "203.0.113.9, 10.1.2.3", "203.0.113.9"),  # two proxies
        ("127.0.0.1", "10.1.2.3, 10.1.2.4", "10.1.2.3"),  # all trusted: the furthest
        ("127.0.0.1", "not-an-ip, 10.1.2.3", "10.1.2.3"),  # garbage is never a key
        ("127.0.0.1", "", "127.0.0.1"),
    ],
)
def test_client_address_believes_only_trusted_proxies(
    peer: str, forwarded: str | None, expected: str
) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected


def test_no_trusted_proxies_means_the_socket_peer_always() -> None:
    assert client_address("127.0.0.1", "203.0.113.9", []) == "127.0.0.1"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_allows_the_limit_then_refuses_until_the_window_passes() -> None:
    clock = Clock()
    limiter = RateLimiter(3, clock=clock)
    for _ in range(3):
        limiter.check("a")
    with pytest.raises(RateLimitedError) as refused:
        limiter.check("a")
    assert refused.value.retry_after == 60
    limiter.check("b")  # another client has its own budget
    clock.now += 30
    with pytest.raises(RateLimitedError) as again:
        limiter.check("a")
    assert again.value.retry_after == 30
    clock.now += 30
    limiter.check("a")


def test_rate_limiter_key_store_is_bounded_and_forgets_idle_clients() -> None:
    clock = Clock()
    limiter = RateLimiter(5, max_clients=100, clock=clock)
    for n in range(30_000):
        limiter.check(f"spoofed-{n}")
    assert len(limiter) == 100
    limiter.check("steady")
    clock.now += 61
    limiter.check("steady")
    assert len(limiter) == 1  # everyone idle for a whole window is forgotten


def test_rate_limiter_zero_disables() -> None:
    limiter = RateLimiter(0)
    for _ in range(1000):
        limiter.check("a")
    assert len(limiter) == 0


def test_gate_admits_concurrency_plus_queue_and_refuses_the_rest_at_once() -> None:
    async def scenario() -> tuple[list[str], AskGate]:
        gate = AskGate(concurrency=1, queue=1, timeout=30)
        release = asyncio.Event()
        events: list[str] = []

        async def ask(name: str) -> None:
            try:
                async with gate.slot():
                    events.append(f"{name} answering")
                    await release.wait()
            except OverloadedError:
                events.append(f"{name} refused")

        first = asyncio.create_task(ask("first"))
        await asyncio.sleep(0)
        second = asyncio.create_task(ask("second"))  # waits in the queue
        await asyncio.sleep(0)
        await ask("third")  # no slot, no place in the queue: refused now
        assert (gate.in_flight, gate.waiting) == (1, 1)
        release.set()
        await asyncio.gather(first, second)
        return events, gate

    events, gate = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert events == ["first answering", "third refused", "second answering"]
    assert (gate.in_flight, gate.waiting, gate.rejected) == (0, 0, 1)


def test_gate_refuses_a_question_that_waits_past_the_timeout() -> None:
    async def scenario() -> AskGate:
        gate = AskGate(concurrency=1, queue=5, timeout=0.05)
        release = asyncio.Event()

        async def hold() -> None:
            async with gate.slot():
                await release.wait()

        holder = asyncio.create_task(hold())
        await asyncio.sleep(0)
        with pytest.raises(OverloadedError, match="no turn"):
            async with gate.slot():
                pass
        release.set()
        await holder
        async with gate.slot():  # the slot was given back
            pass
        return gate

    gate = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert (gate.in_flight, gate.waiting, gate.rejected) == (0, 0, 1)


async def _serve(gate: AskGate, clock: Clock, seconds: float, times: int = 1) -> None:
    """Answer ``times`` questions that each hold the slot ``seconds`` on the fake clock."""
    for _ in range(times):
        async with gate.slot():
            clock.now += seconds


def test_service_time_starts_at_the_prior_then_follows_the_measurements() -> None:
    pace = ServiceTime(prior=0.5, weight=0.2)
    assert (pace.seconds, pace.measured) == (0.5, 0)
    pace.observe(2.0)  # the first measurement replaces the guess
    assert pace.seconds == 2.0
    pace.observe(1.0)
    assert pace.seconds == pytest.approx(1.8)


def test_the_queue_holds_what_the_budget_drains_at_the_measured_pace() -> None:
    clock = Clock()
    gate = AskGate(1, budget=4.0, clock=clock)
    assert (gate.queue, gate.timeout) == (8, 4.0)  # the prior: 0.5 s a question

    async def scenario() -> list[int]:
        seen = []
        await _serve(gate, clock, 1.0)  # a slow machine: 4 s drain 4 questions
        seen.append(gate.queue)
        await _serve(gate, clock, 0.25, times=40)  # faster now: 16 in 4 s
        seen.append(gate.queue)
        return seen

    assert asyncio.run(asyncio.wait_for(scenario(), 30)) == [4, 15]
    two = AskGate(2, budget=4.0, clock=clock)  # two slots drain twice as many
    two.service.observe(0.25)
    assert two.queue == 32


def test_a_wait_the_budget_absorbs_is_admitted_and_served() -> None:
    async def scenario() -> tuple[list[str], AskGate]:
        gate = AskGate(1, budget=4.0)  # 0.5 s a question until measured: 8 may wait
        release = asyncio.Event()
        events: list[str] = []

        async def ask(name: str) -> None:
            try:
                async with gate.slot():
                    events.append(name)
                    await release.wait()
            except OverloadedError:
                events.append(f"{name} refused")

        tasks = []
        for n in range(7):
            tasks.append(asyncio.create_task(ask(f"q{n}")))
            await asyncio.sleep(0)
        assert (gate.in_flight, gate.waiting, gate.rejected) == (1, 6, 0)
        release.set()
        await asyncio.gather(*tasks)
        return events, gate

    events, gate = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert events == [f"q{n}" for n in range(7)]  # every one answered, in turn
    assert (gate.in_flight, gate.waiting, gate.rejected) == (0, 0, 0)


def test_past_what_the_budget_absorbs_a_503_says_when_the_queue_drains() -> None:
    clock = Clock()

    async def scenario() -> OverloadedError:
        gate = AskGate(1, budget=4.0, clock=clock)
        await _serve(gate, clock, 1.0)  # 1 s a question: 4 may wait
        release = asyncio.Event()

        async def hold() -> None:
            async with gate.slot():
                await release.wait()

        tasks = []
        for _ in range(5):  # one answering, four waiting
            tasks.append(asyncio.create_task(hold()))
            await asyncio.sleep(0)
        assert (gate.in_flight, gate.waiting) == (1, 4)
        with pytest.raises(OverloadedError) as refused:
            async with gate.slot():
                pass
        release.set()
        await asyncio.gather(*tasks)
        return refused.value

    refused = asyncio.run(asyncio.wait_for(scenario(), 30))
    # Five questions ahead at 1 s each; never longer than the budget and one answer.
    assert refused.retry_after == 5
    assert "busy" in str(refused) and "within 4 s" in str(refused)


def test_retry_after_is_at_least_a_second_and_at_most_the_longest_wait_and_one_answer() -> None:
    gate = AskGate(1, queue=500, timeout=2.0)
    gate.service.observe(1.0)
    gate.in_flight, gate.waiting = 1, 500
    assert gate.retry_after() == 3  # everyone now waiting is answered or refused by then
    fast = AskGate(1, queue=0, timeout=2.0)
    fast.service.observe(0.001)
    fast.in_flight = 1
    assert fast.retry_after() == 1


def _env_settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("RAG_ASK_QUEUE", "RAG_ASK_QUEUE_TIMEOUT_SECONDS", "RAG_ASK_WAIT_BUDGET_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_without_overrides_the_budget_sizes_queue_and_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = AskGate.from_settings(_env_settings(monkeypatch, RAG_ASK_WAIT_BUDGET_SECONDS="3"))
    assert (gate.fixed_queue, gate.queue, gate.timeout) == (None, 6, 3.0)
    gate.service.observe(1.5)
    assert gate.queue == 2


def test_an_explicit_queue_and_timeout_win_over_the_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = _env_settings(monkeypatch, RAG_ASK_QUEUE="2", RAG_ASK_QUEUE_TIMEOUT_SECONDS="0.5")
    gate = AskGate.from_settings(settings)
    for seconds in (0.01, 3.0, 0.2):  # whatever the pace, the numbers set
        gate.service.observe(seconds)
        assert (gate.queue, gate.timeout) == (2, 0.5)
    only_wait = AskGate.from_settings(
        _env_settings(monkeypatch, RAG_ASK_QUEUE_TIMEOUT_SECONDS="1.5")
    )
    assert (only_wait.queue, only_wait.timeout) == (8, 1.5)  # the queue still follows the pace
    only_queue = AskGate.from_settings(_env_settings(monkeypatch, RAG_ASK_QUEUE="0"))
    assert (only_queue.queue, only_queue.timeout) == (0, 4.0)  # the wait is still the budget
