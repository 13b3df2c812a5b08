"""Structured logs for the service: one JSON object a line, with the request id.

``rag serve`` logs this way. Each line holds ``ts``, ``level``, ``logger``, ``message``,
the ``request_id`` of the request being served (also sent back in ``X-Request-ID``)
and any fields passed as ``extra={"fields": {...}}``. Question text is never logged
unless ``RAG_LOG_QUESTIONS=true``: the subject matter may be sensitive.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

#: The id of the request being handled in this context, if any.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return (
            json.dumps(line, ensure_ascii=False, default=str)
            .encode("utf-8", "backslashreplace")
            .decode("utf-8")
        )


def configure_json_logging(level: int = logging.INFO) -> None:
    """Every logger, uvicorn's included, writes JSON lines to stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("bm25s").setLevel(logging.WARNING)
