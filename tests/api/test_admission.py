"""The default admission rule on the real app: people asking at once are answered in turn.

Real index, real heuristic pipeline, the app's own gate and error handling, through
httpx's ASGI transport. Nothing is timed.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from rag.api import create_app
from rag.api.limits import AskGate
from rag.api.routes import ask as ask_route
from rag.config import Settings
from rag.pipeline import Pipeline

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is the CTS reference of the Home Office letter?",
    "Who wrote to Lucy Allan?",
    "When was the letter to the council sent?",
    "What did the Home Office say about the review?",
]


def test_four_questions_at_once_with_one_slot_are_all_answered_under_the_defaults(
    settings: Settings, heuristic_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The defaults themselves: one question at a time, the queue sized by the wait budget.
    assert (settings.ask_concurrency, settings.ask_queue) == (1, None)
    assert settings.ask_queue_timeout_seconds is None
    for q in QUESTIONS:  # warm (the gate's own estimate starts from its prior)
        heuristic_pipeline.ask(q)
    app = create_app(settings, pipeline=heuristic_pipeline)
    gate: AskGate = app.state.ask_gate
    all_waiting = threading.Event()
    peak: list[int] = []
    answer = ask_route._ask

    def first_holds_until_the_others_queue(pipeline: Pipeline, body: object) -> object:
        # The first question is answered only once the three others wait for their turn,
        # so they really queue behind it (a deadline, not a speed requirement).
        if not all_waiting.is_set():
            deadline = time.monotonic() + 60
            while gate.waiting < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            peak.append(gate.waiting)
            all_waiting.set()
        return answer(pipeline, body)  # type: ignore[arg-type]

    monkeypatch.setattr(ask_route, "_ask", first_holds_until_the_others_queue)

    async def scenario() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://rag.test", timeout=120
            ) as http:
                asks = (http.post("/v1/ask", json={"question": q}) for q in QUESTIONS)
                return list(await asyncio.gather(*asks))

    responses = asyncio.run(scenario())
    assert peak == [3]  # one answering, three waiting at once
    assert [r.status_code for r in responses] == [200] * 4, [r.text for r in responses]
    assert all("passages" in r.json() for r in responses)
    assert (gate.rejected, gate.in_flight, gate.waiting) == (0, 0, 0)
    assert gate.service.measured == 4
