"""Request ids, metrics and what the logs may hold, on the real index and models."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag.api import create_app
from rag.config import Settings
from rag.logs import JsonFormatter, request_id
from rag.pipeline import Pipeline

pytestmark = pytest.mark.slow

QUESTION = "What is the CTS reference of the Home Office letter?"


def _client(settings: Settings, pipeline: Pipeline, **overrides: object) -> TestClient:
    update = {"rate_limit_per_minute": 0, **overrides}
    return TestClient(create_app(settings.model_copy(update=update), pipeline=pipeline))


@pytest.fixture(scope="module")
def client(settings: Settings, heuristic_pipeline: Pipeline) -> Iterator[TestClient]:
    with _client(settings, heuristic_pipeline) as c:
        yield c


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    made = client.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    kept = client.get("/healthz", headers={"X-Request-ID": "abc-123.x_y"})
    assert kept.headers["x-request-id"] == "abc-123.x_y"
    replaced = client.get("/healthz", headers={"X-Request-ID": "a b <script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    missing = client.get("/v1/documents/nope")  # errors too
    assert missing.status_code == 404 and missing.headers["x-request-id"]


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    raise AssertionError(f"no {name} {labels} in:\n{text}")


def test_metrics_count_requests_answers_scores_and_the_index(
    client: TestClient, heuristic_pipeline: Pipeline
) -> None:
    assert client.post("/v1/ask", json={"question": QUESTION}).status_code == 200
    client.post("/v1/ask", json={"question": "What is the boiling point of mercury?"})
    client.get("/v1/documents/nope")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert _metric(text, "rag_http_requests_total", route="/v1/ask", status="200") >= 2
    # By route template, never by raw path: one series for every document id.
    assert _metric(text, "rag_http_requests_total", route="/v1/documents/{document_id:path}") >= 1
    assert "nope" not in text
    answered = _metric(text, "rag_answers_total", outcome="answered")
    abstained = _metric(text, "rag_answers_total", outcome="abstained")
    assert answered + abstained >= 2
    assert _metric(text, "rag_reader_score_count") >= 1
    assert _metric(text, "rag_http_request_seconds_count", route="/v1/ask") >= 2
    version = heuristic_pipeline.index.version
    assert _metric(text, "rag_index_info", version=version) == 1
    assert _metric(text, "rag_ask_queue_depth") == 0
    # The queue the wait budget allows at the measured pace, and that pace itself.
    assert _metric(text, "rag_ask_service_seconds") > 0
    assert _metric(text, "rag_ask_queue_limit") >= 1
    assert _metric(text, "rag_ask_in_flight") == 0
    assert _metric(text, "rag_rejected_requests_total", reason="overloaded") == 0
    # The heuristic reader has no QA model: no model calls, but the series exist.
    assert _metric(text, "rag_qa_model_calls_total") == 0
    assert _metric(text, "rag_qa_model_questions_total") == 0


def _ask_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "rag.ask"]


def test_questions_are_not_logged_unless_asked_for(
    settings: Settings, heuristic_pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO), _client(settings, heuristic_pipeline) as c:
        c.post("/v1/ask", json={"question": QUESTION})
    [record] = _ask_records(caplog)
    assert "question" not in record.fields  # type: ignore[attr-defined]
    assert "CTS reference" not in caplog.text
    assert all("CTS reference" not in json.dumps(getattr(r, "fields", {})) for r in caplog.records)

    caplog.clear()
    with (
        caplog.at_level(logging.INFO),
        _client(settings, heuristic_pipeline, log_questions=True) as c,
    ):
        c.post("/v1/ask", json={"question": QUESTION})
    [record] = _ask_records(caplog)
    assert record.fields["question"] == QUESTION  # type: ignore[attr-defined]


def test_log_lines_are_json_with_the_request_id() -> None:
    token = request_id.set("req-1")
    try:
        record = logging.LogRecord("rag.ask", logging.INFO, __file__, 1, "answered", None, None)
        record.fields = {"score": 0.4, "bad": "\ud800"}
        text = JsonFormatter().format(record)
    finally:
        request_id.reset(token)
    text.encode("utf-8")  # a lone surrogate cannot break the log stream
    line = json.loads(text)
    assert line["request_id"] == "req-1" and line["message"] == "answered"
    assert line["level"] == "info" and line["score"] == 0.4
