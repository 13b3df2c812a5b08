"""Structured logs for the service: one JSON object a line, with the request id.

``rag serve`` logs this way. Each line holds ``ts``, ``level``, ``logger``, ``message``,
the ``request_id`` of the request being served (also sent back in ``X-Request-ID``)
and any fields passed as ``extra={"fields": {...}}``. Question text is never logged
unless ``RAG_LOG_QUESTIONS=true``: the subject matter may be sensitive.
"""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

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


#: ``logging.config.dictConfig`` for the service; uvicorn applies it in every worker.
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "rag.logs.JsonFormatter"}},
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
        }
    },
    "root": {"handlers": ["stderr"], "level": "INFO"},
    "loggers": {
        **{
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
        "bm25s": {"level": "WARNING"},
    },
}


def configure_json_logging() -> None:
    """Every logger, uvicorn's included, writes JSON lines to stderr."""
    logging.config.dictConfig(LOG_CONFIG)
