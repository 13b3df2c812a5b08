"""Command line: ``rag index | ask | serve | eval``.

Domain errors become a one-line message on stderr and exit status 1; nothing here
knows how the stages work, it only wires settings to them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer

from rag.config import Settings, get_settings
from rag.errors import RagError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Cited extractive answers from a collection of documents.",
)

P = ParamSpec("P")
R = TypeVar("R")

#: Set by ``main``: the command line runs this process (the ``rag`` script, ``python -m
#: rag.cli``). Unset when a test or another program calls the commands in its own
#: process, which must keep its priority: a build lowers it only in a process of its own.
_OWN_PROCESS = False


def _domain_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a RagError into a clear message and exit status 1, with no traceback."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except RagError as exc:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None

    return wrapper


def _settings(**overrides: object) -> Settings:
    base = get_settings()
    values = {k: v for k, v in overrides.items() if v is not None}
    return base.model_copy(update=values) if values else base


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("bm25s").setLevel(logging.WARNING)


@app.command()
@_domain_errors
def index(
    corpus: Annotated[
        Path | None, typer.Option(help="Folder of documents (default: RAG_CORPUS_DIR).")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Index folder (default: RAG_INDEX_DIR).")] = None,
    force: Annotated[bool, typer.Option(help="Rebuild everything, reusing nothing.")] = False,
    report_file: Annotated[
        Path | None, typer.Option("--report", help="Also write what the build did as JSON here.")
    ] = None,
    engine: Annotated[
        str,
        typer.Option(help="Where to load, annotate, chunk and embed: local | ray."),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster: auto (this node's) or ray://head:10001; unset: local."),
    ] = None,
    workers: Annotated[
        int, typer.Option(min=1, help="Ray actors per step (and CPUs of a local Ray).")
    ] = 2,
    nice: Annotated[
        int | None,
        typer.Option(min=0, max=19, help="Run at this niceness at least (RAG_BUILD_NICE)."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=0, help="Math-library threads, 0: every core (RAG_BUILD_THREADS)."),
    ] = None,
) -> None:
    """Build or update the index from a folder of documents."""
    import json

    settings = _settings(corpus_dir=corpus, index_dir=out, build_nice=nice, build_threads=threads)
    if _OWN_PROCESS:  # before any model loads or thread starts: see rag/build_priority.py
        from rag.build_priority import bound_threads, lower_priority

        lower_priority(settings.build_nice)
        bound_threads(settings.build_threads)

    from rag.store.builder import IndexBuilder

    if engine not in ("local", "ray"):
        raise typer.BadParameter(f"unknown engine {engine!r}; valid: local, ray")
    if address is not None and engine != "ray":
        raise typer.BadParameter("--address needs --engine ray")
    builder = IndexBuilder.from_settings(
        settings, engine=_ray_engine(settings, address, workers) if engine == "ray" else None
    )
    report = builder.build(settings.corpus_dir, settings.index_dir, progress=True, force=force)
    for path, reason in report.skipped:
        shown = path.encode("utf-8", "backslashreplace").decode()
        typer.secho(f"skipped {shown}: {reason}", fg=typer.colors.YELLOW, err=True)
    if report_file is not None:
        report_file.write_text(json.dumps(report.to_dict(), ensure_ascii=False), encoding="utf-8")
    typer.echo(report.summary())


@app.command()
@_domain_errors
def ask(
    question: Annotated[str, typer.Argument(help="A question in plain English.")],
    top_k: Annotated[int | None, typer.Option("--top-k", help="Passages to retrieve.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print exactly what the API returns.")
    ] = False,
    explain: Annotated[bool, typer.Option(help="Show the scores of each stage.")] = False,
    documents: Annotated[
        list[str] | None, typer.Option("--document", "-d", help="Only this document (repeatable).")
    ] = None,
    date_from: Annotated[
        str | None, typer.Option(help="Only documents dated on/after YYYY-MM-DD.")
    ] = None,
    date_to: Annotated[
        str | None, typer.Option(help="Only documents dated on/before YYYY-MM-DD.")
    ] = None,
    index_dir: Annotated[Path | None, typer.Option("--index", help="Index folder.")] = None,
) -> None:
    """Answer one question from the index, with its citation."""
    from rag.api.schemas import ask_response
    from rag.filters import Filters
    from rag.pipeline import Pipeline
    from rag.render import render_answer

    settings = _settings(index_dir=index_dir)
    pipeline = Pipeline.from_settings(settings)
    filters = (
        Filters.create(documents, date_from, date_to)
        if (documents or date_from or date_to)
        else None
    )
    result = pipeline.ask(question, top_k=top_k, filters=filters)
    if as_json:
        typer.echo(ask_response(result, pipeline.index.documents).model_dump_json(indent=2))
        return
    typer.echo(render_answer(result, pipeline.index, explain=explain, threshold=pipeline.threshold))


@app.command()
@_domain_errors
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default RAG_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default RAG_PORT).")] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Worker processes; each loads its own models and index (memory x N)."
        ),
    ] = 1,
) -> None:
    """Serve the HTTP API (OpenAPI page at /docs)."""
    import uvicorn

    from rag.api import create_app
    from rag.logs import LOG_CONFIG

    settings = _settings(host=host, port=port)
    typer.echo(f"serving on http://{settings.host}:{settings.port} (API docs at /docs)")
    # proxy_headers=False: the app itself decides whose X-Forwarded-For to believe
    # (RAG_TRUSTED_PROXIES); uvicorn's default would believe any local peer's.
    # LOG_CONFIG, access_log=False: JSON lines, one per request from the app itself.
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": "info",
        "log_config": LOG_CONFIG,
        "access_log": False,
        "proxy_headers": False,
    }
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:  # each worker process builds its app from the same environment
        uvicorn.run("rag.api.app:create_app", factory=True, workers=workers, **options)


@app.command("eval")
@_domain_errors
def eval_command(
    sets: Annotated[
        list[Path] | None, typer.Option("--set", help="Evaluation file (JSON Lines); repeatable.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every number as JSON.")] = False,
    report_dir: Annotated[
        Path | None, typer.Option("--report", help="Write report.md/.html/.json here.")
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option(help="Evaluate over this corpus (indexed incrementally in --index)."),
    ] = None,
    index_dir: Annotated[Path | None, typer.Option("--index", help="Index folder.")] = None,
    rc: Annotated[
        bool,
        typer.Option("--rc", help="Reading comprehension: each question sees only its context_id."),
    ] = False,
    readers: Annotated[
        list[str] | None,
        typer.Option(
            "--reader", help="heuristic | transformers | fused; repeatable; first is primary."
        ),
    ] = None,
    baseline: Annotated[
        bool, typer.Option(help="Also run the Haystack retrieval baseline.")
    ] = True,
    gate: Annotated[
        Path | None, typer.Option(help="Fail when a metric crosses eval/thresholds.toml.")
    ] = None,
) -> None:
    """Evaluate answers, citations and retrieval on one or more evaluation sets."""
    import json

    from rag.config import ReaderKind
    from rag.evaluation.harness import EvalOptions, check_gate, evaluate
    from rag.evaluation.report import markdown, write_reports

    paths = sets or [Path("eval/dev.jsonl")]
    kinds = []
    for name in readers or []:
        try:
            kinds.append(ReaderKind(name))
        except ValueError:
            valid = ", ".join(k.value for k in ReaderKind)
            raise typer.BadParameter(f"unknown reader {name!r}; valid: {valid}") from None
    settings = _settings(index_dir=index_dir)
    if corpus is not None:
        settings = _index_corpus(settings, corpus, index_dir)
    report = evaluate(
        settings,
        EvalOptions(
            sets=paths,
            readers=kinds,
            reading_comprehension=rc,
            baseline=baseline,
            progress=not as_json,
        ),
    )
    if report_dir is not None:
        for written in write_reports(report, report_dir):
            typer.echo(f"wrote {written}", err=True)
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        typer.echo(markdown(report).split("## Failures")[0].rstrip())
    typer.echo("summary: " + json.dumps(report["summary"]), err=as_json)
    if gate is not None:
        failures = check_gate(report["summary"], gate)
        if failures:
            for line in failures:
                typer.secho(f"gate failed: {line}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1)
        typer.secho(f"gate passed ({gate})", fg=typer.colors.GREEN, err=True)


def _ray_engine(settings: Settings, address: str | None, workers: int) -> Any:
    """The Ray engine for ``rag index --engine ray`` (Ray itself is imported when it runs)."""
    from rag.store.ray_engine import RayEngine, RayOptions

    return RayEngine.from_settings(settings, RayOptions(address=address, workers=workers))


def _index_corpus(settings: Settings, corpus: Path, index_dir: Path | None) -> Settings:
    """Index an evaluation corpus (incrementally) in its own folder and point settings at it."""
    import hashlib

    from rag.store.builder import IndexBuilder

    target = index_dir or Path(".cache") / "eval-index" / (
        corpus.resolve().name + "-" + hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:8]
    )
    settings = settings.model_copy(update={"corpus_dir": corpus, "index_dir": target})
    report = IndexBuilder.from_settings(settings).build(corpus, target, progress=False)
    typer.echo(report.summary(), err=True)
    return settings


def main() -> None:
    global _OWN_PROCESS
    _OWN_PROCESS = True
    app()


if __name__ == "__main__":
    main()
