"""Two `rag serve` replicas behind a real load balancer (nginx), over one index folder.

nginx (Debian's ``nginx-light``, installed by ``make test``) runs as the test's own
process with a temporary prefix and configuration, in front of two replicas on free
ports: one listener round-robin, one with affinity by client address. Through it the
same question gets the same answer and citation whichever replica serves it, requests
are spread over both (each replica's access log holds the request ids it served), and
the rate limiter behaves as README "Scaling out" says: each replica counts what it saw,
so round-robin lets a client make up to 2 x the limit, affinity exactly one limit.

Clients are told apart by their own loopback address (127.0.0.2, 127.0.0.3, ...): nginx
is the trusted proxy (``RAG_TRUSTED_PROXIES=127.0.0.1``) and appends the address it saw
to ``X-Forwarded-For``, as in a deployment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.devserver import LocalService, free_port, publish_copy, start_service, stop_process
from tests.engines import NGINX_START_TIMEOUT, ready, retry_once, wait_until

pytestmark = pytest.mark.slow

QUESTIONS = [
    "What is the CTS reference of the Home Office letter?",
    "Who wrote to Lucy Allan?",
]

#: Requests a client may make per minute, per replica.
LIMIT = 6

#: How many times each question is asked through the round-robin listener.
REPEATS = 3


def nginx_binary() -> str:
    """nginx, or a failure saying how to get it (never a skip: ``make test`` installs it)."""
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail(
            "nginx is not installed: the load-balancer test needs it "
            "(`make lb-deps`, or `apt-get install nginx-light`)",
            pytrace=False,
        )
    return found


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    round_robin: str
    sticky: str
    prefix: Path

    def log_tail(self) -> str:
        parts = []
        for name in ("error.log", "stdout.log"):
            try:
                parts.append(f"== {name} ==\n" + (self.prefix / name).read_text(errors="replace"))
            except OSError:
                continue
        return "\n".join(part[-3000:] for part in parts)

    def stop(self) -> None:
        stop_process(self.process)


def nginx_config(prefix: Path, replicas: list[str], rr_port: int, sticky_port: int) -> str:
    servers = "".join(f"        server {r.removeprefix('http://')};\n" for r in replicas)
    temp = "".join(
        f"    {kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    proxy = """
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream off;
            proxy_read_timeout 120s;
            proxy_buffering off;"""
    # As root (a CI container) the workers would drop to "nobody", who cannot reach the
    # test's temporary folders; as any other user nginx runs as that user.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""{user}worker_processes 1;
daemon off;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix / "access.log"};
{temp}    upstream round_robin {{
{servers}        keepalive 4;
    }}
    upstream sticky {{
        hash $remote_addr;
{servers}    }}
    server {{
        listen 127.0.0.1:{rr_port};
        location / {{
            proxy_pass http://round_robin;{proxy}
        }}
    }}
    server {{
        listen 127.0.0.1:{sticky_port};
        location / {{
            proxy_pass http://sticky;{proxy}
        }}
    }}
}}
"""


@pytest.fixture
def nginx_in_front(
    tmp_path: Path, two_versions: tuple[Path, Path]
) -> Iterator[tuple[Nginx, list[LocalService]]]:
    """Two replicas over one index folder, and nginx in front of them."""
    binary = nginx_binary()  # fail before the replicas take a minute to start
    index_dir = tmp_path / "idx"
    index_dir.mkdir()
    publish_copy(index_dir, two_versions[0])
    env = {
        "RAG_READER": "heuristic",
        "RAG_RATE_LIMIT_PER_MINUTE": str(LIMIT),
        "RAG_TRUSTED_PROXIES": "127.0.0.1",
    }
    replicas = [start_service(f"replica-{n}", index_dir, tmp_path / f"r{n}", **env) for n in (1, 2)]
    started: list[Nginx] = []  # each attempt's, the failed one too

    def start_nginx() -> Nginx:
        """nginx on two free ports, once it proxies /readyz on both."""
        prefix = tmp_path / f"nginx-{len(started) + 1}"
        prefix.mkdir()
        rr_port, sticky_port = free_port(), free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(
            nginx_config(prefix, [r.base for r in replicas], rr_port, sticky_port), "utf-8"
        )
        with (prefix / "stdout.log").open("wb") as out:
            process = subprocess.Popen(
                [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        lb = Nginx(
            process, f"http://127.0.0.1:{rr_port}", f"http://127.0.0.1:{sticky_port}", prefix
        )
        started.append(lb)
        wait_until(
            lambda: all(
                httpx.get(base + "/readyz", timeout=5).status_code == 200
                for base in (lb.round_robin, lb.sticky)
            ),
            timeout=NGINX_START_TIMEOUT,
            what="nginx proxying /readyz",
            exited=process.poll,
        )
        return lb

    try:
        for replica in replicas:
            ready(replica)
        lb = retry_once(
            "nginx",
            start_nginx,
            log=lambda: started[-1].log_tail() if started else "(nginx never started)",
            reset=lambda: started and started[-1].stop(),
        )
        yield lb, replicas
    finally:
        for each in started:
            each.stop()
        for replica in replicas:
            replica.stop()


def client(address: str) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (a loopback address)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=120)


def served_by(replicas: list[LocalService], ids: list[str]) -> dict[str, str]:
    """The replica whose access log holds each request id (each must be in exactly one)."""
    where: dict[str, list[str]] = {rid: [] for rid in ids}
    for replica in replicas:
        for line in replica.log.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("logger") == "rag.access":  # one access line per request
                rid = entry.get("request_id")
                if rid in where:
                    where[rid].append(replica.name)
    assert all(len(names) == 1 for names in where.values()), where
    return {rid: names[0] for rid, names in where.items()}


def _wait_logged(replicas: list[LocalService], ids: list[str]) -> dict[str, str]:
    """``served_by`` once every id reached a log (lines are written after the response)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return served_by(replicas, ids)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _request(
    http: httpx.Client, method: str, url: str, **kwargs: Any
) -> tuple[str, httpx.Response]:
    rid = uuid.uuid4().hex
    response = http.request(method, url, headers={"X-Request-ID": rid}, **kwargs)
    assert response.headers.get("x-request-id") == rid  # the replica's, through nginx
    return rid, response


def test_nginx_spreads_requests_answers_alike_and_limits_per_replica(
    nginx_in_front: tuple[Nginx, list[LocalService]],
) -> None:
    lb, replicas = nginx_in_front

    # The same answer and citation on every repeat, whichever replica serves it.
    ids: list[str] = []
    answers: list[dict[str, Any] | None] = []
    with client("127.0.0.2") as http:
        for question in QUESTIONS:
            seen = []
            for _ in range(REPEATS):
                rid, r = _request(
                    http, "POST", lb.round_robin + "/v1/ask", json={"question": question}
                )
                assert r.status_code == 200, r.text
                body = r.json()
                seen.append(
                    (body["answer"], body["abstained"], [p["id"] for p in body["passages"]])
                )
                ids.append(rid)
            assert all(s == seen[0] for s in seen), question
            answers.append(seen[0][0])
    # The first is answered with a citation (document and offsets; the heuristic reader
    # abstains on the second, and does so on every repeat).
    assert answers[0] is not None and answers[0]["document_id"], answers
    assert answers[0]["end"] > answers[0]["start"] >= 0
    where = _wait_logged(replicas, ids)
    spread = Counter(where.values())
    assert set(spread) == {r.name for r in replicas}, spread  # both replicas served
    assert abs(spread[replicas[0].name] - spread[replicas[1].name]) <= 1, spread  # round-robin

    # Round-robin: a new client gets the limit of each replica, 2 x LIMIT in all.
    with client("127.0.0.3") as http:
        sent = [
            _request(http, "GET", lb.round_robin + "/v1/documents") for _ in range(2 * LIMIT + 2)
        ]
    codes = [r.status_code for _, r in sent]
    assert codes.count(200) == 2 * LIMIT and codes.count(429) == 2, codes
    assert codes[-2:] == [429, 429] and all(r.headers.get("retry-after") for _, r in sent[-2:])
    where = _wait_logged(replicas, [rid for rid, _ in sent])
    ok = Counter(where[rid] for rid, r in sent if r.status_code == 200)
    assert ok == {r.name: LIMIT for r in replicas}, ok  # each replica counted its own

    # Affinity by client address: every request of a client to one replica, one limit.
    with client("127.0.0.4") as http:
        sent = [_request(http, "GET", lb.sticky + "/v1/documents") for _ in range(LIMIT + 2)]
    codes = [r.status_code for _, r in sent]
    assert codes == [200] * LIMIT + [429, 429], codes
    assert len(set(_wait_logged(replicas, [rid for rid, _ in sent]).values())) == 1
