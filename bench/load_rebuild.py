"""Benchmark: questions answered while the index rebuilds, against idle, in one run.

Prepares ``reports/bench/rebuild/``: a corpus of the letters and ``--documents``
synthetic documents (rag/synthetic.py), indexed once by ``rag index``. Then for each
``--config`` (a service setup, for example the build priority of before:
``before:RAG_BUILD_NICE=0,RAG_BUILD_THREADS=2``) it starts the real service on that
index with the admin routes on, warms it up, and for each ``--clients`` count measures
two phases with bench/load.py's hammer clients (each waits a 503's ``Retry-After``):

1. **idle**: ``--seconds`` of questions with nothing else running;
2. **rebuild**: the synthetic documents are rewritten (same names, new sentences: each
   one changed, so all are embedded again) and a build starts, through ``POST
   /v1/admin/reindex`` (``--via admin``: the service's own child process) or as ``rag
   index`` beside the service (``--via cli``: a child of this benchmark, as a person
   would run it from the same session). The same clients ask while it runs, for at most
   ``--seconds``; then the build is waited for before the next phase.

Per phase: answered/s, p50/p95 ms, refusals; per rebuild, how long it took and its
answered/s as a share of the idle phase's. Written to ``reports/bench/load_rebuild.json``.

    .venv/bin/python bench/load_rebuild.py [--clients 1,4] [--seconds 60 | --minutes 1]
        [--documents 300] [--via admin,cli] [--reader fused]
        [--config before:RAG_BUILD_NICE=0,RAG_BUILD_THREADS=2 --config default:]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from load import (  # noqa: E402
    LoadRun,
    ServiceConfig,
    add_duration,
    add_service_options,
    counts,
    markdown_table,
    questions,
    run,
    seconds_of,
    service_configs,
    write_report,
)

from rag.build_priority import usable_cpus  # noqa: E402
from rag.devserver import ServiceStartError, start_service  # noqa: E402
from rag.synthetic import write_synthetic_corpus  # noqa: E402

#: Seconds a phase runs by default.
DEFAULT_SECONDS = 60.0


@dataclass
class Phase:
    """One measured phase: idle, or a rebuild through ``via``."""

    phase: str
    via: str | None
    load: LoadRun
    #: The build's own seconds (None for idle), and whether it ran the whole phase.
    build_seconds: float | None = None
    build_ok: bool | None = None
    build_outlasted_phase: bool | None = None
    #: answered/s of this phase over the idle phase's with as many clients.
    answered_vs_idle: float | None = None


def answered_share(rebuild: LoadRun, idle: LoadRun) -> float | None:
    """Answered/s during a rebuild as a share of idle (None without an idle rate)."""
    if idle.answered_per_second <= 0:
        return None
    return round(rebuild.answered_per_second / idle.answered_per_second, 3)


def _env(config: ServiceConfig) -> dict[str, str]:
    """This process's environment less any RAG_ setting, plus the setup's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    return {**env, **config.env, "PYTHONUNBUFFERED": "1"}


def prepare(workdir: Path, documents: int) -> tuple[Path, Path]:
    """A fresh corpus (the letters and synthetic documents) and its index."""
    if workdir.exists():
        shutil.rmtree(workdir)
    corpus, index = (workdir / "corpus").resolve(), (workdir / "index").resolve()
    shutil.copytree(ROOT / "corpus", corpus)
    write_synthetic_corpus(ROOT / "corpus", corpus / "synthetic", documents, seed=0)
    print(f"indexing {documents} synthetic documents and the letters ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "rag.cli", "index", "--corpus", str(corpus), "--out", str(index)],
        check=True,
        cwd=workdir,
        env={k: v for k, v in os.environ.items() if not k.startswith("RAG_")},
        stdout=subprocess.DEVNULL,
    )
    return corpus, index


class Rebuild:
    """One build, started through the admin route or as ``rag index`` beside the service."""

    def __init__(
        self, via: str, base: str, token: str, corpus: Path, index: Path, env: dict[str, str]
    ) -> None:
        self.via, self.base, self.token = via, base, token
        self.corpus, self.index, self.env = corpus, index, env
        self.done = threading.Event()
        self.ok: bool | None = None
        self.seconds: float | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        if self.via == "admin":
            r = httpx.post(
                self.base + "/v1/admin/reindex",
                headers={"Authorization": f"Bearer {self.token}"},
                timeout=30,
            )
            r.raise_for_status()
        else:
            self._process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "rag.cli", "index"),
                    *("--corpus", str(self.corpus), "--out", str(self.index)),
                ],
                cwd=self.index.parent,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        if self._process is not None:
            self.ok = self._process.wait() == 0
            self.seconds = round(time.monotonic() - self._started, 1)
        else:
            with httpx.Client(base_url=self.base, timeout=30) as http:
                auth = {"Authorization": f"Bearer {self.token}"}
                while True:
                    status = http.get("/v1/admin/reindex", headers=auth).json()
                    if status["state"] != "running":
                        break
                    time.sleep(0.5)
            self.ok, self.seconds = status["state"] == "succeeded", status["seconds"]
        self.done.set()


def swaps(base: str) -> int:
    """Index versions the service has swapped in so far."""
    return int(httpx.get(base + "/readyz", timeout=30).json()["index_swaps"])


def wait_for_swap(base: str, before: int, timeout: float = 300.0) -> None:
    """Wait until the service serves the version a build published (it loads it in the
    background, and that load should not fall into the next phase)."""
    deadline = time.monotonic() + timeout
    while swaps(base) <= before:
        if time.monotonic() > deadline:
            raise SystemExit(f"the rebuilt index was not served within {timeout:.0f} s")
        time.sleep(0.5)


def measure(
    config: ServiceConfig,
    args: argparse.Namespace,
    qs: list[str],
    corpus: Path,
    index: Path,
    rounds: list[int],
) -> list[Phase]:
    """Start the service as ``config`` says and measure idle and rebuild phases."""
    token = secrets.token_urlsafe(16)
    service = start_service(
        f"rebuild-{config.name}",
        index,
        args.out / "services",
        RAG_READER=args.reader,
        RAG_RATE_LIMIT_PER_MINUTE="0",
        RAG_ADMIN_TOKEN=token,
        RAG_CORPUS_DIR=str(corpus),
        **config.env,
    )
    seconds = args.seconds or DEFAULT_SECONDS
    phases: list[Phase] = []
    try:
        base = service.wait_ready().base
        with httpx.Client(base_url=base, timeout=60) as http:
            for q in qs[:20]:  # warm-up
                http.post("/v1/ask", json={"question": q})
        for clients in counts(args.clients):
            print(f"[{config.name}] idle, {clients} clients for {seconds:g} s ...", flush=True)
            idle = run(base, clients, seconds, qs, backoff=True)
            phases.append(Phase("idle", None, idle))
            print(json.dumps(asdict(phases[-1])), flush=True)
            for via in args.via.split(","):
                rounds[0] += 1  # new sentences for every rebuild: all of them embedded again
                write_synthetic_corpus(
                    ROOT / "corpus", corpus / "synthetic", args.documents, seed=rounds[0]
                )
                build = Rebuild(via, base, token, corpus, index, _env(config))
                print(f"[{config.name}] rebuild via {via}, {clients} clients ...", flush=True)
                served = swaps(base)
                build.start()
                load = run(base, clients, seconds, qs, backoff=True, until=build.done)
                outlasted = not build.done.is_set()
                build.done.wait()
                if build.ok:
                    wait_for_swap(base, served)
                phases.append(
                    Phase(
                        "rebuild",
                        via,
                        load,
                        build_seconds=build.seconds,
                        build_ok=build.ok,
                        build_outlasted_phase=outlasted,
                        answered_vs_idle=answered_share(load, idle),
                    )
                )
                print(json.dumps(asdict(phases[-1])), flush=True)
    except ServiceStartError as exc:
        raise SystemExit(str(exc)) from None
    finally:
        service.stop()
    return phases


def table(measured: list[tuple[ServiceConfig, list[Phase]]]) -> list[str]:
    rows = []
    for config, phases in measured:
        for p in phases:
            name = "idle" if p.via is None else f"rebuild ({p.via})"
            share = f"{p.answered_vs_idle:.0%}" if p.answered_vs_idle is not None else "–"
            build = "–" if p.build_seconds is None else f"{p.build_seconds:g}"
            if p.build_ok is False:
                build += " (failed)"
            rows.append(
                [
                    *(config.name, p.load.clients, name, p.load.seconds),
                    *(p.load.answered_per_second, share, p.load.p50_ms, p.load.p95_ms),
                    *(p.load.refused_503, build),
                ]
            )
    return markdown_table(
        [
            *("setup", "clients", "phase", "seconds", "answered/s", "vs idle", "p50 ms"),
            *("p95 ms", "refused 503", "build s"),
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4", help="hammer clients per phase pair")
    add_duration(parser)
    parser.add_argument("--documents", type=int, default=300, help="synthetic documents")
    parser.add_argument("--via", default="admin", help="admin, cli or admin,cli")
    add_service_options(
        parser, config_help="name:RAG_X=1,... -- one service setup to compare; repeatable"
    )
    args = parser.parse_args()
    args.seconds = seconds_of(args)
    if set(args.via.split(",")) - {"admin", "cli"}:
        parser.error("--via takes admin, cli or both")
    configs = service_configs(args, workers=1)
    qs = questions()
    corpus, index = prepare(args.out / "rebuild", args.documents)
    rounds = [0]
    measured = [(c, measure(c, args, qs, corpus, index, rounds)) for c in configs]
    write_report(
        args.out / "load_rebuild.json",
        reader=args.reader,
        documents=args.documents,
        cpus=usable_cpus(),
        configs=[{**asdict(c), "phases": [asdict(p) for p in phases]} for c, phases in measured],
    )
    print("\n" + "\n".join(table(measured)))


if __name__ == "__main__":
    main()
