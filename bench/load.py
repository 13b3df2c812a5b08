"""Benchmark: /v1/ask under load, as served (`rag serve`): clients hammering, or people.

Starts the real service on a free local port with its default limits, warms it up, then
measures one or both profiles:

- **hammer** (``--clients 1,8,32``): that many clients for each row, each asking the dev
  and test questions in turn as fast as it gets answers; a client told 503 waits its
  ``Retry-After``, as a well-behaved client does (``--no-backoff``: it retries at once).
  Per row: answered requests per second, p50/p95/p99 latency of the admitted (200)
  requests, how many were refused with 503 ``overloaded`` and how fast those refusals
  came (p95), and anything else (which should be nothing).
- **people** (``--profile people --users 4,8,16``): that many simulated people, each
  asking a question, reading the answer for a random 5 to 15 s (seeded: ``--seed``), then
  asking the next. A refused question (503 ``overloaded``, or 429) is asked again the way
  the chat widget does (``WidgetRetry``): never sooner than ``Retry-After``, plus jitter,
  for at most 15 s from the first refusal, after which the person sees an error. Per row:
  the share of questions answered at the first try, p50/p95 time to answer including
  every wait, the share that would show the person an error, and answered questions per
  second. ``--hammer 32`` adds hammer rows to the same run, so one invocation prints
  both tables.

    .venv/bin/python bench/load.py [--clients 1,8,32] [--seconds 30 | --minutes 0.5]
        [--reader fused] [--workers 1] [--env RAG_ASK_QUEUE=4 ...]
        [--config one:RAG_ASK_CONCURRENCY=1 --config four:RAG_ASK_CONCURRENCY=4 ...]
    .venv/bin/python bench/load.py --profile people --users 4,8,16 --hammer 32 [--minutes 2]

Each row runs ``--seconds`` (default: 30 for hammer rows, 120 for people rows, who ask
about once every 10 s). With several ``--config`` the setups are measured one after
another in the same run, for a side-by-side table. Everything measured is written to
``reports/bench/load.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from rag.devserver import ServiceStartError, start_service
from rag.evaluation.dataset import load_eval_sets
from rag.metrics import percentile

ROOT = Path(__file__).resolve().parent.parent

#: Seconds a row runs by default, per profile.
DEFAULT_SECONDS = {"hammer": 30.0, "people": 120.0}


def questions() -> list[str]:
    return [
        i.question
        for i in load_eval_sets([ROOT / "eval" / "dev.jsonl", ROOT / "eval" / "test.jsonl"])
    ]


def _pct(values: Sequence[float], p: float, digits: int = 1) -> float | None:
    return round(percentile(list(values), p), digits) if values else None


# -- hammer: clients asking as fast as they get answers ------------------------------


@dataclass
class LoadRun:
    clients: int
    seconds: float
    answered: int
    answered_per_second: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    refused_503: int
    refused_share: float
    refused_p95_ms: float | None
    other: dict[str, int]


def run(
    base: str,
    clients: int,
    seconds: float,
    qs: list[str],
    *,
    backoff: bool,
    until: threading.Event | None = None,
) -> LoadRun:
    """``clients`` hammering for ``seconds``, or until ``until`` is set if sooner."""
    admitted: list[float] = []
    refused: list[float] = []
    other: Counter[str] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def over() -> bool:
        return time.monotonic() >= stop or (until is not None and until.is_set())

    def client(n: int) -> None:
        i = n * 7
        with httpx.Client(base_url=base, timeout=60) as http:
            while not over():
                q = qs[i % len(qs)]
                i += 1
                started = time.perf_counter()
                try:
                    r = http.post("/v1/ask", json={"question": q})
                    status = str(r.status_code)
                    code = r.json().get("error", {}).get("code") if r.status_code != 200 else ""
                    wait = float(r.headers.get("retry-after", 0)) if status == "503" else 0.0
                except httpx.HTTPError as exc:
                    status, code, wait = type(exc).__name__, "", 0.0
                ms = (time.perf_counter() - started) * 1000
                with lock:
                    if status == "200":
                        admitted.append(ms)
                    elif status == "503" and code == "overloaded":
                        refused.append(ms)
                    else:
                        other[f"{status} {code}".strip()] += 1
                if backoff and wait:  # as a well-behaved client does
                    _sleep(wait, stop, until)

    elapsed = _in_threads(client, clients)
    return LoadRun(
        clients=clients,
        seconds=round(elapsed, 1),
        answered=len(admitted),
        answered_per_second=round(len(admitted) / elapsed, 2),
        p50_ms=_pct(admitted, 50),
        p95_ms=_pct(admitted, 95),
        p99_ms=_pct(admitted, 99),
        refused_503=len(refused),
        refused_share=round(len(refused) / max(len(admitted) + len(refused), 1), 3),
        refused_p95_ms=_pct(refused, 95),
        other=dict(other),
    )


def _in_threads(target: Callable[[int], None], count: int) -> float:
    """``target(0)`` to ``target(count - 1)``, each in a thread of its own; the seconds
    from the first start to the last end."""
    started = time.perf_counter()
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def _sleep(seconds: float, stop: float, until: threading.Event | None = None) -> None:
    """Sleep ``seconds``, but not past ``stop`` and not once ``until`` is set."""
    left = min(seconds, max(stop - time.monotonic(), 0.0))
    if until is None:
        time.sleep(left)
    else:
        until.wait(left)


# -- people: ask, read the answer, ask again; refusals retried as the widget does -----


@dataclass(frozen=True)
class WidgetRetry:
    """How the chat widget (rag/api/static/widget.js) asks again after a refusal.

    On a 503 ``overloaded`` or a 429 it waits what ``Retry-After`` asks, never less, plus
    a random share of up to ``jitter_share`` of it (at least up to ``jitter_min`` s),
    so that widgets refused at the same moment do not all come back at the same moment;
    the wait is counted from the first refusal and ends at ``max_wait`` s. When waiting
    as asked would pass that, it stops and the person sees an error.
    """

    max_wait: float = 15.0
    jitter_min: float = 0.25
    jitter_share: float = 0.5
    #: The wait assumed when a refusal has no readable Retry-After, by kind.
    fallback: dict[str, float] = field(default_factory=lambda: {"busy": 1.0, "limited": 5.0})

    def next_wait(
        self,
        kind: str,
        retry_after: float | None,
        first_refusal: float,
        now: float,
        rng: random.Random,
    ) -> float | None:
        """Seconds to wait before asking again, or None: the person sees an error now."""
        asked = retry_after if retry_after is not None else self.fallback.get(kind, 5.0)
        left = first_refusal + self.max_wait - now
        if asked > left:
            return None
        jitter = rng.random() * max(self.jitter_min, asked * self.jitter_share)
        return min(asked + jitter, left)


@dataclass(frozen=True)
class Asked:
    """One question a person asked, from the first try to what the widget showed."""

    answered: bool
    tries: int
    #: From the first try to the answer (or the error shown), every wait included.
    seconds: float
    #: What the person saw instead of an answer: busy, limited, or status and code.
    error: str | None = None


def refusal_kind(status: int, code: str | None) -> str | None:
    """A refusal worth waiting out, as the widget tells them apart, or None."""
    if status == 429:
        return "limited"
    if status == 503 and code == "overloaded":
        return "busy"
    return None


def retry_after_seconds(value: str | None) -> float | None:
    """The seconds a ``Retry-After`` header asks for (delta-seconds only), or None."""
    text = (value or "").strip()
    return float(text) if text.isdigit() else None


def ask_like_widget(
    http: httpx.Client,
    question: str,
    rng: random.Random,
    retry: WidgetRetry,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Asked:
    """Ask once, and again after each refusal as ``retry`` says, until answered or shown
    an error."""
    started = clock()
    first_refusal: float | None = None
    tries = 0
    while True:
        tries += 1
        try:
            r = http.post("/v1/ask", json={"question": question})
        except httpx.HTTPError as exc:
            return Asked(False, tries, clock() - started, type(exc).__name__)
        if r.status_code == 200:
            return Asked(True, tries, clock() - started)
        try:
            code = r.json().get("error", {}).get("code")
        except ValueError:
            code = None
        kind = refusal_kind(r.status_code, code)
        now = clock()
        if kind is None:
            return Asked(False, tries, now - started, f"{r.status_code} {code or ''}".strip())
        first_refusal = now if first_refusal is None else first_refusal
        wait = retry.next_wait(
            kind, retry_after_seconds(r.headers.get("retry-after")), first_refusal, now, rng
        )
        if wait is None:
            return Asked(False, tries, now - started, kind)
        sleep(wait)


@dataclass
class PeopleRun:
    users: int
    seconds: float
    questions: int
    answered: int
    answered_per_second: float
    #: Of all questions asked: answered at the first try, without any wait.
    first_try_share: float
    #: Time to answer, every wait included, of the answered questions.
    p50_s: float | None
    p95_s: float | None
    #: Of all questions asked: the person saw an error instead of an answer.
    error_share: float
    retries: int
    errors: dict[str, int]


def summarize_people(users: int, outcomes: Sequence[Asked], elapsed: float) -> PeopleRun:
    """The numbers of one people row from what each question came to."""
    answered = [o for o in outcomes if o.answered]
    asked = max(len(outcomes), 1)
    return PeopleRun(
        users=users,
        seconds=round(elapsed, 1),
        questions=len(outcomes),
        answered=len(answered),
        answered_per_second=round(len(answered) / elapsed, 2) if elapsed > 0 else 0.0,
        first_try_share=round(sum(o.answered and o.tries == 1 for o in outcomes) / asked, 3),
        p50_s=_pct([o.seconds for o in answered], 50, 2),
        p95_s=_pct([o.seconds for o in answered], 95, 2),
        error_share=round((len(outcomes) - len(answered)) / asked, 3),
        retries=sum(o.tries - 1 for o in outcomes),
        errors=dict(Counter(o.error or "?" for o in outcomes if not o.answered)),
    )


def people(
    base: str,
    users: int,
    seconds: float,
    qs: list[str],
    *,
    seed: int,
    retry: WidgetRetry | None = None,
    reading: tuple[float, float] = (5.0, 15.0),
) -> PeopleRun:
    """``users`` people for ``seconds``: each asks, reads for ``reading`` s, asks again.

    They arrive spread over the first reading time, as people do. A question still
    being asked (or waited for) when the time is up is seen to its end and counted.
    """
    retry = retry or WidgetRetry()
    outcomes: list[Asked] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def person(n: int) -> None:
        rng = random.Random(f"{seed}-{users}-{n}")
        i = rng.randrange(len(qs))
        with httpx.Client(base_url=base, timeout=120) as http:
            _sleep(rng.uniform(0, reading[0]), stop)
            while time.monotonic() < stop:
                outcome = ask_like_widget(http, qs[i % len(qs)], rng, retry)
                i += 1
                with lock:
                    outcomes.append(outcome)
                _sleep(rng.uniform(*reading), stop)

    elapsed = _in_threads(person, users)
    return summarize_people(users, outcomes, elapsed)


# -- setups and the report ------------------------------------------------------------


@dataclass(frozen=True)
class ServiceConfig:
    """One way of running the service: a name, its workers and its RAG_* settings."""

    name: str
    workers: int
    env: dict[str, str]

    @classmethod
    def parse(cls, text: str, *, workers: int, env: dict[str, str]) -> ServiceConfig:
        """``name:RAG_X=1,RAG_Y=2,workers=2`` (on top of the common --env and --workers)."""
        name, _, rest = text.partition(":")
        own = dict(env)
        for item in filter(None, rest.split(",")):
            key, _, value = item.partition("=")
            if key == "workers":
                workers = int(value)
            else:
                own[key] = value
        return cls(name, workers, own)


@dataclass
class Measured:
    config: ServiceConfig
    people: list[PeopleRun]
    hammer: list[LoadRun]


def counts(text: str) -> list[int]:
    return [int(c) for c in text.split(",") if c.strip()]


def measure(config: ServiceConfig, args: argparse.Namespace, qs: list[str]) -> Measured:
    """Start the service as ``config`` says, warm it up, run every row, stop it."""
    service = start_service(
        f"load-{config.name}",
        args.index,
        args.out / "services",
        args=("--workers", str(config.workers)),
        RAG_READER=args.reader,
        RAG_RATE_LIMIT_PER_MINUTE="0",
        **config.env,
    )
    measured = Measured(config, [], [])
    try:
        base = service.wait_all_ready().base
        with httpx.Client(base_url=base, timeout=60) as http:
            for q in qs[:20]:  # warm-up
                http.post("/v1/ask", json={"question": q})
        for users in counts(args.users) if args.profile == "people" else []:
            seconds = args.seconds or DEFAULT_SECONDS["people"]
            print(f"[{config.name}] {users} people for {seconds:g} s ...", flush=True)
            measured.people.append(people(base, users, seconds, qs, seed=args.seed))
            print(json.dumps(asdict(measured.people[-1])), flush=True)
        hammering = args.clients if args.profile == "hammer" else args.hammer
        for clients in counts(hammering):
            seconds = args.seconds or DEFAULT_SECONDS["hammer"]
            print(f"[{config.name}] {clients} clients for {seconds:g} s ...", flush=True)
            measured.hammer.append(run(base, clients, seconds, qs, backoff=not args.no_backoff))
            print(json.dumps(asdict(measured.hammer[-1])), flush=True)
    except ServiceStartError as exc:
        raise SystemExit(str(exc)) from None
    finally:
        service.stop()
    return measured


def markdown_table(headings: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table's lines: the headings, the rule under them, then a line a row."""
    return [
        "| " + " | ".join(headings) + " |",
        "|" + "---|" * len(headings),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def results_table(table: list[Measured], profile: str) -> list[str]:
    """The rows of one profile (``people`` or ``hammer``), every setup's in turn."""
    if profile == "people":
        return markdown_table(
            [
                *("setup", "people", "questions", "answered/s", "answered at first try"),
                *("p50 s", "p95 s (waits included)", "error shown"),
            ],
            (
                [
                    *(m.config.name, r.users, r.questions, r.answered_per_second),
                    *(f"{r.first_try_share:.0%}", r.p50_s, r.p95_s, f"{r.error_share:.0%}"),
                ]
                for m in table
                for r in m.people
            ),
        )
    return markdown_table(
        [
            *("setup", "clients", "answered/s", "p50 ms", "p95 ms", "p99 ms"),
            *("refused 503", "refused p95 ms", "other"),
        ],
        (
            [
                *(m.config.name, r.clients, r.answered_per_second, r.p50_ms, r.p95_ms, r.p99_ms),
                *(f"{r.refused_503} ({r.refused_share:.0%})", r.refused_p95_ms),
                sum(r.other.values()),
            ]
            for m in table
            for r in m.hammer
        ),
    )


def add_duration(parser: argparse.ArgumentParser) -> None:
    """``--seconds`` or ``--minutes``: how long each row (or phase) runs."""
    duration = parser.add_mutually_exclusive_group()
    duration.add_argument("--seconds", type=float, default=None, help="seconds per row")
    duration.add_argument("--minutes", type=float, default=None, help="minutes per row")


def seconds_of(args: argparse.Namespace) -> float | None:
    return args.minutes * 60 if args.minutes is not None else args.seconds


def add_service_options(parser: argparse.ArgumentParser, *, config_help: str) -> None:
    """The options of the service a load benchmark starts: ``--reader``, ``--out``,
    ``--env`` and ``--config`` (read back by ``service_configs``)."""
    parser.add_argument("--reader", default="fused")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    parser.add_argument(
        "--env", action="append", default=[], help="RAG_X=value for the service; repeatable"
    )
    parser.add_argument("--config", action="append", default=[], help=config_help)


def service_configs(args: argparse.Namespace, *, workers: int) -> list[ServiceConfig]:
    """The setups ``--config`` names (``default:`` without one), each on top of ``--env``."""
    env = dict(item.split("=", 1) for item in args.env)
    return [ServiceConfig.parse(c, workers=workers, env=env) for c in args.config or ["default:"]]


def write_report(path: Path, **fields: object) -> None:
    """``fields`` as JSON at ``path``, after the time they were measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    path.write_text(json.dumps({"measured_at": measured_at, **fields}, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=("hammer", "people"), default="hammer")
    parser.add_argument("--clients", default="1,8,32", help="hammer rows (--profile hammer)")
    parser.add_argument("--users", default="4,8,16", help="people rows (--profile people)")
    parser.add_argument(
        "--hammer", default="", help="hammer rows too in a people run, e.g. 32 (default none)"
    )
    parser.add_argument("--seed", type=int, default=24, help="people's questions and reading")
    add_duration(parser)
    parser.add_argument("--index", type=Path, default=ROOT / "index")
    parser.add_argument("--workers", type=int, default=1, help="rag serve --workers")
    parser.add_argument(
        "--no-backoff",
        action="store_true",
        help="hammer clients retry a 503 at once instead of waiting its Retry-After",
    )
    add_service_options(
        parser,
        config_help="name:RAG_X=1,workers=2 -- one service setup to compare; repeatable (the "
        "setups run one after another in this run, on the same questions)",
    )
    args = parser.parse_args()
    args.seconds = seconds_of(args)
    configs = service_configs(args, workers=args.workers)
    qs = questions()
    table = [measure(c, args, qs) for c in configs]
    write_report(
        args.out / "load.json",
        reader=args.reader,
        profile=args.profile,
        seed=args.seed,
        configs=[
            {
                **asdict(m.config),
                "runs": [asdict(r) for r in m.hammer],
                "people": [asdict(r) for r in m.people],
            }
            for m in table
        ],
    )
    for profile in ("people", "hammer"):
        if any(getattr(m, profile) for m in table):
            print("\n" + "\n".join(results_table(table, profile)))


if __name__ == "__main__":
    main()
