"""The HTTP API through FastAPI's test client, on the real index and models."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.config import Settings
from rag.pipeline import Pipeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(settings: Settings, pipeline: Pipeline) -> Iterator[TestClient]:
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 0}), pipeline=pipeline)
    with TestClient(app) as c:
        yield c


def _assert_error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "Traceback" not in response.text
    return body["error"]


def test_ask_returns_a_verified_citation(client: TestClient, pipeline: Pipeline) -> None:
    r = client.post(
        "/v1/ask", json={"question": "What is the CTS reference of the Home Office letter?"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {
        "question",
        "answer",
        "abstained",
        "passages",
        "timings_ms",
        "passages_read",
    }
    assert 1 <= body["passages_read"] <= pipeline.settings.read_passages
    assert body["abstained"] is False
    answer = body["answer"]
    doc = pipeline.index.documents[answer["document_id"]]
    assert doc.text[answer["start"] : answer["end"]] == answer["text"]
    sentence = answer["sentence"]
    assert doc.text[sentence["start"] : sentence["end"]] == sentence["text"]
    assert sentence["start"] <= answer["start"] and answer["end"] <= sentence["end"]
    assert answer["document_title"] == doc.title and answer["document_date"] == doc.date
    assert 0.0 <= answer["score"] <= 1.0
    assert len(body["passages"]) == 5
    for p in body["passages"]:
        pdoc = pipeline.index.documents[p["document_id"]]
        assert pdoc.text[p["start"] : p["end"]] == p["text"]
    assert body["timings_ms"]["total"] > 0


def test_off_topic_question_abstains_but_returns_passages(client: TestClient) -> None:
    r = client.post(
        "/v1/ask", json={"question": "What is the boiling point of mercury?", "top_k": 3}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["abstained"] is True and body["answer"] is None
    assert len(body["passages"]) == 3


def test_filters_restrict_documents_and_dates(client: TestClient) -> None:
    r = client.post(
        "/v1/ask",
        json={
            "question": "Who wrote to Lucy Allan?",
            "filters": {"documents": ["rudd-2016-10-24"]},
        },
    )
    assert r.status_code == 200
    assert {p["document_id"] for p in r.json()["passages"]} == {"rudd-2016-10-24"}
    r = client.post(
        "/v1/ask",
        json={"question": "Who was copied in?", "filters": {"date_from": "2016-01-01"}},
    )
    assert {p["document_id"] for p in r.json()["passages"]} == {"rudd-2016-10-24"}


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"question": ""}, 422, "invalid_question"),
        ({"question": "   \n\t "}, 422, "invalid_question"),
        ({"question": "why " * 400}, 422, "invalid_question"),
        ({"question": "ok?", "top_k": 0}, 422, "validation_error"),
        ({"question": "ok?", "top_k": 500}, 422, "validation_error"),
        ({"question": "ok?", "top_k": "five"}, 422, "validation_error"),
        ({}, 422, "validation_error"),
        ({"question": 42}, 422, "validation_error"),
        ({"question": "ok?", "unknown": 1}, 422, "validation_error"),
        ({"question": "ok?", "filters": {"documents": ["no-such-doc"]}}, 422, "invalid_filter"),
        ({"question": "ok?", "filters": {"date_from": "24/10/2016"}}, 422, "invalid_filter"),
        (
            {"question": "ok?", "filters": {"date_from": "2016-12-01", "date_to": "2016-01-01"}},
            422,
            "invalid_filter",
        ),
    ],
)
def test_bad_requests_get_one_error_shape(
    client: TestClient, payload: dict, status: int, code: str
) -> None:
    _assert_error(client.post("/v1/ask", json=payload), status, code)


def test_malformed_json_is_400(client: TestClient) -> None:
    r = client.post(
        "/v1/ask", content=b'{"question": ', headers={"Content-Type": "application/json"}
    )
    _assert_error(r, 400, "malformed_json")


def test_documents_list_and_one_document(client: TestClient, pipeline: Pipeline) -> None:
    r = client.get("/v1/documents")
    assert r.status_code == 200
    docs = {d["id"]: d for d in r.json()}
    assert set(docs) == set(pipeline.index.documents)
    rudd = docs["rudd-2016-10-24"]
    assert rudd["date"] == "2016-10-24"
    assert rudd["chars"] == len(pipeline.index.documents["rudd-2016-10-24"].text)
    assert {"id", "title", "date", "author", "recipients", "pages", "chars"} <= set(rudd)
    one = client.get("/v1/documents/rudd-2016-10-24").json()
    assert one["text"] == pipeline.index.documents["rudd-2016-10-24"].text
    assert one["references"] == ["M11295/16"]
    _assert_error(client.get("/v1/documents/nope"), 404, "unknown_document")


def test_health_ready_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["documents"] == 5
    assert ready["reranker"] == {"name": "none", "model_sha256": None}  # the default
    assert client.get("/docs").status_code == 200
    assert "/v1/ask" in client.get("/openapi.json").json()["paths"]
    _assert_error(client.get("/no/such/route"), 404, "not_found")


def test_service_without_index_answers_503(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings.model_copy(update={"index_dir": tmp_path / "missing"}))
    with TestClient(app) as c:
        app.state.service.wait(120)
        assert c.get("/healthz").status_code == 200
        err = _assert_error(c.get("/readyz"), 503, "not_ready")
        assert "rag index" in err["message"]
        _assert_error(c.post("/v1/ask", json={"question": "anything?"}), 503, "not_ready")


def test_rate_limit_answers_429(settings: Settings, pipeline: Pipeline) -> None:
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 1}), pipeline=pipeline)
    with TestClient(app) as c:
        assert c.post("/v1/ask", json={"question": "Who wrote to Lucy Allan?"}).status_code == 200
        r = c.post("/v1/ask", json={"question": "Who wrote to Lucy Allan?"})
        _assert_error(r, 429, "rate_limited")
        assert r.headers["retry-after"]


def test_cors_allows_only_configured_origins(settings: Settings, pipeline: Pipeline) -> None:
    app = create_app(
        settings.model_copy(update={"cors_origins": ["https://council.example"]}), pipeline=pipeline
    )
    with TestClient(app) as c:
        ok = c.options(
            "/v1/ask",
            headers={"Origin": "https://council.example", "Access-Control-Request-Method": "POST"},
        )
        assert ok.headers.get("access-control-allow-origin") == "https://council.example"
        bad = c.options(
            "/v1/ask",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in bad.headers
