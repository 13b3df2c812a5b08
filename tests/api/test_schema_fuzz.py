"""Schema-generated requests (schemathesis) against the app on the real index and models.

Every operation of the OpenAPI schema gets generated requests, valid and invalid: none
may be a server error, and every response must match what the schema says (status
codes, content types, bodies, headers). Hypothesis runs derandomized, so a run is
repeatable; over 1,000 requests in all.

Left out is schemathesis' guess that every schema-valid request must succeed
(``positive_data_acceptance``): a well-formed but unknown document id in ``filters``, or
``date_from`` after ``date_to``, is a documented 422 that no JSON Schema can express.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode

from rag.api import create_app
from rag.config import Settings
from rag.pipeline import Pipeline

pytestmark = pytest.mark.slow

#: Requests at most per operation and generation mode (an operation without parameters
#: exhausts its inputs at once, and has no invalid ones).
EXAMPLES = {GenerationMode.POSITIVE: 250, GenerationMode.NEGATIVE: 150}
#: Operations in the schema (without the admin routes, off when RAG_ADMIN_TOKEN is unset).
OPERATIONS = 9


@pytest.fixture(scope="module")
def api_schema(settings: Settings, heuristic_pipeline: Pipeline) -> Any:
    app = create_app(
        settings.model_copy(update={"rate_limit_per_minute": 0, "ask_queue": 64}),
        pipeline=heuristic_pipeline,
    )
    app.state.service.set_pipeline(heuristic_pipeline)  # no lifespan under the ASGI transport
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_server_errors_and_responses_match_the_schema(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == OPERATIONS, [op.label for op in operations]
    sent: dict[str, int] = {}
    for operation in operations:
        for mode, examples in EXAMPLES.items():

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
            )
            def check(case: Any) -> None:
                sent[case.operation.label] = sent.get(case.operation.label, 0) + 1
                case.call_and_validate(excluded_checks=[positive_data_acceptance])

            try:
                check()
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to break
    assert sum(sent.values()) >= 1000, sent
