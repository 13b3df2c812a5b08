"""Hostile but fair requests through FastAPI's test client, on the real index and models."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.api.limits import AskGate
from rag.config import Settings
from rag.pipeline import Pipeline

pytestmark = pytest.mark.slow

QUESTION = "What is the CTS reference of the Home Office letter?"


@pytest.fixture(scope="module")
def client(settings: Settings, heuristic_pipeline: Pipeline) -> Iterator[TestClient]:
    app = create_app(
        settings.model_copy(update={"rate_limit_per_minute": 0, "max_body_bytes": 4096}),
        pipeline=heuristic_pipeline,
    )
    with TestClient(app) as c:
        yield c


def _error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["error"]["code"] == code, body
    return body["error"]


def test_a_body_over_the_limit_is_refused_with_413(client: TestClient) -> None:
    padding = "x" * 10_000
    r = client.post("/v1/ask", json={"question": QUESTION, "pad": padding})
    assert "4,096 bytes" in _error(r, 413, "body_too_large")["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it is read
        yield b'{"question": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}'

    r = client.post("/v1/ask", content=chunks(), headers={"Content-Type": "application/json"})
    _error(r, 413, "body_too_large")
    assert client.post("/v1/ask", json={"question": QUESTION}).status_code == 200


@pytest.mark.parametrize(
    "raw",
    [
        b'{"question": "who \\ud800 wrote"}',  # a lone surrogate: half an emoji
        b'{"question": "who \\udfff wrote the letter?"}',
        b'{"question": "ok", "\\ud800": 1}',  # in a field name, echoed in the details
        b'{"question": "ok", "filters": {"documents": ["\\ud800"]}}',
    ],
)
def test_invalid_text_is_a_422_and_the_connection_lives_on(client: TestClient, raw: bytes) -> None:
    r = client.post("/v1/ask", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in {"invalid_question", "validation_error", "invalid_filter"}
    assert client.get("/healthz").status_code == 200


def test_trace_is_405_with_allow(client: TestClient) -> None:
    r = client.request("TRACE", "/v1/ask")
    _error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "POST"
    r = client.request("TRACE", "/v1/documents")
    assert r.status_code == 405 and r.headers["allow"] == "GET"


def test_the_view_route_documents_its_errors_as_json(client: TestClient) -> None:
    responses = client.get("/openapi.json").json()["paths"]["/v1/documents/{document_id}/view"][
        "get"
    ]["responses"]
    assert list(responses["200"]["content"]) == ["text/html"]
    for status in ("404", "422", "503"):
        assert list(responses[status]["content"]) == ["application/json"], status
    r = client.get("/v1/documents/nope/view")
    _error(r, 404, "unknown_document")


def test_swagger_ui_is_served_locally(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    urls = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    urls += re.findall(r"""url:\s*['"]([^'"]+)['"]""", page.text)
    assert urls and not [u for u in urls if "//" in u], urls  # nothing from another host
    for url in urls:
        r = client.get(url)
        assert r.status_code == 200, url
    assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text


def test_past_the_gate_a_question_gets_a_fast_503_with_retry_after(
    client: TestClient,
) -> None:
    app = client.app
    gate = app.state.ask_gate  # type: ignore[attr-defined]
    app.state.ask_gate = AskGate(concurrency=1, queue=0, timeout=30)  # type: ignore[attr-defined]
    entered, release = threading.Event(), threading.Event()

    async def hold() -> None:  # a question being answered, as long as the test wants
        import asyncio

        async with app.state.ask_gate.slot():  # type: ignore[attr-defined]
            entered.set()
            while not release.is_set():
                await asyncio.sleep(0.01)

    assert client.portal is not None
    held = client.portal.start_task_soon(hold)
    try:
        assert entered.wait(10)
        r = client.post("/v1/ask", json={"question": QUESTION})
        error = _error(r, 503, "overloaded")
        assert r.headers["retry-after"] == "1" and "busy" in error["message"]
    finally:
        release.set()
        held.result(timeout=10)
    try:
        assert client.post("/v1/ask", json={"question": QUESTION}).status_code == 200
    finally:
        app.state.ask_gate = gate  # type: ignore[attr-defined]


def test_a_cross_origin_refusal_carries_cors_headers_and_preflights_are_free(
    settings: Settings, heuristic_pipeline: Pipeline
) -> None:
    origin = "https://council.example"
    app = create_app(
        settings.model_copy(update={"rate_limit_per_minute": 2, "cors_origins": [origin]}),
        pipeline=heuristic_pipeline,
    )
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    with TestClient(app) as c:
        for _ in range(5):  # answered by the CORS layer: no part of the budget
            assert c.options("/v1/ask", headers=preflight).status_code == 200
        statuses = [c.get("/v1/documents", headers={"Origin": origin}) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    refused = statuses[-1]
    assert refused.headers["access-control-allow-origin"] == origin  # the page can read it
    assert refused.json()["error"]["code"] == "rate_limited"
