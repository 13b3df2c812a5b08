"""The source view: one document as a page, a cited span highlighted and scrolled to.

The chat widget links every citation here. Everything taken from the document (its text,
title, metadata) is HTML-escaped; the page runs one inline script of its own, allowed by
hash in a Content-Security-Policy that forbids every other script.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from html import escape

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response

from rag.api.deps import PipelineDep
from rag.api.errors import error_response
from rag.api.schemas import ErrorResponse
from rag.types import Document

router = APIRouter(prefix="/v1/documents", tags=["documents"])

_SCRIPT = (
    'const m=document.getElementById("answer");'
    'if(m){m.scrollIntoView({block:"center"});m.focus({preventScroll:true});}'
)

_STYLE = """
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0;background:#f6f7f9;color:#1b1f24;
font:17px/1.6 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{position:sticky;top:0;z-index:1;background:#f6f7f9;border-bottom:1px solid #d5d9df}
.bar,main{max-width:46rem;margin:0 auto;padding:.9rem 1.25rem}
main{padding-top:1.25rem;padding-bottom:40vh}
.kicker{margin:0;font-size:.8rem;letter-spacing:.04em;text-transform:uppercase;color:#4a5360}
h1{margin:.1rem 0 .2rem;font-size:1.35rem;line-height:1.25}
.meta{margin:0;color:#3d4550;font-size:.95rem}
.meta span+span::before{content:" · "}
.jump{margin:.2rem 0 0;font-size:.95rem}
a{color:#0b4fa8}
a:focus-visible,mark:focus{outline:3px solid #0b4fa8;outline-offset:2px}
.doc{background:#fff;border:1px solid #d5d9df;border-radius:8px;padding:1.25rem 1.5rem;
white-space:pre-wrap;overflow-wrap:anywhere}
mark{background:#ffe066;color:#1b1f24;padding:.1em .05em;border-radius:2px;
scroll-margin-top:10rem}
""".strip()


def _csp_hash(source: str) -> str:
    digest = hashlib.sha256(source.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_csp_hash(_SCRIPT)}; style-src {_csp_hash(_STYLE)}; "
        "base-uri 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _human_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return value
    return f"{day.day} {day:%B %Y}"


def _json_error(description: str) -> dict[str, object]:
    ref = {"$ref": f"#/components/schemas/{ErrorResponse.__name__}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _invalid(param: str, message: str) -> Response:
    """The API's validation error for a query parameter, named as FastAPI names it."""
    field = f"query.{param}"
    return error_response(
        422,
        "validation_error",
        f"invalid request: {field}: {message}",
        [{"field": field, "message": message}],
    )


def render_view(doc: Document, start: int | None, end: int | None) -> str:
    """The page for ``doc`` with ``doc.text[start:end]`` in ``<mark id="answer">``."""
    text = doc.text
    title = escape(doc.title)
    meta: list[str] = []
    date = _human_date(doc.date)
    if date is not None:
        meta.append(f'<span><time datetime="{escape(doc.date or "")}">{escape(date)}</time></span>')
    authors = "; ".join(doc.metadata.authors)
    if authors:
        meta.append(f"<span>{escape(authors)}</span>")
    if start is not None and end is not None:
        page = doc.page_at(start)
        if page is not None:
            meta.append(f"<span>page {page}</span>")
    meta.append(f"<span>document <code>{escape(doc.id)}</code></span>")

    if start is None or end is None:
        jump = ""
        body = escape(text)
    else:
        jump = (
            f'<p class="jump"><a href="#answer">Jump to the highlighted passage</a> '
            f"(characters {start:,}\u2013{end:,} of {len(text):,})</p>"
        )
        body = (
            escape(text[:start])
            + '<mark id="answer" tabindex="-1">'
            + escape(text[start:end])
            + "</mark>"
            + escape(text[end:])
        )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title} \u2013 source</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f'<header>\n<div class="bar">\n<p class="kicker">Source document</p>\n<h1>{title}</h1>\n'
        f'<p class="meta">{"".join(meta)}</p>\n{jump}\n</div>\n</header>\n'
        f'<main>\n<div class="doc" aria-label="Document text">{body}</div>\n</main>\n'
        f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


@router.get(
    "/{document_id:path}/view",
    response_class=HTMLResponse,
    responses={
        200: {"content": {"text/html": {}}, "description": "The document as an HTML page"},
        # Errors are JSON, not the route's text/html: named by reference so that FastAPI
        # does not file them under the response class's media type.
        404: _json_error("Unknown document"),
        422: _json_error("Invalid span"),
        429: _json_error("Rate limited"),
        503: _json_error("Not ready"),
    },
    summary="One document as a page, with a character span highlighted and scrolled to",
)
def view_document(
    document_id: str,
    pipeline: PipelineDep,
    start: int | None = Query(default=None, description="Start offset of the span."),
    end: int | None = Query(default=None, description="End offset (exclusive)."),
) -> Response:
    doc = pipeline.index.document(document_id)  # 404 in the error shape when unknown
    if (start is None) != (end is None):
        missing = "end" if end is None else "start"
        return _invalid(missing, "start and end go together: give both or neither")
    if start is not None and end is not None:
        if start < 0:
            return _invalid("start", "must be at least 0")
        if end > len(doc.text):
            return _invalid("end", f"must be at most the document length ({len(doc.text)})")
        if start > end:
            return _invalid("start", "must not be greater than end")
    return HTMLResponse(render_view(doc, start, end), headers=_HEADERS)
