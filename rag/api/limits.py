"""What keeps the service answering under load and abuse.

- ``client_address``: who a request comes from: the socket peer, or the address a trusted
  reverse proxy (``RAG_TRUSTED_PROXIES``) put in ``X-Forwarded-For``; never a header from
  anyone else.
- ``RateLimiter``: requests per client in a sliding minute, over every route, with a
  bounded key store whose entries expire.
- ``AskGate``: a bounded number of questions answered at once and a queue sized by a
  waiting-time budget at the measured service rate; past both, an immediate 503 with
  ``Retry-After`` instead of an unbounded wait.
- ``BodyLimitMiddleware``: request bodies larger than the limit are refused with 413
  before they are read (``Content-Length``) or as soon as they pass it (chunked).
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag.api.errors import error_response
from rag.config import Settings
from rag.errors import BodyTooLargeError, OverloadedError, RateLimitedError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> list[Network]:
    """``10.0.0.1``, ``10.1.0.0/16``, ``::1``: each becomes a network (a host is a /32)."""
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip()]


def _trusted(address: str, trusted: list[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def client_address(peer: str, forwarded_for: str | None, trusted: list[Network]) -> str:
    """The client a request comes from.

    The socket peer, unless the peer is a trusted proxy: then the right-most address in
    ``X-Forwarded-For`` that is not itself a trusted proxy (each proxy appends the peer it
    saw, so everything left of that could have been written by the client).
    """
    if not forwarded_for or not _trusted(peer, trusted):
        return peer
    client = peer
    for part in reversed(forwarded_for.split(",")):
        hop = part.strip()
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client  # garbage from further left: trust only what was checked
        client = hop
        if not _trusted(hop, trusted):
            return hop
    return client


def scope_client(scope: Scope, trusted: list[Network]) -> str:
    """``client_address`` of an ASGI request scope."""
    peer = scope.get("client")
    host = str(peer[0]) if peer else "unknown"
    forwarded = None
    for name, value in scope.get("headers", ()):
        if name == b"x-forwarded-for":
            text = value.decode("latin-1")
            forwarded = text if forwarded is None else f"{forwarded},{text}"
    return client_address(host, forwarded, trusted)


class RateLimiter:
    """At most ``per_minute`` requests per client in any sliding minute (0 disables).

    At most ``max_clients`` clients are remembered: a client idle for a whole window is
    forgotten, and past the bound the least recently seen is forgotten first.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        max_clients: int = 10_000,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_minute = per_minute
        self.max_clients = max_clients
        self.window = window
        self._clock = clock
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, client: str) -> None:
        if self.per_minute <= 0:
            return
        now = self._clock()
        with self._lock:
            times = self._seen.pop(client, None) or deque()
            while times and now - times[0] >= self.window:
                times.popleft()
            self._seen[client] = times  # now the most recently seen
            if len(times) >= self.per_minute:
                self.rejected += 1
                retry = max(1, math.ceil(self.window - (now - times[0])))
                raise RateLimitedError(
                    f"rate limit reached: {self.per_minute} requests a minute; retry in {retry} s",
                    retry_after=retry,
                )
            times.append(now)
            self._evict(now)

    def _evict(self, now: float) -> None:
        while self._seen:
            oldest = next(iter(self._seen.values()))
            idle = not oldest or now - oldest[-1] >= self.window
            if not idle and len(self._seen) <= self.max_clients:
                return
            self._seen.popitem(last=False)


class ServiceTime:
    """Seconds a question holds its slot, as an exponentially weighted moving average.

    Until the first question is measured the estimate is ``prior``; the first measurement
    replaces it outright (the prior is a guess about some other machine, so it should
    not linger), and each later one moves the estimate by ``weight`` of the difference,
    so that a slower machine, a busier moment or a new reader shows within a few
    questions while one slow question moves it by only a fifth of its excess.
    """

    def __init__(self, prior: float, weight: float = 0.2) -> None:
        self.seconds = prior
        self.weight = weight
        self.measured = 0

    def observe(self, seconds: float) -> None:
        seconds = max(seconds, 0.0)
        if self.measured == 0:
            self.seconds = seconds
        else:
            self.seconds += self.weight * (seconds - self.seconds)
        self.measured += 1


#: The service time assumed until a question is measured: the fused reader on the fp32
#: ``onnx`` runtime answers in 0.35 to 0.47 s at the median on 2 cores (README).
PRIOR_SERVICE_SECONDS = 0.5
#: The most questions a queue sized by the budget holds, however fast the service is.
MAX_QUEUE = 1000


class AskGate:
    """At most ``concurrency`` questions answered at once; a queue sized by a wait budget.

    A person asking would rather wait a few seconds than be turned away, so a question
    that finds every slot taken waits for a turn, as long as the service can reach it
    within ``budget`` seconds: the queue holds as many questions as ``concurrency``
    slots answer in that time at the service's measured pace (``ServiceTime``, updated
    by each question served), and a question waits no longer than the budget. Past
    that, the question is refused at once with ``OverloadedError`` (503 with
    ``Retry-After``): the budget cannot absorb it, and making it wait would only make
    every question behind it late too. ``Retry-After`` is the time the questions ahead
    need to drain, so that refused clients come back when there is room instead of all
    at once a second later.

    ``queue`` and ``timeout``, when given (``RAG_ASK_QUEUE``,
    ``RAG_ASK_QUEUE_TIMEOUT_SECONDS``), replace the budget's queue length and longest
    wait with fixed numbers. Runs on the event loop; the answering itself happens in a
    worker thread.
    """

    def __init__(
        self,
        concurrency: int,
        *,
        budget: float = 4.0,
        queue: int | None = None,
        timeout: float | None = None,
        prior_seconds: float = PRIOR_SERVICE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.concurrency = concurrency
        self.budget = budget
        self.fixed_queue = queue
        self.timeout = timeout if timeout is not None else budget
        self.service = ServiceTime(prior_seconds)
        self._clock = clock
        self.in_flight = 0
        self.waiting = 0
        self.rejected = 0
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> AskGate:
        """The gate ``settings`` ask for: an explicit queue length or longest wait wins
        over the one derived from the wait budget."""
        return cls(
            settings.ask_concurrency,
            budget=settings.ask_wait_budget_seconds,
            queue=settings.ask_queue,
            timeout=settings.ask_queue_timeout_seconds,
        )

    @property
    def queue(self) -> int:
        """Questions that may wait now: fixed, or what the budget drains at the measured pace."""
        if self.fixed_queue is not None:
            return self.fixed_queue
        per_second = self.concurrency / max(self.service.seconds, 1e-3)
        return min(MAX_QUEUE, math.floor(self.budget * per_second))

    def drain_seconds(self, questions: int) -> float:
        """Expected seconds until ``questions`` ahead (answering or waiting) are done."""
        return questions * self.service.seconds / self.concurrency

    def retry_after(self) -> int:
        """Whole seconds a refused client should wait: until what is ahead of it drains.

        Never under 1 s, and never over the longest wait plus one answer: by then every
        question now waiting has been answered or refused.
        """
        ahead = self.drain_seconds(self.in_flight + self.waiting)
        ceiling = self.timeout + self.service.seconds
        return max(1, math.ceil(min(ahead, ceiling)))

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:
            self._semaphore, self._loop = asyncio.Semaphore(self.concurrency), loop
        return self._semaphore

    def _refuse(self, why: str) -> OverloadedError:
        self.rejected += 1
        retry = self.retry_after()
        return OverloadedError(
            f"the service is busy ({why}); retry in {retry} s", retry_after=retry
        )

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        semaphore = self._sem()
        if self.in_flight + self.waiting >= self.concurrency + self.queue:
            why = f"{self.in_flight} questions answering, {self.waiting} waiting"
            if self.fixed_queue is None:
                why += f": as many as it answers within {self.budget:g} s"
            raise self._refuse(why)
        self.waiting += 1
        try:
            async with asyncio.timeout(self.timeout):
                await semaphore.acquire()
        except TimeoutError:
            raise self._refuse(f"no turn within {self.timeout:g} s") from None
        finally:
            self.waiting -= 1
        self.in_flight += 1
        started = self._clock()
        try:
            yield
        finally:
            self.service.observe(self._clock() - started)
            self.in_flight -= 1
            semaphore.release()


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` (413) without reading them whole.

    ``limits`` maps a path prefix to its own limit (document uploads).
    """

    def __init__(self, app: ASGIApp, max_bytes: int, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limits = limits or {}

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits.items():
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await too_large(limit)(scope, receive, send)
                return
        received = 0
        exceeded = started = False

        async def limited() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLargeError(_too_large_message(limit))
            return message

        async def guarded(message: Message) -> None:
            # The framework turns a failed body read into its own 400: answer 413 instead.
            nonlocal started
            if exceeded:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await too_large(limit)(scope, receive, send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, guarded)
        except BodyTooLargeError:
            if started:
                raise
            await too_large(limit)(scope, receive, send)


def _too_large_message(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes"


def too_large(limit: int) -> Response:
    return error_response(413, BodyTooLargeError.code, _too_large_message(limit))


#: Health probes come from load balancers and orchestrators, often and by design: limiting
#: them would take a healthy service out of rotation. Everything else is limited.
PROBES = frozenset({"/healthz", "/readyz"})


class RateLimitMiddleware:
    """Apply the rate limiter to every request but the health probes, keyed by
    ``scope_client``."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, trusted: list[Network]) -> None:
        self.app = app
        self.limiter = limiter
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and self.limiter.per_minute > 0
            and scope.get("path") not in PROBES
        ):
            try:
                self.limiter.check(scope_client(scope, self.trusted))
            except RateLimitedError as exc:
                response = error_response(429, exc.code, str(exc), retry_after=exc.retry_after)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
