"""The API documentation page in a real Chromium that may reach nothing but the service."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_docs_render_offline(page: Any, api: Any) -> None:
    from playwright.sync_api import expect

    service = urlparse(api.base).netloc
    elsewhere: list[str] = []

    def only_the_service(route: Any) -> None:
        if urlparse(route.request.url).netloc == service:
            route.continue_()
        else:  # a CDN, a font host: the page must not need it
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_the_service)
    page.goto(api.base + "/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("rag")
    expect(page.locator(".opblock-summary-path", has_text="/v1/ask")).to_be_visible()
    assert elsewhere == []
