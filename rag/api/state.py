"""The service's loaded state: the pipeline being served, or why there is none.

Loading takes seconds (index verification, three models), so it runs in a background
thread: ``/healthz`` answers at once, ``/readyz`` and the question routes answer 503 with
the reason until a pipeline is ready.

The same thread then watches the index folder: every ``poll_seconds`` it reads where
``current`` points (one ``readlink``). When a new version is published it loads that
index beside the one being served, builds a pipeline that shares the loaded models, and
swaps it in with one reference assignment. A request holds the pipeline it started with
until it finishes, so in-flight requests complete on their version; the builder keeps the
newest versions on disk (``RAG_INDEX_KEEP_VERSIONS``), so none is deleted while it is
loaded. A service started before any index existed becomes ready by itself once one is
published. A version that fails to load is logged and skipped: the previous one stays.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rag.errors import IndexNotFoundError, NotReadyError, RagError
from rag.pipeline import Pipeline
from rag.store.index import Index
from rag.store.layout import current_target

log = logging.getLogger(__name__)

__all__ = ["NotReadyError", "ServiceState", "swap_index"]

#: Loads the first pipeline: the index and every model.
LoadPipeline = Callable[[], Pipeline]
#: A pipeline like the given one (same models) over the index published now.
SwapIndex = Callable[[Pipeline], Pipeline]


def swap_index(pipeline: Pipeline) -> Pipeline:
    """A pipeline over the live index, sharing ``pipeline``'s loaded models."""
    settings = pipeline.settings
    index = Index.from_settings(settings)
    return Pipeline(settings, dataclasses.replace(pipeline.components, index=index))


class ServiceState:
    def __init__(self) -> None:
        self.pipeline: Pipeline | None = None
        self.error: RagError | None = None
        #: Why the newest published version is not served (the previous one is), if so.
        self.reload_error: RagError | None = None
        self.loaded_at: float | None = None
        self.swaps = 0
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def start_loading(
        self,
        load: LoadPipeline,
        *,
        index_dir: Path | None = None,
        poll_seconds: float = 2.0,
        swap: SwapIndex = swap_index,
    ) -> None:
        """Load in the background; with ``index_dir``, then watch it for new versions."""

        def run() -> None:
            seen: str | None = current_target(index_dir) if index_dir is not None else None
            self._load(load, swap)
            self._ready.set()
            if index_dir is None:
                return
            while not self._stop.is_set():
                self._wake.wait(poll_seconds)
                self._wake.clear()
                if self._stop.is_set():
                    return
                target = current_target(index_dir)
                if target != seen and target is not None:
                    log.info("index published: current -> %s", target)
                    seen = target
                    self._load(load, swap)

        self._thread = threading.Thread(target=run, name="rag-index-watcher", daemon=True)
        self._thread.start()

    def check_now(self) -> None:
        """Look at ``current`` now instead of at the next poll (after a reindex)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def set_pipeline(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.loaded_at = time.time()
        self._ready.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    # -- loading -----------------------------------------------------------------------

    def _load(self, load: LoadPipeline, swap: SwapIndex) -> None:
        started = time.perf_counter()
        current = self.pipeline
        try:
            fresh = load() if current is None else swap(current)
        except RagError as exc:
            self._failed(current, exc)
            return
        except Exception as exc:  # never leave the service silently half-loaded
            log.exception("loading failed")
            self._failed(current, RagError(f"loading failed: {exc.__class__.__name__}: {exc}"))
            return
        if current is not None and fresh.index.path == current.index.path:
            return
        self.pipeline = fresh  # the swap: one reference assignment
        self.loaded_at = time.time()
        self.error = self.reload_error = None
        if current is not None:
            self.swaps += 1
        log.info(
            "serving index version %s (%d documents) after %.1f s",
            fresh.index.version,
            len(fresh.index.documents),
            time.perf_counter() - started,
        )

    def _failed(self, current: Pipeline | None, exc: RagError) -> None:
        if current is None:
            self.error = exc
            log.error("service not ready: %s", exc)
        else:
            self.reload_error = exc
            log.error(
                "new index version not loaded, still serving %s: %s", current.index.version, exc
            )

    # -- serving -----------------------------------------------------------------------

    def require(self) -> Pipeline:
        """The pipeline to answer one request with; hold on to it until the response.

        The reasons given never name server paths: the log has the full message.
        """
        pipeline = self.pipeline
        if pipeline is not None:
            return pipeline
        if self.error is not None:
            if isinstance(self.error, IndexNotFoundError):
                raise NotReadyError(
                    "no index has been built yet: build one with `rag index`; the service "
                    "loads it as soon as it is published"
                ) from None
            raise NotReadyError(
                f"the service could not load its index or models ({self.error.code}); see the "
                "service log; a newly published index is loaded automatically"
            ) from None
        raise NotReadyError("the service is still loading the index and models; retry shortly")
