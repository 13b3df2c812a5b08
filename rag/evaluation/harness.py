"""Orchestrates an evaluation run: readers side by side, retrieval ablations, baseline."""

from __future__ import annotations

import logging
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rag.config import ReaderKind, RetrievalMode, Settings
from rag.errors import EvalSetError, ModelLoadError, RagError
from rag.evaluation.dataset import load_eval_sets
from rag.evaluation.runner import (
    Prediction,
    RetrievalRun,
    answer_metrics,
    best_threshold,
    citation_metrics,
    latency,
    mean_passages_read,
    reliability,
    run_answers,
    run_retrieval,
    threshold_sweep,
)
from rag.pipeline import Pipeline, load_components, make_reader

log = logging.getLogger(__name__)


@dataclass(slots=True)
class EvalOptions:
    sets: list[Path]
    readers: list[ReaderKind] = field(default_factory=list)  # first is the primary
    reading_comprehension: bool = False
    baseline: bool = True
    progress: bool = True


def _finite(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else round(value, 4)


def _clean(data: Any) -> Any:
    """NaN -> None and rounding, so the report is valid JSON."""
    if isinstance(data, dict):
        return {k: _clean(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_clean(v) for v in data]
    if isinstance(data, float):
        return _finite(data)
    return data


def _retrieval_dict(run: RetrievalRun) -> dict[str, Any]:
    return {
        "by_document": run.by_document,
        "by_evidence": run.by_evidence,
        "evidence_not_found": run.missing_evidence,
    }


def _failures(predictions: list[Prediction], index_docs: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for p in predictions:
        if p.f1 >= 1.0:
            continue
        rows.append(
            {
                "id": p.item.id,
                "question": p.item.question,
                "gold": list(p.item.answers) or None,
                "gold_documents": list(p.item.documents),
                "prediction": p.answer,
                "best_candidate": p.best,
                "best_score": p.best_score,
                "f1": p.f1,
                "predicted_document": p.document_id,
                "passages": [
                    {"document_id": d, "start": s, "end": e, "text": index_docs[d].text[s:e][:240]}
                    for d, s, e in p.passages[:5]
                ],
            }
        )
    return rows


def _available_readers(settings: Settings, wanted: list[ReaderKind]) -> list[ReaderKind]:
    if wanted:
        return wanted
    kinds = [settings.reader]
    for kind in (ReaderKind.HEURISTIC, ReaderKind.TRANSFORMERS, ReaderKind.FUSED):
        if kind not in kinds:
            kinds.append(kind)
    return kinds


def evaluate(settings: Settings, options: EvalOptions) -> dict[str, Any]:
    """Run everything and return the report as plain data (see README "Evaluation")."""
    items = load_eval_sets(options.sets)
    kinds = _available_readers(settings, options.readers)
    primary = kinds[0]
    base = load_components(settings, reader=make_reader(settings, primary))
    report: dict[str, Any] = {
        "meta": {
            "sets": [str(p) for p in options.sets],
            "mode": "reading comprehension" if options.reading_comprehension else "open retrieval",
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "index": str(base.index.path),
            "documents": len(base.index.documents),
            "chunks": len(base.index.chunks),
            "embedding_model": base.index.manifest.embedding_model,
            "retrieval_mode": settings.retrieval_mode.value,
            "top_k": settings.top_k,
            "primary_reader": primary.value,
            "n": len(items),
            "n_answerable": sum(1 for i in items if i.answerable),
            "n_unanswerable": sum(1 for i in items if not i.answerable),
        },
        "readers": {},
        "skipped_readers": {},
    }
    primary_predictions: list[Prediction] = []
    primary_pipeline: Pipeline | None = None
    for kind in kinds:
        try:
            shared = getattr(base.reader, "model", None)  # one loaded QA model for all readers
            reader = base.reader if kind is primary else make_reader(settings, kind, model=shared)
            reader.warm_up()
        except (ModelLoadError, RagError) as exc:
            if kind is primary:
                raise
            report["skipped_readers"][kind.value] = str(exc)
            continue
        pipeline = Pipeline(settings, replace(base, reader=reader))
        preds = run_answers(
            pipeline,
            items,
            reading_comprehension=options.reading_comprehension,
            progress=options.progress,
            label=kind.value,
        )
        sweep = threshold_sweep(preds)
        report["readers"][kind.value] = {
            "threshold": pipeline.threshold,
            "answers": answer_metrics(preds, pipeline.threshold),
            "citations": citation_metrics(preds),
            "best_threshold_on_this_set": best_threshold(sweep),
            "reliability": reliability(preds),
            "sweep": sweep,
            "latency_ms": latency(preds),
            "passages_read": mean_passages_read(preds),
        }
        if kind is primary:
            primary_predictions, primary_pipeline = preds, pipeline
    assert primary_pipeline is not None
    report["retrieval"] = {"rag": {}, "haystack": {}}
    for mode in RetrievalMode:
        run = run_retrieval(
            primary_pipeline, items, mode, reading_comprehension=options.reading_comprehension
        )
        report["retrieval"]["rag"][mode.value] = _retrieval_dict(run)
    if options.baseline and not options.reading_comprehension:
        try:
            from rag.evaluation.baseline import haystack_retrieval

            for name, run in haystack_retrieval(items, base.index).items():
                report["retrieval"]["haystack"][name] = _retrieval_dict(run)
        except ImportError as exc:
            report["retrieval"]["haystack_error"] = f"haystack not installed: {exc}"
    report["failures"] = _failures(primary_predictions, base.index.documents)
    report["summary"] = summary(report)
    return _clean(report)


def summary(report: dict[str, Any]) -> dict[str, float]:
    """The flat numbers the CI gate checks, for the primary reader."""
    primary = report["meta"]["primary_reader"]
    r = report["readers"][primary]
    mode_name = report["meta"]["retrieval_mode"]
    ev = report["retrieval"]["rag"][mode_name]["by_evidence"]
    return {
        "f1": r["answers"]["f1"],
        "em": r["answers"]["em"],
        "answerable_f1": r["answers"]["answerable_f1"],
        "answerable_em": r["answers"]["answerable_em"],
        "unanswerable_abstained": r["answers"]["unanswerable_abstained"],
        "answerable_abstained": r["answers"]["answerable_abstained"],
        "citation_accuracy": r["citations"]["citation_accuracy"],
        "evidence_recall_at_5": ev["recall@5"],
        "evidence_mrr": ev["mrr"],
        "total_p50_ms": r["latency_ms"].get("total", {}).get("p50", float("nan")),
        "passages_read": r.get("passages_read", float("nan")),
    }


def check_gate(summary_values: dict[str, float | None], thresholds_file: Path) -> list[str]:
    """Failures against ``[min]`` and ``[max]`` tables of a TOML file (empty: passed)."""
    try:
        gate = tomllib.loads(thresholds_file.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise EvalSetError(f"cannot read thresholds {thresholds_file}: {exc}") from exc
    failures = []
    for name, limit in gate.get("min", {}).items():
        value = summary_values.get(name)
        if value is None or value < limit:
            failures.append(f"{name} = {value} is below the minimum {limit}")
    for name, limit in gate.get("max", {}).items():
        value = summary_values.get(name)
        if value is None or value > limit:
            failures.append(f"{name} = {value} is above the maximum {limit}")
    return failures
