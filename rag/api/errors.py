"""Every error leaves the API in one shape: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.errors import (
    AdminAuthError,
    BodyTooLargeError,
    DocumentLoadError,
    IndexCorruptError,
    IndexIncompatibleError,
    IndexNotFoundError,
    InvalidDocumentIdError,
    InvalidFilterError,
    InvalidQuestionError,
    NotReadyError,
    OverloadedError,
    RagError,
    RateLimitedError,
    UnknownDocumentError,
)

log = logging.getLogger(__name__)

_STATUS: list[tuple[type[RagError], int]] = [
    (InvalidQuestionError, 422),
    (InvalidFilterError, 422),
    (InvalidDocumentIdError, 422),
    (DocumentLoadError, 422),
    (AdminAuthError, 401),
    (UnknownDocumentError, 404),
    (RateLimitedError, 429),
    (BodyTooLargeError, 413),
    (NotReadyError, 503),
    (OverloadedError, 503),
    (IndexNotFoundError, 503),
    (IndexCorruptError, 503),
    (IndexIncompatibleError, 503),
]


#: Index errors whose messages name server paths: the client gets this, the log the rest.
_INDEX_ERRORS = (IndexNotFoundError, IndexCorruptError, IndexIncompatibleError)


def _printable(value: object) -> object:
    """``value`` with lone surrogates escaped, so that it can always be encoded as UTF-8."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {str(_printable(k)): _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    return value


def error_response(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, object]] | None = None,
    *,
    retry_after: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    all_headers = dict(headers or {})
    if status in (429, 503):
        all_headers["Retry-After"] = str(retry_after if retry_after is not None else 5)
    return JSONResponse(
        status_code=status, content={"error": _printable(body)}, headers=all_headers or None
    )


def _validation_details(exc: RequestValidationError) -> tuple[str, str, list[dict[str, object]]]:
    details: list[dict[str, object]] = []
    malformed = False
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            malformed = True
        loc = [str(part) for part in err.get("loc", ()) if part != "body"]
        details.append({"field": ".".join(loc) or "body", "message": str(err.get("msg", ""))})
    if malformed:
        return "malformed_json", "the request body is not valid JSON", details
    kinds = {err.get("type") for err in exc.errors()}
    if (
        details
        and all(d["field"] == "question" for d in details)
        and kinds <= {"string_pattern_mismatch", "value_error"}
    ):
        # The schema's own checks of the question's text (blank, not text) say what the
        # pipeline's would: the same code for the same mistake.
        message = "the question is empty" if "string_pattern_mismatch" in kinds else None
        return "invalid_question", message or str(details[0]["message"]), details
    first = details[0] if details else {"field": "body", "message": "invalid"}
    return "validation_error", f"invalid request: {first['field']}: {first['message']}", details


def install(app: FastAPI) -> None:
    @app.exception_handler(RagError)
    async def _rag_error(request: Request, exc: RagError) -> JSONResponse:
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
        if status == 500:
            log.error("unhandled domain error: %s", exc)
            return error_response(500, exc.code, "the service failed to answer")
        if isinstance(exc, _INDEX_ERRORS):
            log.error("index unavailable: %s", exc)
            return error_response(
                status, exc.code, "the index is not available; see the service log"
            )
        retry_after = getattr(exc, "retry_after", None)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return error_response(status, exc.code, str(exc), retry_after=retry_after, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        code, message, details = _validation_details(exc)
        return error_response(400 if code == "malformed_json" else 422, code, message, details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        # The router's own headers (Allow on a 405) are part of the answer.
        headers = dict(exc.headers or {})
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "the service failed to answer")
