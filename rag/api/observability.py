"""Request ids, access logs and Prometheus metrics (``GET /metrics``).

``RequestContextMiddleware`` is the outermost layer: it gives every request an id (a
safe ``X-Request-ID`` sent by the client or a proxy is kept, anything else is replaced),
sends it back in ``X-Request-ID``, logs one JSON line per request and counts it by
route template (never the raw path: unbounded label values) and status.

Each app has its own registry, so several apps in one process (tests) do not collide.
With several worker processes each worker reports its own numbers.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag import logs
from rag.types import AskResult

log = logging.getLogger("rag.access")

_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SCORE_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


class ServiceCollector(Collector):
    """Numbers read from the live objects at scrape time: index, queue, rejections."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        now = self.read()
        info = GaugeMetricFamily(
            "rag_index_info", "The index version being served (value 1)", labels=["version"]
        )
        if now["version"] is not None:
            info.add_metric([now["version"]], 1.0)
        yield info
        yield GaugeMetricFamily("rag_index_documents", "Documents served", value=now["documents"])
        yield CounterMetricFamily(
            "rag_index_swaps", "New index versions swapped in", value=now["swaps"]
        )
        yield GaugeMetricFamily("rag_ask_in_flight", "Questions being answered", now["in_flight"])
        yield GaugeMetricFamily("rag_ask_queue_depth", "Questions waiting", now["waiting"])
        yield GaugeMetricFamily(
            "rag_ask_queue_limit", "Questions that may wait now", now["queue_limit"]
        )
        yield GaugeMetricFamily(
            "rag_ask_service_seconds",
            "Seconds a question holds its slot (moving average)",
            now["service_seconds"],
        )
        yield CounterMetricFamily(
            "rag_qa_model_calls",
            "QA-model calls (each may serve several questions)",
            value=now["qa_batches"],
        )
        yield CounterMetricFamily(
            "rag_qa_model_questions",
            "Questions whose windows the QA model ran",
            value=now["qa_batched_questions"],
        )
        rejected = CounterMetricFamily(
            "rag_rejected_requests", "Requests refused by a limit", labels=["reason"]
        )
        rejected.add_metric(["overloaded"], now["overloaded"])
        rejected.add_metric(["rate_limited"], now["rate_limited"])
        yield rejected


class Metrics:
    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "rag_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rag_http_request_seconds",
            "HTTP request latency by route template",
            ["route", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.answers = Counter(
            "rag_answers", "Questions answered or abstained on", ["outcome"], registry=self.registry
        )
        self.scores = Histogram(
            "rag_reader_score",
            "Score of the best verified candidate of each question",
            buckets=_SCORE_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(ServiceCollector(read))

    def observe_answer(self, result: AskResult) -> None:
        self.answers.labels("abstained" if result.abstained else "answered").inc()
        best = result.answer if result.answer is not None else result.rejected
        if best is not None:
            self.scores.observe(best.score)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", ()) if k == b"x-request-id"), b"")
        text = given.decode("latin-1")
        rid = text if _SAFE_ID.fullmatch(text) else uuid.uuid4().hex
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500
        retry_after: int | None = None  # what a refused client was told to wait (logged)

        async def send_with_id(message: Message) -> None:
            nonlocal status, retry_after
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for k, v in message.get("headers", []):
                    if k.lower() == b"retry-after" and v.isdigit():
                        retry_after = int(v)
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route, method = _route(scope), str(scope.get("method", ""))
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(seconds)
            client = scope.get("client")
            log.info(
                "%s %s %d",
                method,
                route,
                status,
                extra={
                    "fields": {
                        "method": method,
                        "route": route,
                        "status": status,
                        "ms": round(seconds * 1000, 2),
                        "peer": client[0] if client else None,
                        "retry_after": retry_after,
                    }
                },
            )
            logs.request_id.reset(token)
