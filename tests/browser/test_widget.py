"""The chat widget in a real Chromium, embedded in a page of another origin, against the
real service (real index, real models) running in uvicorn subprocesses.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from dataclasses import dataclass
from datetime import datetime
from html import escape
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: Tried in order; the first one the service answers is the one the widget is asked.
ANSWERABLE = [
    "By what date did the minister want a reply?",
    "How many children were sexually exploited in Rotherham?",
    "By what date will Louise Casey report?",
    "What is the phone number of Sarah Newton's office?",
]
OFF_TOPIC = "What is the boiling point of mercury?"
XSS_QUESTION = "What is the secret code?"
PAYLOADS = ['<img src=x onerror="window.__xss=2">', "<script>window.__xss=1</script>"]

#: Page styles that would wreck the widget if they reached it.
HOSTILE_CSS = """
* { color: red !important; font-size: 40px }
button { display: none }
div, p, section, form, input { border: 4px dashed lime !important; margin: 30px !important }
a { color: red }
"""

WIDGET_FN = """(what) => {
  const host = document.querySelector('rag-chat');
  const root = host && host.shadowRoot;
  if (what === 'active') {
    if (document.activeElement !== host || !root.activeElement) return null;
    return root.activeElement.id || root.activeElement.className;
  }
  if (what === 'xss') return window.__xss;
  return null;
}"""


def site_page(script_src: str, *, data: dict[str, str] | None = None, hostile: bool = True) -> str:
    attrs = "".join(f' data-{k}="{escape(v)}"' for k, v in (data or {}).items())
    style = f"<style>{HOSTILE_CSS}</style>" if hostile else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A site that embeds the widget</title>
{style}</head>
<body><main>
<h1>Council news</h1>
<p>An article on a site that embeds the question-answering widget.
<a id="probe-a" href="#top">A link of the page</a></p>
<ul id="probe-ul"><li>An item of the page</li></ul>
<p><mark id="probe-mark">Marked by the page</mark></p>
</main>
<script>window.__globalsBefore = Object.getOwnPropertyNames(window);</script>
<script src="{escape(script_src)}" defer{attrs}></script>
</body></html>"""


def ask_api(base: str, question: str) -> dict[str, Any]:
    r = httpx.post(base + "/v1/ask", json={"question": question}, timeout=120)
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    return body


def view_href(base: str, document_id: str, start: int, end: int) -> str:
    return f"{base}/v1/documents/{quote(document_id)}/view?start={start}&end={end}"


@pytest.fixture(scope="session")
def answered(api: Any) -> dict[str, Any]:
    """The API's own answer to the first question of ANSWERABLE that it answers."""
    for question in ANSWERABLE:
        body = ask_api(api.base, question)
        if body["answer"] is not None:
            return body
    pytest.fail(f"the service abstains on every question of {ANSWERABLE}")


def open_widget_by_keyboard(page: Any) -> None:
    launcher = page.locator("rag-chat .launcher")
    launcher.focus()
    page.keyboard.press("Enter")
    assert page.locator("rag-chat .panel").is_visible()


def ask_widget(page: Any, question: str) -> Any:
    """Type into the question box, press Enter, return the new reply card."""
    cards = page.locator("rag-chat .log > .card:not(.wait)")
    before = cards.count()
    page.locator("rag-chat input").fill(question)
    page.locator("rag-chat input").press("Enter")
    page.wait_for_function(
        """(n) => document.querySelector('rag-chat').shadowRoot
              .querySelectorAll('.log > .card:not(.wait)').length > n""",
        arg=before,
        timeout=90_000,
    )
    return cards.nth(before)


def visible_text(locator: Any) -> str:
    return str(locator.evaluate("(el) => el.textContent"))


def live_text(page: Any) -> str:
    return visible_text(page.locator("rag-chat [aria-live]"))


#: The widget's own question to the small corpus of the busy and starting services.
CANTEEN = "When will the canteen open?"


def ask_by_keyboard(page: Any, question: str) -> None:
    page.locator("rag-chat input").focus()
    page.keyboard.type(question)
    page.keyboard.press("Enter")


def held(page: Any) -> Any:
    """The card of a question waiting for a refusing service to take it."""
    return page.locator("rag-chat .log > .card.wait.held")


@dataclass
class Attempt:
    """One POST /v1/ask as the service logged it."""

    at: float  # when it reached the service (epoch seconds)
    status: int
    request_id: str
    retry_after: int | None = None  # what the refusal told the widget to wait


def log_size(service: Any) -> int:
    return int(service.log.stat().st_size)


def widget_attempts(service: Any, since: int, done: Any, timeout: float = 60) -> list[Attempt]:
    """The widget's questions in ``service``'s access log after byte ``since`` (every
    POST /v1/ask but the holder's and the probes'), once ``done(attempts)`` is true (a
    line is written just after its response)."""
    deadline = time.monotonic() + timeout
    while True:
        with service.log.open("rb") as f:
            f.seek(since)
            text = f.read().decode("utf-8", "replace")
        attempts = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            rid = str(entry.get("request_id", ""))
            if (
                entry.get("logger") != "rag.access"
                or entry.get("route") != "/v1/ask"
                or entry.get("method") != "POST"
                or rid.startswith(("hold-", "probe-"))
            ):
                continue
            ended = datetime.fromisoformat(entry["ts"]).timestamp()
            attempts.append(
                Attempt(
                    ended - entry["ms"] / 1000,
                    int(entry["status"]),
                    rid,
                    entry.get("retry_after"),
                )
            )
        if done(attempts) or time.monotonic() > deadline:
            return attempts


def refusal(service: Any, origin: str, rid: str) -> tuple[str, int]:
    """A real question to ``service`` from ``origin`` that must be refused: its error
    code and its Retry-After, which a page of ``origin`` may read."""
    r = httpx.post(
        service.base + "/v1/ask",
        json={"question": CANTEEN},
        headers={"Origin": origin, "X-Request-ID": rid},
        timeout=60,
    )
    assert r.status_code in (429, 503), r.text
    exposed = r.headers.get("access-control-expose-headers", "").lower()
    assert "retry-after" in exposed, r.headers
    return r.json()["error"]["code"], int(r.headers["retry-after"])


def assert_waited_as_asked(attempts: list[Attempt], retry_after: int) -> None:
    """Each attempt reached the service no sooner than the previous refusal's own
    Retry-After after that refusal arrived (the service's access log records both; a
    lower bound, which a slow machine only widens; 10 ms for the log's rounding). The
    wait a refusal asks follows the service's measured pace, so it is read per refusal;
    ``retry_after`` (a probe's) is only the fallback for a line without one."""
    gaps = [
        (b.at - a.at, a.retry_after if a.retry_after is not None else retry_after)
        for a, b in pairwise(attempts)
    ]
    assert gaps and all(gap >= asked - 0.01 for gap, asked in gaps), gaps


# ---------------------------------------------------------------------------------------


def test_answer_on_a_site_of_another_origin(
    browser: Any,
    context: Any,
    page: Any,
    api: Any,
    site: Any,
    answered: dict[str, Any],
    axe: Any,
    screenshots: Path,
) -> None:
    from playwright.sync_api import expect

    url = site.add(
        "/news.html", site_page(api.base + "/widget.js", data={"title": "Ask the letters"})
    )
    page.goto(url)
    launcher = page.get_by_role("button", name="Ask the letters")
    expect(launcher).to_be_visible()  # the page's `button{display:none}` does not reach it
    expect(launcher).to_have_attribute("aria-expanded", "false")

    # Nothing global but the custom element; page styles unchanged by the widget's own.
    new_globals = page.evaluate(
        "() => Object.getOwnPropertyNames(window).filter(n => !window.__globalsBefore.includes(n))"
    )
    assert new_globals == ["__globalsBefore"]  # the page's own snapshot, nothing of ours
    assert page.evaluate("() => typeof customElements.get('rag-chat')") == "function"
    probe = page.evaluate(
        """() => ({
          a: getComputedStyle(document.getElementById('probe-a')).color,
          ul: getComputedStyle(document.getElementById('probe-ul')).paddingLeft,
          mark: getComputedStyle(document.getElementById('probe-mark')).backgroundColor,
        })"""
    )
    assert probe == {"a": "rgb(255, 0, 0)", "ul": "40px", "mark": "rgb(255, 255, 0)"}

    # Keyboard only: focus the launcher, Enter opens, focus moves to the question box.
    open_widget_by_keyboard(page)
    expect(launcher).to_have_attribute("aria-expanded", "true")
    assert page.evaluate(WIDGET_FN, "active") == "q"

    answer = answered["answer"]
    page.keyboard.type(answered["question"])
    page.keyboard.press("Enter")
    card = page.locator("rag-chat .log > article.card").last
    expect(card.locator(".answer")).to_be_visible(timeout=90_000)

    # What the widget shows is what the API returned for the same question.
    assert visible_text(card.locator(".answer")) == answer["text"]
    assert visible_text(card.locator("blockquote")) == answer["sentence"]["text"]
    assert visible_text(card.locator("blockquote mark")) == answer["text"]
    assert visible_text(card.locator(".src .t")) == answer["document_title"]
    if answer["document_date"]:
        expect(card.locator("time")).to_have_attribute("datetime", answer["document_date"])
        expect(card.locator("time")).to_be_visible()
    link = card.get_by_role("link", name="Open the source, highlighted")
    href = link.get_attribute("href")
    assert href == view_href(api.base, answer["document_id"], answer["start"], answer["end"])
    expect(page.locator("rag-chat [aria-live]")).to_contain_text(answer["text"])

    # Page styles did not leak in.
    style = card.locator(".answer").evaluate(
        "(el) => [getComputedStyle(el).color, getComputedStyle(el).fontSize]"
    )
    assert style == ["rgb(17, 24, 39)", "21px"]
    # The input keeps focus for the next question.
    assert page.evaluate(WIDGET_FN, "active") == "q"

    page.screenshot(path=str(screenshots / "widget-foreign-site.png"))
    assert axe(page) == []

    # The source opens with the span highlighted and scrolled into view.
    with context.expect_page() as opened:
        link.click()
    view = opened.value
    view.wait_for_load_state()
    mark = view.locator("mark#answer")
    assert visible_text(mark) == answer["text"]
    expect(mark).to_be_in_viewport()
    expect(view.locator("h1")).to_have_text(answer["document_title"])
    geometry = view.evaluate(
        """() => { const r = document.getElementById('answer').getBoundingClientRect();
                   return {top: r.top + scrollY, vh: innerHeight, y: scrollY}; }"""
    )
    if geometry["top"] > geometry["vh"]:
        assert geometry["y"] > 0
    view.screenshot(path=str(screenshots / "view-page.png"))
    assert axe(view) == []
    view.close()

    # Escape closes and gives focus back to the launcher; Enter reopens, answer kept.
    page.bring_to_front()
    page.locator("rag-chat input").focus()
    page.keyboard.press("Escape")
    expect(page.locator("rag-chat .panel")).to_be_hidden()
    expect(launcher).to_have_attribute("aria-expanded", "false")
    assert page.evaluate(WIDGET_FN, "active") == "launcher"
    page.keyboard.press("Enter")
    assert page.evaluate(WIDGET_FN, "active") == "q"
    assert visible_text(page.locator("rag-chat .answer").last) == answer["text"]

    # The conversation survives a reload of the page (sessionStorage of the tab).
    page.reload()
    page.locator("rag-chat .launcher").click()
    assert visible_text(page.locator("rag-chat .answer").last) == answer["text"]


def test_demo_page_answer_and_abstention(
    page: Any, api: Any, answered: dict[str, Any], axe: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    off_topic = ask_api(api.base, OFF_TOPIC)
    assert off_topic["abstained"] and off_topic["answer"] is None

    page.goto(api.base + "/demo")
    open_widget_by_keyboard(page)
    card = ask_widget(page, answered["question"])
    assert visible_text(card.locator(".answer")) == answered["answer"]["text"]
    page.screenshot(path=str(screenshots / "widget-answer.png"))
    assert axe(page) == []

    card = ask_widget(page, OFF_TOPIC)
    expect(card.locator(".none")).to_have_text("The documents don't answer this.")
    expect(card).to_contain_text("You may want to read")
    expect(page.locator("rag-chat [aria-live]")).to_contain_text("don't answer this")
    links = card.locator("li a")
    expected = off_topic["passages"][:3]
    assert links.count() == len(expected) > 0
    for i, passage in enumerate(expected):
        link = links.nth(i)
        assert visible_text(link).startswith(passage["document_title"])
        href = link.get_attribute("href")
        assert href == view_href(api.base, passage["document_id"], passage["start"], passage["end"])
        html = httpx.get(href, timeout=30).text
        assert f'<mark id="answer" tabindex="-1">{escape(passage["text"])}</mark>' in html
    page.screenshot(path=str(screenshots / "widget-abstention.png"))
    assert axe(page) == []


def test_no_script_runs_from_document_text(
    context: Any, page: Any, xss_api: Any, site: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    body = ask_api(xss_api.base, XSS_QUESTION)
    shown = [body["answer"]["sentence"]["text"]] if body["answer"] else []
    shown += [p["text"] for p in body["passages"][:3]]
    assert any(all(p in text for p in PAYLOADS) for text in shown), body

    page.goto(site.add("/xss.html", site_page(xss_api.base + "/widget.js")))
    open_widget_by_keyboard(page)
    card = ask_widget(page, XSS_QUESTION)
    page.wait_for_timeout(500)  # time for an onerror to fire, were there an <img>
    assert page.evaluate(WIDGET_FN, "xss") is None
    text = visible_text(card)
    assert all(p in text for p in PAYLOADS), text
    expect(card.get_by_text(PAYLOADS[0], exact=False).first).to_be_visible()
    assert card.locator("img, script").count() == 0
    page.screenshot(path=str(screenshots / "widget-xss.png"))

    link = card.locator("a").first
    with context.expect_page() as opened:
        link.click()
    view = opened.value
    view.wait_for_load_state()
    view.wait_for_timeout(300)
    assert view.evaluate("() => window.__xss") is None
    assert view.evaluate("() => document.querySelectorAll('img').length") == 0
    assert view.evaluate("() => document.scripts.length") == 1  # the page's own
    doc_text = visible_text(view.locator(".doc"))
    assert all(p in doc_text for p in PAYLOADS)


def test_service_unreachable(page: Any, api: Any, site: Any, closed_port: int) -> None:
    from playwright.sync_api import expect

    src = api.base + "/widget.js"
    page.goto(
        site.add("/down.html", site_page(src, data={"api": f"http://127.0.0.1:{closed_port}/"}))
    )
    open_widget_by_keyboard(page)
    card = ask_widget(page, "Who wrote the letter?")
    expect(card).to_have_class("card err")
    expect(card).to_contain_text("unreachable")
    expect(page.locator("rag-chat [aria-live]")).to_contain_text("unreachable")
    # The question is back in the box: Enter asks it again.
    expect(page.locator("rag-chat input")).to_have_value("Who wrote the letter?")


def test_rate_limited(page: Any, limited_api: Any, site: Any) -> None:
    """A real 429 from the real rate limiter (two requests a minute: widget.js and one
    question): waited for, with its own words, while the wait fits; cancelled; then given
    up at once when the service asks for more than the widget may wait."""
    from playwright.sync_api import expect

    page.goto(
        site.add(
            "/limited.html",
            site_page(limited_api.base + "/widget.js", data={"max-wait": "120"}),
        )
    )
    open_widget_by_keyboard(page)
    first = ask_widget(page, "When will the canteen open?")
    expect(first).not_to_have_class("card err")

    # The second in a minute: 429, whose Retry-After (the rest of the minute) fits in 120 s.
    ask_by_keyboard(page, "When will the office move?")
    expect(held(page)).to_contain_text("rate limited", timeout=30_000)
    expect(held(page)).to_contain_text(re.compile(r"asking again in \d+ s"))
    expect(page.locator("rag-chat [aria-live]")).to_contain_text("rate limited")
    held(page).get_by_role("button", name="Stop waiting").click()
    stopped = page.locator("rag-chat .log > .card.note").last
    expect(stopped).to_contain_text("You stopped waiting")

    # Waiting as asked would pass the bound (0: never wait): an error that says so, at once.
    page.locator("rag-chat").evaluate("(el) => { el.dataset.maxWait = '0'; }")
    second = ask_widget(page, "When will the office move?")
    expect(second).to_have_class("card err")
    expect(second).to_contain_text(
        re.compile(r"the service is rate limited and asks to wait \d+ s\. Please try again then")
    )
    expect(page.locator("rag-chat [aria-live]")).to_contain_text("rate limited")


def test_data_attributes_and_service_not_ready(page: Any, unready_api: Any, site: Any) -> None:
    from playwright.sync_api import expect

    data = {
        "title": "Help desk",
        "placeholder": "Type here",
        "accent": "#ffe14d",  # too light for white text: the widget picks black
        "position": "bottom-left",
        "open": "true",
        "max-wait": "0",  # never wait: the error at once
    }
    page.goto(site.add("/unready.html", site_page(unready_api.base + "/widget.js", data=data)))
    launcher = page.get_by_role("button", name="Help desk")
    expect(launcher).to_have_attribute("aria-expanded", "true")
    expect(page.locator("rag-chat .panel")).to_be_visible()
    assert page.evaluate(WIDGET_FN, "active") is None  # opening on load steals no focus
    assert launcher.bounding_box()["x"] < 100
    expect(page.locator("rag-chat h2")).to_have_text("Help desk")
    expect(page.locator("rag-chat input")).to_have_attribute("placeholder", "Type here")
    colours = page.locator("rag-chat .head").evaluate(
        "(el) => [getComputedStyle(el).backgroundColor, getComputedStyle(el).color]"
    )
    assert colours == ["rgb(255, 225, 77)", "rgb(0, 0, 0)"]

    card = ask_widget(page, "Who wrote the letter?")  # a real 503: the index is missing
    expect(card).to_contain_text("The service is starting: its documents are not loaded yet")
    expect(card).to_contain_text("no index has been built yet")  # the service's reason


# ---------------------------------------------------------------------------------------
# A busy or starting service is waited for (a real service held busy, not a mocked fetch)
# ---------------------------------------------------------------------------------------


def test_a_busy_service_is_waited_for_and_then_answers(
    page: Any, busy_api: Any, holder: Any, site: Any, axe: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    holder.start()  # the one question slot taken, no queue: 503 overloaded for anyone else
    code, retry_after = refusal(busy_api, site.origin, "probe-busy")
    assert code == "overloaded" and retry_after >= 1
    since = log_size(busy_api)
    data = {"max-wait": "300"}  # the holder's last question must finish first: no hurry
    page.goto(site.add("/busy.html", site_page(busy_api.base + "/widget.js", data=data)))
    open_widget_by_keyboard(page)
    ask_by_keyboard(page, CANTEEN)

    # Busy, not "starting" and not an error: queued, with the time of the next attempt.
    card = held(page)
    expect(card).to_contain_text(
        "The service is busy answering other questions. Your question is queued",
        timeout=30_000,
    )
    expect(card).to_contain_text(re.compile(r"asking again( in \d+ s)?…"))
    expect(card.get_by_role("button", name="Stop waiting")).to_be_visible()
    expect(page.locator("rag-chat [aria-live]")).to_contain_text("The service is busy")
    expect(page.locator("rag-chat .log")).to_have_attribute("aria-busy", "true")
    assert page.locator("rag-chat .log > .card.err").count() == 0
    page.screenshot(path=str(screenshots / "widget-busy.png"))
    assert axe(page) == []

    holder.release()  # the slot frees once the holder's question is answered
    reply = page.locator("rag-chat .log > article.card")
    expect(reply).to_have_count(1, timeout=120_000)  # an answer or "don't answer this"
    expect(page.locator("rag-chat .log > .card.err")).to_have_count(0)
    expect(page.locator("rag-chat .wait")).to_have_count(0)
    expect(page.locator("rag-chat input")).to_have_value("")

    attempts = widget_attempts(busy_api, since, lambda a: any(x.status == 200 for x in a))
    assert len(attempts) >= 2, attempts
    assert [a.status for a in attempts] == [503] * (len(attempts) - 1) + [200], attempts
    assert_waited_as_asked(attempts, retry_after)


def test_a_service_busy_past_the_bound_is_an_error_that_says_so(
    page: Any, busy_api: Any, holder: Any, site: Any
) -> None:
    from playwright.sync_api import expect

    holder.start()
    code, retry_after = refusal(busy_api, site.origin, "probe-bound")
    assert code == "overloaded"
    since = log_size(busy_api)
    # The bound, short for the test (default: 15 s), but longer than the wait a refusal
    # asks (the service's pace, seconds under load), so the widget waits at least once.
    data = {"max-wait": str(3 * retry_after + 2)}
    page.goto(site.add("/bound.html", site_page(busy_api.base + "/widget.js", data=data)))
    open_widget_by_keyboard(page)
    ask_by_keyboard(page, CANTEEN)
    expect(held(page)).to_contain_text("The service is busy", timeout=30_000)

    error = page.locator("rag-chat .log > .card.err")
    expect(error).to_have_count(1, timeout=60_000)
    expect(error).to_contain_text(
        re.compile(r"The service stayed busy for \d+ s, so your question was not answered")
    )
    expect(page.locator("rag-chat [aria-live]")).to_contain_text("stayed busy")
    expect(page.locator("rag-chat input")).to_have_value(CANTEEN)  # Enter asks again

    attempts = widget_attempts(busy_api, since, lambda a: len(a) >= 2, timeout=10)
    assert len(attempts) >= 2 and {a.status for a in attempts} == {503}, attempts
    assert_waited_as_asked(attempts, retry_after)


def test_waiting_for_a_busy_service_can_be_cancelled_by_keyboard(
    page: Any, busy_api: Any, holder: Any, site: Any
) -> None:
    from playwright.sync_api import expect

    holder.start()
    asked: list[str] = []
    page.on(
        "request",
        lambda r: asked.append(r.url) if r.method == "POST" and "/v1/ask" in r.url else None,
    )
    page.goto(site.add("/cancel.html", site_page(busy_api.base + "/widget.js")))  # 15 s
    open_widget_by_keyboard(page)
    ask_by_keyboard(page, CANTEEN)
    expect(held(page)).to_contain_text("The service is busy", timeout=30_000)

    # From the question box, Shift+Tab reaches "Stop waiting"; Enter presses it.
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(WIDGET_FN, "active") == "stop"
    page.keyboard.press("Enter")
    stopped = page.locator("rag-chat .log > .card.note")
    expect(stopped).to_contain_text("You stopped waiting, so the question was not answered")
    expect(page.locator("rag-chat [aria-live]")).to_contain_text("You stopped waiting")
    expect(page.locator("rag-chat .wait")).to_have_count(0)
    expect(page.locator("rag-chat .log")).not_to_have_attribute("aria-busy", "true")
    assert page.evaluate(WIDGET_FN, "active") == "q"  # focus back in the question box
    expect(page.locator("rag-chat input")).to_have_value(CANTEEN)

    # No attempt after the cancel: longer than any wait for Retry-After 1 s and its jitter.
    count = len(asked)
    page.wait_for_timeout(3000)
    assert len(asked) == count, asked


def test_a_starting_service_is_waited_for_and_said_to_be_starting(
    page: Any, unready_api: Any, site: Any
) -> None:
    from playwright.sync_api import expect

    code, retry_after = refusal(unready_api, site.origin, "probe-starting")
    assert code == "not_ready"
    since = log_size(unready_api)
    data = {"max-wait": str(retry_after + 1)}  # room for one more attempt, not two
    page.goto(site.add("/starting.html", site_page(unready_api.base + "/widget.js", data=data)))
    open_widget_by_keyboard(page)
    ask_by_keyboard(page, CANTEEN)

    expect(held(page)).to_contain_text(
        "The service is starting: its documents are not loaded yet. Your question is queued",
        timeout=30_000,
    )
    expect(page.locator("rag-chat [aria-live]")).to_contain_text("The service is starting")

    error = page.locator("rag-chat .log > .card.err")
    expect(error).to_have_count(1, timeout=60_000)
    expect(error).to_contain_text(re.compile(r"The service is still starting after \d+ s"))
    expect(error).to_contain_text("no index has been built yet")  # the service's reason
    assert "busy" not in visible_text(error)

    attempts = widget_attempts(unready_api, since, lambda a: len(a) >= 2, timeout=10)
    assert [a.status for a in attempts] == [503, 503], attempts
    assert_waited_as_asked(attempts, retry_after)


def test_loading_state_and_bad_request_message(page: Any, api: Any, site: Any) -> None:
    """The one routed test: a 422 the real UI can't provoke (the box caps the length)."""
    from playwright.sync_api import expect

    held: list[Any] = []
    cors = {
        "access-control-allow-origin": site.origin,
        "access-control-allow-headers": "content-type",
        "access-control-allow-methods": "POST",
    }

    def hold(route: Any) -> None:
        if route.request.method == "OPTIONS":
            route.fulfill(status=204, headers=cors)
        else:
            held.append(route)

    page.route(api.base + "/v1/ask", hold)
    page.goto(site.add("/routed.html", site_page(api.base + "/widget.js")))
    open_widget_by_keyboard(page)
    page.keyboard.type("Why?")
    page.keyboard.press("Enter")
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the widget never asked"
    assert json.loads(held[0].request.post_data) == {"question": "Why?"}

    # While the service thinks: a visible, announced loading state.
    expect(page.locator("rag-chat .wait")).to_be_visible()
    expect(page.locator("rag-chat .wait")).to_contain_text("Searching the documents")
    expect(page.locator("rag-chat .log")).to_have_attribute("aria-busy", "true")
    expect(page.locator("rag-chat [aria-live]")).to_contain_text("Searching")

    error = {"code": "validation_error", "message": "invalid request: question: too long"}
    held[0].fulfill(
        status=422, headers=cors, content_type="application/json", body=json.dumps({"error": error})
    )
    card = page.locator("rag-chat .log > .card.err")
    expect(card).to_contain_text(
        "could not accept this question: invalid request: question: too long"
    )
    expect(page.locator("rag-chat .wait")).to_have_count(0)
    expect(page.locator("rag-chat .log")).not_to_have_attribute("aria-busy", "true")


# ---------------------------------------------------------------------------------------
# The routes themselves, over HTTP against the same real service
# ---------------------------------------------------------------------------------------


def test_widget_js_is_served_compressed_and_cacheable(api: Any) -> None:
    r = httpx.get(api.base + "/widget.js", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert r.headers["content-encoding"] == "gzip"
    assert "max-age=" in r.headers["cache-control"]
    raw = Path(__file__).resolve().parents[2] / "rag" / "api" / "static" / "widget.js"
    assert r.content == raw.read_bytes()
    source = r.content.decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink  # text only ever goes in as text nodes
    compressed = int(r.headers["content-length"])
    print(f"widget.js: {len(r.content)} bytes raw, {compressed} bytes gzipped on the wire")
    assert compressed < len(r.content) / 2
    assert len(gzip.compress(raw.read_bytes())) < 12_000
    again = httpx.get(api.base + "/widget.js", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304

    demo = httpx.get(api.base + "/demo")
    assert demo.status_code == 200 and demo.headers["content-type"].startswith("text/html")
    assert '<script src="/widget.js" defer></script>' in demo.text


def test_cors_admits_the_listed_site_only(api: Any, site: Any) -> None:
    def preflight(origin: str) -> httpx.Response:
        return httpx.options(
            api.base + "/v1/ask",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )

    assert preflight(site.origin).headers["access-control-allow-origin"] == site.origin
    assert "access-control-allow-origin" not in preflight("http://evil.example").headers
    # The listed site may read how long a refusal asks it to wait.
    simple = httpx.get(api.base + "/v1/documents", headers={"Origin": site.origin})
    assert "retry-after" in simple.headers["access-control-expose-headers"].lower()


def test_view_route(api: Any, xss_api: Any) -> None:
    docs = httpx.get(api.base + "/v1/documents").json()
    doc = httpx.get(api.base + "/v1/documents/" + docs[0]["id"]).json()
    assert "/" not in doc["id"]
    text = doc["text"]
    start, end = 40, 90
    r = httpx.get(view_href(api.base, doc["id"], start, end))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert f'<mark id="answer" tabindex="-1">{escape(text[start:end])}</mark>' in r.text
    assert f"<h1>{escape(doc['title'])}</h1>" in r.text
    assert "script-src 'sha256-" in r.headers["content-security-policy"]
    whole = httpx.get(f"{api.base}/v1/documents/{doc['id']}/view")
    assert whole.status_code == 200 and "<mark" not in whole.text

    for query, field in [
        ("start=-1&end=5", "start"),
        (f"start=0&end={len(text) + 1}", "end"),
        ("start=9&end=3", "start"),
        ("start=3", "end"),
        ("start=a&end=3", "start"),
    ]:
        bad = httpx.get(f"{api.base}/v1/documents/{doc['id']}/view?{query}")
        assert bad.status_code == 422, query
        error = bad.json()["error"]
        assert error["code"] == "validation_error" and error["message"]
        assert any(d["field"].endswith(field) for d in error["details"]), (query, error)

    missing = httpx.get(api.base + "/v1/documents/no-such-doc/view?start=0&end=1")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "unknown_document"
    # The JSON document route is not shadowed by the view route, nor the other way round.
    assert httpx.get(api.base + "/v1/documents/" + doc["id"]).json()["id"] == doc["id"]

    # An id with "/" and a text full of markup: escaped, never markup.
    nested = httpx.get(f"{xss_api.base}/v1/documents/notices/office-move/view?start=0&end=5")
    assert nested.status_code == 200
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in nested.text
    assert "<script>window.__xss" not in nested.text and "<img" not in nested.text
