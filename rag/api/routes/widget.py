"""The embeddable chat widget (``/widget.js``) and a page that demonstrates it (``/demo``).

Site owners embed the service with one tag::

    <script src="https://rag.example.org/widget.js" defer></script>

The script finds the API from its own ``src``; the service lists the sites allowed to
call it in ``RAG_CORS_ORIGINS``.
"""

from __future__ import annotations

import hashlib
from functools import cache
from html import escape
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["widget"])


@cache
def _static(name: str) -> bytes:
    """A packaged static file, read once per process (it changes only with a release)."""
    return (STATIC / name).read_bytes()


@cache
def _etag(name: str) -> str:
    # Weak: the same tag serves the gzipped and the plain bytes.
    return 'W/"' + hashlib.sha256(_static(name)).hexdigest()[:32] + '"'


@router.get(
    "/widget.js",
    summary="The chat widget script, to embed with one <script> tag",
    response_class=Response,
    responses={200: {"content": {"application/javascript": {}}}},
)
def widget_js(request: Request) -> Response:
    body, etag = _static("widget.js"), _etag("widget.js")
    headers = {
        "Cache-Control": "public, max-age=3600",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
    }
    if etag[2:] in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/javascript; charset=utf-8", headers=headers)


@router.get("/demo", summary="A page that embeds the chat widget", response_class=HTMLResponse)
def demo(request: Request) -> HTMLResponse:
    root = str(request.scope.get("root_path", "")).rstrip("/")
    base = str(request.base_url)  # ends with "/", includes the root path
    page = (
        _static("demo.html")
        .decode()
        .replace("{{widget_src}}", escape(f"{root}/widget.js"))
        .replace("{{embed_src}}", escape(f"{base}widget.js"))
    )
    return HTMLResponse(page, headers={"Cache-Control": "no-cache"})
