"""Benchmark: per-question latency by stage, ours against Haystack with the same reader.

Why: ``bench/ask_latency.py`` says how fast our service answers, not whether a standard
stack on the same models would answer as fast (or as well). This runs both in one
process, one run, on every question of eval/dev.jsonl and eval/test.jsonl:

- **ours**: the in-process ``rag.pipeline.Pipeline`` as served (``Answer.timings_ms``:
  analyse = spaCy question analysis + query embedding, retrieve = hybrid dense + BM25
  with rank fusion, read, verify, total);
- **Haystack** (haystack-ai 3, in memory): our index's chunks (same texts, same ids)
  embedded with the same packaged MiniLM into an ``InMemoryDocumentStore``, and the query
  pipeline ``SentenceTransformersTextEmbedder`` → ``InMemoryEmbeddingRetriever`` +
  ``InMemoryBM25Retriever`` → ``DocumentJoiner(reciprocal_rank_fusion, top_k=8)`` →
  ``TransformersExtractiveReader`` (Haystack 3's ``ExtractiveReader``, from
  transformers-haystack) on our trained reader ``models/reader``, ``top_k=1``,
  ``no_answer=True``: it abstains when its no-answer wins.

    .venv/bin/python bench/ask_compare.py [--questions N] [--index index]
        [--out reports/bench/ask_compare.json]

Both are warmed with one pass over the questions; then each question is asked once per
system, sequentially, the two systems alternating which goes first, so that load from
other work on the machine falls on both alike. Haystack's stages are timed inside its
own ``Pipeline.run`` by a tracer (``haystack.tracing``) that times each component's run
span: embed = the text embedder, retrieve = both retrievers and the joiner, read = the
reader; its total is the wall time of ``Pipeline.run``.

What differs (deliberately, or unavoidably):

- Haystack runs the reader as a torch fp32 model; ours runs it through ONNX Runtime fp32
  by default (``RAG_READER_RUNTIME``). The checkpoint is stored in fp16, which
  transformers 5 would load as stored (slow on a CPU, and not what we serve): the only
  setting of Haystack's reader besides the model path and ``device=cpu`` is
  ``model_kwargs={"dtype": torch.float32}``, as ``rag.reader.qa_model`` loads it.
  The rest are its defaults: 384-token windows with stride 128 (ours: 256 with 96,
  what the model was trained with, from its manifest), 20 answers
  per window, its own span probabilities and no-answer rule.
- Our reader scores and calibrates its candidates (``rag.reader``) with a threshold
  fitted on eval/dev.jsonl; Haystack's answers when its best span beats the product of
  the spans' complements. So the quality columns compare two whole systems, not the QA
  model alone, and the dev half of the questions is in-sample for our threshold.
- Haystack's retrievers keep their defaults (``top_k=10`` each, BM25L on its own
  tokens) and its fusion too (RRF k=61, equal weights); ours fuse ``RAG_CANDIDATES`` (50)
  per side with RRF k=20, dense weighted 0.5 against BM25's 1.0 (``RAG_RRF_K``,
  ``RAG_DENSE_WEIGHT``). Both read ``RAG_READ_PASSAGES`` (8) passages.
- Ours analyses the question with spaCy (entities, answer type) in its first stage;
  Haystack has no such stage, so its first column is the query embedding alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# No model may be downloaded: everything loads from local folders.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.config import Settings, get_settings  # noqa: E402
from rag.embedding import resolve_model_path  # noqa: E402
from rag.evaluation.dataset import EvalItem, load_eval_sets  # noqa: E402
from rag.metrics import exact_match, f1_score, percentile  # noqa: E402
from rag.pipeline import Pipeline  # noqa: E402
from rag.store.index import Index  # noqa: E402

#: Table columns: (heading, our stage, Haystack's stage).
COLUMNS = (
    ("analyse/embed", "analyse", "embed"),
    ("retrieve", "retrieve", "retrieve"),
    ("read", "read", "read"),
    ("total", "total", "total"),
)
#: Haystack's components summed into each of its stages.
HAYSTACK_STAGES = {"embed": ("embed",), "retrieve": ("dense", "bm25", "join"), "read": ("read",)}


@dataclass(frozen=True, slots=True)
class Run:
    """One question's outcome: the answer text (None: abstained) and its stage timings."""

    answer: str | None
    timings_ms: dict[str, float]


def questions(limit: int | None = None) -> list[EvalItem]:
    items = load_eval_sets([ROOT / "eval" / "dev.jsonl", ROOT / "eval" / "test.jsonl"])
    return items[:limit] if limit else items


class _Span:
    """The tracer's span: tags are ignored, only the duration matters."""

    def set_tag(self, key: str, value: Any) -> None:
        pass

    def set_tags(self, tags: dict[str, Any]) -> None:
        pass

    def set_content_tag(self, key: str, value: Any) -> None:
        pass

    @property
    def raw_span(self) -> Any:
        return self

    def get_correlation_data_for_logs(self) -> dict[str, Any]:
        return {}


class ComponentTimer:
    """A ``haystack.tracing`` tracer that times each component run of a pipeline run.

    Built as a subclass of Haystack's ``Tracer`` in :func:`component_timer`, so that this
    module imports without Haystack.
    """

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextlib.contextmanager
    def trace(
        self, operation_name: str, tags: dict[str, Any] | None = None, parent_span: Any = None
    ) -> Iterator[_Span]:
        if operation_name != "haystack.component.run":
            yield _Span()
            return
        name = str((tags or {}).get("haystack.component.name", "?"))
        started = time.perf_counter()
        try:
            yield _Span()
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            self.ms[name] = self.ms.get(name, 0.0) + elapsed

    def current_span(self) -> None:
        return None


def component_timer() -> ComponentTimer:
    """A :class:`ComponentTimer` that Haystack accepts, enabled as its global tracer."""
    from haystack import tracing

    timer_type = type("HaystackComponentTimer", (ComponentTimer, tracing.Tracer), {})
    timer: ComponentTimer = timer_type()
    tracing.enable_tracing(timer)  # type: ignore[arg-type]
    return timer


def haystack_pipeline(settings: Settings, index: Index) -> Any:
    """Haystack's hybrid extractive QA pipeline over our index's chunks, warmed."""
    import torch
    from haystack import Document, Pipeline
    from haystack.components.joiners import DocumentJoiner
    from haystack.components.retrievers.in_memory import (
        InMemoryBM25Retriever,
        InMemoryEmbeddingRetriever,
    )
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.utils import ComponentDevice
    from haystack_integrations.components.embedders.sentence_transformers import (
        SentenceTransformersDocumentEmbedder,
        SentenceTransformersTextEmbedder,
    )
    from haystack_integrations.components.readers.transformers import (
        TransformersExtractiveReader,
    )

    cpu = ComponentDevice.from_str("cpu")
    model = resolve_model_path(settings.embedding_model)
    docs = [
        Document(id=c.id, content=c.text, meta={"document_id": c.document_id, "start": c.start})
        for c in index.chunks
    ]
    doc_embedder = SentenceTransformersDocumentEmbedder(
        model=model, device=cpu, progress_bar=False, normalize_embeddings=True
    )
    doc_embedder.warm_up()
    store = InMemoryDocumentStore()
    store.write_documents(doc_embedder.run(documents=docs)["documents"])

    p = Pipeline()
    p.add_component(
        "embed",
        SentenceTransformersTextEmbedder(
            model=model, device=cpu, progress_bar=False, normalize_embeddings=True
        ),
    )
    p.add_component("dense", InMemoryEmbeddingRetriever(document_store=store))
    p.add_component("bm25", InMemoryBM25Retriever(document_store=store))
    p.add_component(
        "join",
        DocumentJoiner(join_mode="reciprocal_rank_fusion", top_k=settings.read_passages),
    )
    p.add_component(
        "read",
        TransformersExtractiveReader(
            model=settings.reader_model,
            device=cpu,
            top_k=1,
            no_answer=True,
            model_kwargs={"dtype": torch.float32},
        ),
    )
    p.connect("embed.embedding", "dense.query_embedding")
    p.connect("dense.documents", "join.documents")
    p.connect("bm25.documents", "join.documents")
    p.connect("join.documents", "read.documents")
    p.warm_up()
    return p


def ask_ours(pipeline: Pipeline, question: str) -> Run:
    result = pipeline.ask(question)
    return Run(result.answer.text if result.answer else None, dict(result.timings_ms))


def ask_haystack(pipeline: Any, timer: ComponentTimer, question: str) -> Run:
    timer.ms = {}
    started = time.perf_counter()
    out = pipeline.run(
        {"embed": {"text": question}, "bm25": {"query": question}, "read": {"query": question}}
    )
    total = (time.perf_counter() - started) * 1000
    answers = out["read"]["answers"]
    best = answers[0].data if answers else None  # data None: the no-answer won
    timings = haystack_stages(timer.ms)
    timings["total"] = round(total, 2)
    return Run(best or None, timings)


def haystack_stages(component_ms: dict[str, float]) -> dict[str, float]:
    """Haystack's component timings summed into stages (``HAYSTACK_STAGES``), and each
    component's own under ``component:<name>``."""
    stages = {
        stage: round(sum(component_ms.get(c, 0.0) for c in parts), 2)
        for stage, parts in HAYSTACK_STAGES.items()
    }
    stages.update({f"component:{k}": round(v, 2) for k, v in component_ms.items()})
    return stages


def latency(runs: Sequence[Run]) -> dict[str, dict[str, float]]:
    """p50/p95 of every stage that the runs timed."""
    stages: dict[str, list[float]] = {}
    for run in runs:
        for stage, ms in run.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    return {
        stage: {"p50": round(percentile(v, 50), 1), "p95": round(percentile(v, 95), 1)}
        for stage, v in stages.items()
    }


def answer_scores(
    items: Sequence[EvalItem], answers: Sequence[str | None]
) -> dict[str, float | None]:
    """SQuAD 2.0 EM/F1 on the answerable questions, abstentions on both kinds (None for a
    kind with no question: valid JSON, unlike NaN)."""
    pairs = list(zip(items, answers, strict=True))
    ans = [(i, a) for i, a in pairs if i.answerable]
    unans = [a for i, a in pairs if not i.answerable]

    def mean(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    return {
        "n_answerable": len(ans),
        "n_unanswerable": len(unans),
        "answerable_em": mean([exact_match(a, i.answers) for i, a in ans]),
        "answerable_f1": mean([f1_score(a, i.answers) for i, a in ans]),
        "answerable_abstained": mean([float(a is None) for _, a in ans]),
        "unanswerable_abstained": mean([float(a is None) for a in unans]),
    }


def measure(
    items: Sequence[EvalItem], systems: dict[str, Callable[[str], Run]]
) -> dict[str, list[Run]]:
    """Warm every system with one pass, then ask each question once per system,
    alternating which system goes first."""
    for ask in systems.values():
        for item in items:
            ask(item.question)
    runs: dict[str, list[Run]] = {name: [] for name in systems}
    names = list(systems)
    for n, item in enumerate(items):
        for name in names if n % 2 == 0 else reversed(names):
            runs[name].append(systems[name](item.question))
    return runs


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def table(results: dict[str, dict[str, Any]]) -> str:
    head = [h for h, _, _ in COLUMNS]
    lines = [
        "| system | "
        + " | ".join(f"{h} p50/p95" for h in head)
        + " | answerable EM / F1 | unanswerable abstained |",
        "|---|" + "---|" * (len(head) + 2),
    ]
    for name, r in results.items():
        cells = []
        for _, ours, theirs in COLUMNS:
            stage = r["latency_ms"].get(ours if name == "ours" else theirs, {})
            cells.append(f"{stage.get('p50', '–')} / {stage.get('p95', '–')}")
        q = r["answers"]
        cells.append(f"{_num(q['answerable_em'])} / {_num(q['answerable_f1'])}")
        cells.append(f"{_num(q['unanswerable_abstained'])} ({q['n_unanswerable']})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=None, help="only the first N")
    parser.add_argument("--index", type=Path, default=ROOT / "index")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench" / "ask_compare.json")
    args = parser.parse_args()
    settings = get_settings().model_copy(update={"index_dir": args.index})
    items = questions(args.questions)
    print("loading ours and Haystack ...", flush=True)
    ours = Pipeline.from_settings(settings)
    haystack = haystack_pipeline(settings, ours.index)
    timer = component_timer()
    systems: dict[str, Callable[[str], Run]] = {
        "ours": lambda q: ask_ours(ours, q),
        "haystack": lambda q: ask_haystack(haystack, timer, q),
    }
    print(f"warming up and measuring over {len(items)} questions ...", flush=True)
    runs = measure(items, systems)
    results: dict[str, dict[str, Any]] = {
        name: {
            "latency_ms": latency(r),
            "answers": answer_scores(items, [x.answer for x in r]),
        }
        for name, r in runs.items()
    }
    report = {
        "questions": len(items),
        "chunks": len(ours.index.chunks),
        "read_passages": settings.read_passages,
        "ours_reader": f"{settings.reader} ({settings.reader_runtime})",
        "haystack_reader": "TransformersExtractiveReader (torch fp32)",
        "haystack_timing": "component run spans of Pipeline.run (haystack.tracing); total = wall",
        "systems": results,
        "per_question": [
            {"id": item.id, **{name: runs[name][n].answer for name in runs}}
            for n, item in enumerate(items)
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"\n{len(items)} questions, {report['chunks']} chunks, ms, warm, one run\n")
    print(table(results))
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    main()
