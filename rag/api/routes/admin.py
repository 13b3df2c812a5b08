"""Admin routes, only when ``RAG_ADMIN_TOKEN`` is set: reindex, reload, upload a document.

Every call carries ``Authorization: Bearer <token>``; the token is compared in constant
time. Without the setting the routes do not exist (404), so nothing can be guessed.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from rag.api.deps import SettingsDep, StateDep
from rag.api.reindex import ReindexJob
from rag.api.schemas import ErrorResponse
from rag.config import Settings
from rag.errors import AdminAuthError, InvalidDocumentIdError
from rag.ingest import discover, document_id
from rag.ingest.loaders import decode_text, is_docx, is_pdf, load_bytes, looks_like_html

PREFIX = "/v1/admin"
UPLOADS = f"{PREFIX}/documents/"

_bearer = HTTPBearer(auto_error=False, description="The value of RAG_ADMIN_TOKEN.")


def enabled(settings: Settings) -> bool:
    """The admin routes exist only with a non-empty RAG_ADMIN_TOKEN."""
    return settings.admin_token is not None and bool(settings.admin_token.get_secret_value())


def require_admin(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    settings: Settings = request.app.state.settings
    token = settings.admin_token
    given = credentials.credentials if credentials is not None else ""
    if (
        token is None
        or not enabled(settings)
        or not hmac.compare_digest(
            given.encode("utf-8", "surrogatepass"), token.get_secret_value().encode("utf-8")
        )
    ):
        raise AdminAuthError("this route needs Authorization: Bearer <RAG_ADMIN_TOKEN>")


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (401, 413, 422, 429)
}

router = APIRouter(
    prefix=PREFIX, tags=["admin"], dependencies=[Depends(require_admin)], responses=_ERRORS
)


def get_job(request: Request) -> ReindexJob:
    job: ReindexJob = request.app.state.reindex
    return job


JobDep = Annotated[ReindexJob, Depends(get_job)]


@router.post(
    "/reindex",
    status_code=202,
    summary="Update the index from the corpus folder in the background",
)
def reindex(job: JobDep) -> dict[str, Any]:
    return job.start("requested")


@router.get("/reindex", summary="Progress and result of the latest reindex")
def reindex_status(job: JobDep) -> dict[str, Any]:
    return job.status()


@router.post("/reload", summary="Look for a newly published index now")
def reload(state: StateDep) -> dict[str, Any]:
    state.check_now()
    pipeline = state.pipeline
    return {"serving": pipeline.index.version if pipeline is not None else None}


#: A relative path of plain segments: letters, digits, ``.``, ``_``, ``-``; each segment
#: starts with a letter or digit (so no ``..``, no hidden files, no absolute paths).
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")
_MAX_ID = 200


def _suffix(data: bytes, content_type: str, source: str) -> str:
    if is_pdf(data):
        return ".pdf"
    if is_docx(data):
        return ".docx"
    if "markdown" in content_type:
        return ".md"
    return ".html" if looks_like_html(decode_text(data, source=source)) else ".txt"


def _save(settings: Settings, doc_id: str, data: bytes, content_type: str) -> dict[str, Any]:
    if len(doc_id) > _MAX_ID or not _ID.fullmatch(doc_id):
        raise InvalidDocumentIdError(
            f"invalid document id {doc_id!r}: use up to {_MAX_ID} letters, digits, '.', '_', "
            "'-' in '/'-separated segments that each start with a letter or digit"
        )
    suffix = _suffix(data, content_type, doc_id)
    # The same loaders and limits as a build: refused now rather than skipped later.
    load_bytes(
        data,
        source=doc_id,
        suffix=suffix,
        max_chars=settings.max_document_chars,
        max_zip_ratio=settings.max_zip_ratio,
    )
    corpus = Path(settings.corpus_dir)
    target = corpus / f"{doc_id}{suffix}"
    replaced = []
    if corpus.is_dir():
        for path in discover(corpus):  # the same id under another extension is replaced
            if document_id(path, corpus) == doc_id:
                replaced.append(path.relative_to(corpus).as_posix())
                if path != target:
                    path.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.upload")  # hidden: never discovered
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, target)
    return {
        "document_id": doc_id,
        "path": target.relative_to(corpus).as_posix(),
        "replaced": replaced,
    }


@router.put(
    "/documents/{document_id:path}",
    status_code=202,
    summary="Add or replace one document (text, Markdown, HTML, PDF or DOCX) and reindex",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file's bytes; its format is recognised from the content.",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def put_document(
    document_id: str, request: Request, settings: SettingsDep, job: JobDep
) -> dict[str, Any]:
    data = await request.body()  # at most RAG_MAX_FILE_BYTES (BodyLimitMiddleware)
    content_type = request.headers.get("content-type", "")
    saved = await asyncio.to_thread(_save, settings, document_id, data, content_type)
    return {**saved, "reindex": job.start(f"upload {document_id}")}
