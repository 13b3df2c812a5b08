"""The limits' own logic: client address, rate limiter, question gate (no models)."""

from __future__ import annotations

import asyncio

import pytest

from rag.api.limits import AskGate, RateLimiter, client_address, parse_networks
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
