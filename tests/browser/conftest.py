"""Real services (`rag serve`, see rag.devserver), another origin, and Debian's Chromium.

The services are started together (their models load in parallel) and each test waits
only for the ones it uses:

* ``api``: the real corpus, CORS open to the test site's origin;
* ``xss_api``: a small corpus whose text holds HTML/JS payloads;
* ``limited_api``: one question a minute, for a real 429;
* ``unready_api``: no index at all, so a real 503 ``not_ready`` on every question;
* ``busy_api``: the small corpus with one question slot and no queue, which ``holder``
  keeps taken by real questions that take seconds to answer (a long question's analysis),
  so a real 503 ``overloaded`` for anyone else until it lets go.

Each waits for its service with a generous deadline and starts it again once if it fails
(tests/engines.py); Chromium's launch likewise.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.devserver import LocalService, free_port, start_service
from rag.store.builder import IndexBuilder
from tests.engines import launch_chromium, ready, wait_until

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CHROMIUM = Path("/usr/bin/chromium")
AXE = HERE / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: One document whose sentences carry the payloads, in a sub-folder so its id holds "/".
XSS_DOCUMENT = """Office move notice

The secret code is <img src=x onerror="window.__xss=2"> and the script is \
<script>window.__xss=1</script>.

The office will move to the new building on Monday 9 March 2015. Visitors should sign in at \
reception on the ground floor. The canteen on the third floor will open at 8 o'clock.

Please pack your desk into the blue crates before Friday. Removal staff will carry the crates \
to the new building over the weekend, and each crate must carry a label with your name.
"""

OTHER_DOCUMENT = """Canteen opening hours

The canteen serves breakfast from 8 o'clock until 10 o'clock, and lunch from noon until \
2 o'clock. Hot meals cost four pounds. The canteen is closed on public holidays.
"""


# ---------------------------------------------------------------------------------------
# The embedding site: another origin than the service, serving pages from memory
# ---------------------------------------------------------------------------------------


@dataclass
class Site:
    origin: str
    pages: dict[str, str] = field(default_factory=dict)

    def add(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.origin + path


def _site_handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = site.pages.get(self.path.split("?")[0])
            body = (page if page is not None else "not found").encode()
            self.send_response(200 if page is not None else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="session")
def site() -> Iterator[Site]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _site_handler(Site("")))
    port = server.server_address[1]
    s = Site(f"http://127.0.0.1:{port}")
    server.RequestHandlerClass = _site_handler(s)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield s
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------------------------------
# The services
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def xss_index(tmp_path_factory: pytest.TempPathFactory, builder: IndexBuilder) -> Path:
    corpus = tmp_path_factory.mktemp("xss-corpus")
    (corpus / "notices").mkdir()
    (corpus / "notices" / "office-move.txt").write_text(XSS_DOCUMENT)
    (corpus / "canteen.txt").write_text(OTHER_DOCUMENT)
    index = tmp_path_factory.mktemp("xss-index")
    builder.build(corpus, index)
    return index


@pytest.fixture(scope="session")
def services(
    require_chromium: None,
    tmp_path_factory: pytest.TempPathFactory,
    index_dir: Path,
    xss_index: Path,
    site: Site,
) -> Iterator[dict[str, LocalService]]:
    work = tmp_path_factory.mktemp("services")
    cors = {"RAG_CORS_ORIGINS": site.origin}
    started = {
        "api": start_service("api", index_dir, work, RAG_RATE_LIMIT_PER_MINUTE="0", **cors),
        "xss": start_service("xss", xss_index, work, RAG_RATE_LIMIT_PER_MINUTE="0", **cors),
        # Every route counts but the probes and CORS preflights: widget.js and one question.
        "limited": start_service("limited", xss_index, work, RAG_RATE_LIMIT_PER_MINUTE="2", **cors),
        "unready": start_service("unready", work / "no-index", work, **cors),
        "busy": start_service(
            "busy",
            xss_index,
            work,
            RAG_RATE_LIMIT_PER_MINUTE="0",
            RAG_ASK_CONCURRENCY="1",
            RAG_ASK_QUEUE="0",
            # Room for the holder's long questions.
            RAG_MAX_QUESTION_CHARS=str(HOLD_CHARS),
            RAG_MAX_BODY_BYTES=str(4 * HOLD_CHARS),
            **cors,
        ),
    }
    yield started
    for service in started.values():
        service.stop()


@pytest.fixture(scope="session")
def api(services: dict[str, LocalService]) -> LocalService:
    return ready(services["api"])


@pytest.fixture(scope="session")
def xss_api(services: dict[str, LocalService]) -> LocalService:
    return ready(services["xss"])


@pytest.fixture(scope="session")
def limited_api(services: dict[str, LocalService]) -> LocalService:
    return ready(services["limited"])


@pytest.fixture(scope="session")
def unready_api(services: dict[str, LocalService]) -> LocalService:
    return ready(services["unready"], expect_status=503)


@pytest.fixture(scope="session")
def busy_api(services: dict[str, LocalService]) -> LocalService:
    return ready(services["busy"])


#: Characters of the holder's questions: each takes seconds to analyse (spaCy reads them
#: whole), so one holds the only question slot that long. Load makes it longer, not shorter.
HOLD_CHARS = 30_000
HOLD_QUESTION = (
    "When will the canteen open and where should visitors sign in before the office move? "
    * (HOLD_CHARS // 80)
)[:HOLD_CHARS]


class Holder:
    """Keeps the busy service's one question slot taken with real, slow questions, one
    after another, until ``release``; request ids ``hold-N`` tell them apart in its log."""

    def __init__(self, service: LocalService) -> None:
        self.service = service
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.errors: list[BaseException] = []
        self.answered = 0

    def _run(self) -> None:
        try:
            with httpx.Client(base_url=self.service.base, timeout=600) as http:
                n = 0
                while not self.stop.is_set():
                    n += 1
                    r = http.post(
                        "/v1/ask",
                        json={"question": HOLD_QUESTION},
                        headers={"X-Request-ID": f"hold-{n}"},
                    )
                    if r.status_code == 200:
                        self.answered += 1
                    elif r.status_code == 503:  # someone else had the slot: take it next
                        self.stop.wait(0.05)
                    else:
                        r.raise_for_status()
        except BaseException as exc:
            self.errors.append(exc)

    def in_flight(self) -> int:
        metrics = httpx.get(self.service.base + "/metrics", timeout=10).text
        for line in metrics.splitlines():
            if line.startswith("rag_ask_in_flight "):
                return int(float(line.split()[1]))
        raise AssertionError("no rag_ask_in_flight in /metrics")

    def start(self) -> Holder:
        """Start holding; returns once a question of the holder is being answered."""
        assert self.thread is None, "already holding"
        self.thread = threading.Thread(target=self._run, name="holder", daemon=True)
        self.thread.start()
        wait_until(
            lambda: bool(self.errors) or self.in_flight() == 1,
            timeout=120,
            what="the holder's first question",
        )
        assert not self.errors, self.errors
        return self

    def release(self) -> None:
        """Stop asking; returns once the question being answered is done (the slot free)."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=600)
            assert not self.thread.is_alive(), "the holder's last question never finished"
            self.thread = None
        assert not self.errors, self.errors


@pytest.fixture()
def holder(busy_api: LocalService) -> Iterator[Holder]:
    """A holder of ``busy_api``'s slot, not yet holding; released after the test."""
    h = Holder(busy_api)
    try:
        yield h
    finally:
        h.release()


# ---------------------------------------------------------------------------------------
# The browser
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def require_chromium() -> None:
    """Skip (outside CI only) when Debian's Chromium or axe-core is missing."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(f"Debian chromium ({CHROMIUM})")
    if not AXE.exists():
        missing.append(f"axe-core ({AXE.relative_to(ROOT)})")
    if missing:
        reason = f"{' and '.join(missing)} not installed: run `make browser-deps`"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def browser(require_chromium: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p, CHROMIUM, CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def context(browser: Any) -> Iterator[Any]:
    # bypass_csp only so axe-core can be injected into the view page, whose CSP allows
    # no script but its own; the XSS checks then prove the escaping, not the CSP.
    ctx = browser.new_context(viewport={"width": 1280, "height": 820}, bypass_csp=True)
    ctx.set_default_timeout(20_000)
    yield ctx
    ctx.close()


@pytest.fixture()
def page(context: Any) -> Any:
    return context.new_page()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS


def _run_axe(page: Any) -> list[dict[str, Any]]:
    """axe-core over the whole page (it enters open shadow roots): serious and critical."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


@pytest.fixture(scope="session")
def axe() -> Any:
    """``axe(page)``: the serious and critical accessibility violations on the page."""
    return _run_axe


@pytest.fixture()
def closed_port() -> int:
    """A local port nothing listens on."""
    return free_port()
