"""The service's loaded state: the pipeline once ready, or why it is not.

Loading takes seconds (index verification, three models), so it runs in a background
thread started by the app's lifespan: ``/healthz`` answers at once, ``/readyz`` and the
question routes answer 503 with the reason until the pipeline is ready.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from rag.errors import IndexNotFoundError, RagError
from rag.pipeline import Pipeline

log = logging.getLogger(__name__)


class NotReadyError(RagError):
    code = "not_ready"


class RateLimitedError(RagError):
    code = "rate_limited"


class ServiceState:
    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self.error: RagError | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        #: Questions are answered one at a time: two CPU cores gain nothing from
        #: running several model passes at once, and it keeps latency predictable.
        self.ask_lock = threading.Lock()

    def start_loading(self, load: Callable[[], Pipeline]) -> None:
        def run() -> None:
            started = time.perf_counter()
            try:
                self.pipeline = load()
                log.info("service ready in %.1f s", time.perf_counter() - started)
            except RagError as exc:
                self.error = exc
                log.error("service not ready: %s", exc)
            except Exception as exc:  # never leave the service silently half-loaded
                self.error = RagError(f"loading failed: {exc.__class__.__name__}: {exc}")
                log.exception("loading failed")
            finally:
                self._ready.set()

        self._thread = threading.Thread(target=run, name="rag-loader", daemon=True)
        self._thread.start()

    def set_pipeline(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._ready.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def require(self) -> Pipeline:
        if self.pipeline is not None:
            return self.pipeline
        if self.error is not None:
            if isinstance(self.error, IndexNotFoundError):
                raise NotReadyError(f"{self.error}") from None
            raise NotReadyError(f"the service could not load: {self.error}") from None
        raise NotReadyError("the service is still loading the index and models; retry shortly")


class RateLimiter:
    """At most ``per_minute`` requests per client in any sliding minute (0 disables)."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        if self.per_minute <= 0:
            return
        now = time.monotonic()
        with self._lock:
            times = self._seen[client]
            while times and now - times[0] > 60.0:
                times.popleft()
            if len(times) >= self.per_minute:
                raise RateLimitedError(
                    f"rate limit reached: {self.per_minute} questions a minute; retry shortly"
                )
            times.append(now)
