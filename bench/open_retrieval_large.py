"""Benchmark: open retrieval over every paragraph of ``../shared/datasets`` (a real corpus).

Not synthetic: every distinct paragraph (context) of every data set in
``../shared/datasets`` (SQuAD 1.1 train, SQuAD 2.0 dev-28, SQuADShifts new-wiki, QED,
PolicyQA, COVID-QA, ContractNLI), read by ``rag.train.data``'s loaders, becomes one
plain-text document, and a seeded sample of SQuAD 1.1 train questions is asked against
all of them through the served path: a smoke test of open retrieval at that size
(about 31k documents; COVID-QA's papers and ContractNLI's agreements are long and make
several chunks each).

1. **Corpus.** Each paragraph is written once to ``<work>/corpus/<source>/<title>-p<n>-<hash>.txt``:
   the data set it first appears in, its article's title (ASCII, shortened), its
   position among that article's distinct paragraphs, and the first 12 hex digits of
   the sha256 of its text with whitespace runs collapsed. Identical contexts (up to
   whitespace) are one document, owned by the first data set and article that has it
   (``also`` in the map lists the others). The document id is that path without
   ``.txt``; ``<work>/paragraphs.jsonl`` maps every id back to its source, title,
   paragraph number, hash and question count. Files are rewritten only when their text
   changes and files no longer wanted are deleted, so a rerun leaves the corpus as it
   was. ``--limit-docs N`` keeps the first N paragraphs (data sets in
   ``rag.train.data.SOURCES`` order) for a quick try; ``--sources squad11`` a subset.
2. **Build**, in a fresh child process (its peak RSS is the build's own): the project's
   ``IndexBuilder.from_settings`` with the default settings (so the dense index type is
   chosen by size as in production: IVF from 10k chunks), ``build(corpus, index)``.
   Recorded: build seconds, documents, chunks, chunks embedded, chunks/s, the live
   version's size on disk, the dense index, the child's peak RSS (``VmHWM``).
   The build is incremental by design: a second run over an unchanged corpus embeds
   nothing and publishes nothing. So a rerun reuses the built index and only asks
   questions; it still runs the builder (which then hashes the corpus and checks the
   index, "up to date") and reports the numbers of the build that made the live
   version (``<work>/build.json``) beside that check's. A build killed midway publishes
   nothing (builds are atomic) and starts over on the next run.
3. **Ask**, in another fresh child process, as the service does: ``Pipeline.from_settings``
   (index with checksums, embedder, spaCy, the default reader), then ``--warmup``
   questions that are not measured, then ``--questions`` SQuAD 1.1 train questions
   (a seeded sample of those whose paragraph is in the corpus), one at a time, open
   retrieval over everything, default settings (``top_k=10`` is asked so ten passages
   come back; the reader reads ``RAG_READ_PASSAGES`` whatever ``top_k`` is, and the
   retrieval depth is ``RAG_CANDIDATES``, so the answer and the ranking are those of a
   default question). Reported: recall@1/5/10 and MRR of the question's own paragraph
   (its document id among the ranked passages, rank = passage rank, as the evaluation
   harness counts), answer F1 / EM against the gold answers (``rag.metrics``; an
   abstention scores 0), abstention rate, the share of answers whose citation verifies
   against the stored text (re-checked here) and that cite the question's own paragraph,
   p50/p95 latency of each stage (the pipeline's ``timings_ms``), the serving process's
   load time and RSS after load.

**Answer F1 is optimistic.** The reader's QA model (``models/reader``) was trained on a
share of SQuAD 1.1 train's questions (its manifest: ``squad11=0.3``), so many sampled
questions, and all of their paragraphs, were seen in training. Retrieval recall is the
real measure of this smoke test: the retriever (the packaged embedder and BM25) was
never trained on these data.

    .venv/bin/python bench/open_retrieval_large.py [--questions 500] [--seed 0]
        [--limit-docs N] [--sources squad11,...] [--work .cache/open-large]

Prints Markdown tables and writes ``reports/bench/open_retrieval_large.json``. The
corpus and index live in ``--work`` (default ``.cache/open-large/``, git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import random
import re
import subprocess
import sys
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from index_scale import status_kb  # noqa: E402

#: The shared data sets, relative to the project folder, as ``rag.train`` finds them.
DEFAULT_DATA = Path(os.environ.get("RAG_TRAIN_DATA", "../shared/datasets"))
#: Ranks at which recall is reported; passages asked for per question.
RECALL_KS = (1, 5, 10)
K = max(RECALL_KS)
#: Stages of ``AskResult.timings_ms``, in pipeline order.
STAGES = ("analyse", "retrieve", "read", "verify", "total")
_TITLE_CHARS = 60
_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


# -- corpus (pure: tested in tests/test_open_retrieval_large.py) ---------------------------


def paragraph_key(text: str) -> str:
    """sha256 of the text with whitespace runs collapsed: identical contexts share it."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def title_slug(title: str) -> str:
    """An article title as a short ASCII file-name part ("Beyoncé" -> "Beyonce")."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = _NOT_NAME.sub("_", ascii_title).strip("_")[:_TITLE_CHARS].rstrip("_")
    return slug or "untitled"


def document_name(source: str, title: str, number: int, key: str) -> str:
    """The document id (and, with ``.txt``, the corpus path) of one paragraph."""
    return f"{source}/{title_slug(title)}-p{number:04d}-{key[:12]}"


@dataclass(slots=True)
class Paragraph:
    """One distinct context of the data sets: one document of the corpus."""

    doc_id: str
    source: str
    title: str
    number: int  # position among its article's distinct paragraphs, from 0
    key: str  # paragraph_key of the text
    text: str
    questions: int = 0
    also: list[str] = field(default_factory=list)  # other "source:title" holding it

    @property
    def file(self) -> str:
        return f"{self.doc_id}.txt"

    def record(self) -> dict[str, Any]:
        """The line of ``paragraphs.jsonl`` (everything but the text)."""
        row = asdict(self)
        row.pop("text")
        row["file"] = self.file
        row["chars"] = len(self.text)
        return row


def collect_paragraphs(examples: Iterable[Any]) -> tuple[list[Paragraph], dict[str, str]]:
    """Distinct contexts of ``examples`` (``rag.train.data.Example``) in first-seen order,
    and the map from ``paragraph_key`` to document id.

    A context met again (in another data set or article, or under other whitespace) is
    the same document: its question count grows and the other source is noted.
    """
    paragraphs: list[Paragraph] = []
    by_key: dict[str, Paragraph] = {}
    per_article: dict[tuple[str, str], int] = {}
    for ex in examples:
        if not ex.context.strip():
            continue
        key = paragraph_key(ex.context)
        para = by_key.get(key)
        if para is None:
            article = (ex.source, ex.title)
            number = per_article.get(article, 0)
            per_article[article] = number + 1
            name = document_name(ex.source, ex.title, number, key)
            para = Paragraph(name, ex.source, ex.title, number, key, ex.context)
            by_key[key] = para
            paragraphs.append(para)
        elif (ex.source, ex.title) != (para.source, para.title):
            other = f"{ex.source}:{ex.title}"
            if other not in para.also:
                para.also.append(other)
        para.questions += 1
    return paragraphs, {k: p.doc_id for k, p in by_key.items()}


def sync_corpus(paragraphs: Sequence[Paragraph], corpus_dir: Path) -> dict[str, int]:
    """Make ``corpus_dir`` hold exactly one file per paragraph; rewrite only what changed.

    A file whose text is already right is not touched (the build reuses it by hash
    anyway); ``.txt`` files of paragraphs no longer wanted are deleted.
    """
    counts = {"written": 0, "unchanged": 0, "removed": 0}
    wanted: set[Path] = set()
    for para in paragraphs:
        path = corpus_dir / para.file
        wanted.add(path)
        data = para.text.encode("utf-8")
        if path.is_file() and path.read_bytes() == data:
            counts["unchanged"] += 1
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")  # .tmp is never a document (rag.ingest)
        tmp.write_bytes(data)
        os.replace(tmp, path)
        counts["written"] += 1
    if corpus_dir.is_dir():
        for path in sorted(corpus_dir.rglob("*.txt")):
            if path not in wanted:
                path.unlink()
                counts["removed"] += 1
        for folder in sorted((p for p in corpus_dir.rglob("*") if p.is_dir()), reverse=True):
            if not any(folder.iterdir()):
                folder.rmdir()
    return counts


def sample_questions(
    examples: Sequence[Any], in_corpus: dict[str, str], n: int, warmup: int, seed: int
) -> tuple[list[Any], list[Any]]:
    """(measured, warm-up): disjoint seeded samples of the examples whose paragraph is
    in the corpus, in the loaders' order before sampling."""
    pool = [ex for ex in examples if paragraph_key(ex.context) in in_corpus]
    rng = random.Random(seed)
    chosen = rng.sample(range(len(pool)), min(n + warmup, len(pool)))
    measured = [pool[i] for i in chosen[:n]]
    warm = [pool[i] for i in chosen[n:]]
    return measured, warm


# -- loading the data sets ---------------------------------------------------------------


def data_dir(path: Path) -> Path:
    return path if path.is_absolute() else ROOT / path


def load_all(folder: Path, names: Sequence[str]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """Every example of the named data sets, with the loaders' counts per source.

    Through ``rag.train.data``'s loaders; SQuAD 1.1 train with ``keep_heuristic`` (its
    guessed answer positions do not matter here: every paragraph and gold text counts).
    """
    from rag.train.data import QED, SOURCES, SQUAD11, load_qed, load_squad

    by_source: dict[str, list[Any]] = {}
    stats: dict[str, Any] = {}
    for spec in SOURCES:
        if spec.name not in names:
            continue
        files = sorted((folder / spec.folder).glob(spec.pattern))
        if not files:
            raise SystemExit(f"no {spec.pattern} files in {folder / spec.folder}")
        if spec.kind == QED:
            examples, st = load_qed(files)
        else:
            examples, st = load_squad(files, spec.name, keep_heuristic=spec.name == SQUAD11)
        by_source[spec.name] = examples
        stats[spec.name] = {
            "read": st.read,
            "kept": len(examples),
            "dropped_offset_mismatch": st.dropped_offset_mismatch,
            "dropped_empty": st.dropped_empty,
            "files": [os.path.relpath(f["path"], ROOT) for f in st.files],
        }
    return by_source, stats


# -- child processes ---------------------------------------------------------------------


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def child_build(args: argparse.Namespace) -> dict[str, Any]:
    """Build (or bring up to date) ``<work>/index`` from ``<work>/corpus``."""
    from rag.config import get_settings
    from rag.store.builder import IndexBuilder
    from rag.store.layout import current_version
    from rag.store.manifest import read_manifest

    settings = get_settings()
    builder = IndexBuilder.from_settings(settings)
    report = builder.build(settings.corpus_dir, settings.index_dir, progress=True)
    live = current_version(settings.index_dir)
    assert live is not None
    manifest = read_manifest(live)
    return {
        "version": live.name,
        "up_to_date": report.up_to_date,
        "full_rebuild_reason": report.full_rebuild_reason,
        "documents": report.documents,
        "chunks": report.chunks,
        "embedded": report.embedded,
        "new": len(report.new),
        "changed": len(report.changed),
        "removed": len(report.removed),
        "unchanged": len(report.unchanged),
        "skipped": [list(s) for s in report.skipped],
        "seconds": round(report.seconds, 1),
        "chunks_per_second": (
            round(report.embedded / report.seconds, 1) if report.embedded else None
        ),
        "index_mb": round(_tree_bytes(live) / 1e6, 1),
        "dense": manifest.dense,
        "peak_rss_mb": round(status_kb("VmHWM") / 1024, 1),
        "summary": report.summary(),
    }


def child_ask(args: argparse.Namespace) -> dict[str, Any]:
    """Load as the service does, then ask every question once, timed."""
    from rag.config import get_settings
    from rag.errors import RagError
    from rag.pipeline import Pipeline

    started = time.perf_counter()
    pipeline = Pipeline.from_settings(get_settings())
    load_s = time.perf_counter() - started
    ready_s = time.time() - args.t0
    rss_mb = status_kb("VmRSS") / 1024
    hwm_mb = status_kb("VmHWM") / 1024
    work = json.loads(Path(args.child_input).read_text(encoding="utf-8"))
    index = pipeline.index
    for question in work["warmup"]:
        pipeline.ask(question, top_k=K)
    rows = []
    for question in work["questions"]:
        try:
            result = pipeline.ask(question, top_k=K)
        except RagError as exc:
            rows.append({"error": f"{exc.__class__.__name__}: {exc}"})
            continue
        row: dict[str, Any] = {
            "ranked": [p.chunk.document_id for p in result.passages],
            "timings_ms": result.timings_ms,
            "answer": None,
        }
        answer = result.answer
        if answer is not None:
            c = answer.citation
            doc = index.documents.get(c.document_id)
            row["answer"] = answer.text
            row["score"] = answer.score
            row["cited"] = c.document_id
            row["verified"] = bool(
                doc is not None
                and doc.text[c.start : c.end] == answer.text
                and doc.text[c.sentence.start : c.sentence.end] == c.sentence_text
                and c.sentence.start <= c.start <= c.end <= c.sentence.end
            )
        rows.append(row)
    return {
        "load_s": round(load_s, 2),
        "ready_s": round(ready_s, 2),
        "rss_after_load_mb": round(rss_mb, 1),
        "hwm_after_load_mb": round(hwm_mb, 1),
        "peak_rss_mb": round(status_kb("VmHWM") / 1024, 1),
        "chunks": len(index.chunks),
        "documents": len(index.documents),
        "dense": index.dense_info.to_dict(),
        "reader": pipeline.components.reader.name,
        "threshold": pipeline.threshold,
        "rows": rows,
    }


def run_child(stage: str, work: Path, child_input: Path | None = None) -> dict[str, Any]:
    """``stage`` in a fresh process over ``<work>``; its stderr (progress) passes through."""
    out = work / f"{stage}.out.json"
    out.unlink(missing_ok=True)
    env = {
        **os.environ,
        "RAG_CORPUS_DIR": str(work / "corpus"),
        "RAG_INDEX_DIR": str(work / "index"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    if stage == "ask":
        env["TQDM_DISABLE"] = "1"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", stage]
    cmd += ["--child-output", str(out), "--t0", repr(time.time())]
    if child_input is not None:
        cmd += ["--child-input", str(child_input)]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the {stage} process failed (exit {proc.returncode}); see above")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


# -- scoring -----------------------------------------------------------------------------


def score(examples: Sequence[Any], rows: Sequence[dict[str, Any]], gold_ids: Sequence[str]) -> Any:
    """Retrieval, answer, citation and latency figures over the asked questions."""
    from rag.metrics import exact_match, f1_score, percentile, recall_at_k, reciprocal_rank

    def mean(values: Sequence[float]) -> float:
        return round(sum(values) / len(values), 4) if values else float("nan")

    per_question: list[dict[str, Any]] = []
    relevant: list[list[bool]] = []
    f1s: list[float] = []
    ems: list[float] = []
    answered = verified = own = errors = 0
    timings: dict[str, list[float]] = {s: [] for s in STAGES}
    for ex, row, gold in zip(examples, rows, gold_ids, strict=True):
        if "error" in row:
            errors += 1
            relevant.append([])
            f1s.append(0.0)
            ems.append(0.0)
            per_question.append({"id": ex.id, "gold": gold, "error": row["error"]})
            continue
        rel = [d == gold for d in row["ranked"]]
        relevant.append(rel)
        answer = row["answer"]
        f1s.append(f1_score(answer, ex.answers))
        ems.append(exact_match(answer, ex.answers))
        if answer is not None:
            answered += 1
            verified += bool(row["verified"])
            own += row["cited"] == gold
        for stage in STAGES:
            if stage in row["timings_ms"]:
                timings[stage].append(float(row["timings_ms"][stage]))
        per_question.append(
            {
                "id": ex.id,
                "question": ex.question,
                "gold": gold,
                "rank": rel.index(True) + 1 if any(rel) else None,
                "answer": answer,
                "golds": list(ex.answers),
                "f1": round(f1s[-1], 3),
                "cited": row.get("cited"),
            }
        )
    n = len(rows)
    summary: dict[str, Any] = {
        "questions": n,
        "errors": errors,
        **{f"recall@{k}": mean([recall_at_k(r, k) for r in relevant]) for k in RECALL_KS},
        "mrr": mean([reciprocal_rank(r) for r in relevant]),
        "f1": mean(f1s),
        "em": mean(ems),
        "f1_answered": mean([f for f, r in zip(f1s, rows, strict=True) if r.get("answer")]),
        "abstention_rate": round(1 - answered / n, 4) if n else float("nan"),
        "citation_verified_rate": round(verified / answered, 4) if answered else float("nan"),
        "cites_own_paragraph_rate": round(own / answered, 4) if answered else float("nan"),
        "latency_ms": {
            s: {"p50": round(percentile(v, 50), 1), "p95": round(percentile(v, 95), 1)}
            for s, v in timings.items()
            if v
        },
    }
    return summary, per_question


# -- the run -----------------------------------------------------------------------------


CAVEAT = (
    "Answer F1/EM are optimistic: the reader's QA model was trained on a share of SQuAD "
    "1.1 train (its manifest: squad11=0.3), the questions asked here. Retrieval recall is "
    "the real measure of this smoke test."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=ROOT / ".cache" / "open-large")
    parser.add_argument(
        "--sources", default="", help="data sets to index (default: all), e.g. squad11"
    )
    parser.add_argument("--limit-docs", type=int, default=0, help="first N paragraphs only")
    parser.add_argument("--questions", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured questions first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    parser.add_argument("--child", choices=("build", "ask"), help=argparse.SUPPRESS)
    parser.add_argument("--child-input", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import logging

        logging.basicConfig(level=logging.WARNING)
        import bm25s  # noqa: F401  (it sets its own logger to DEBUG when imported)

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # as the CLI does
        result = child_build(args) if args.child == "build" else child_ask(args)
        Path(args.child_output).write_text(json.dumps(result), encoding="utf-8")
        return

    from rag.train.data import SOURCES, SQUAD11

    names = [s.strip() for s in args.sources.split(",") if s.strip()] or [s.name for s in SOURCES]
    unknown = set(names) - {s.name for s in SOURCES}
    if unknown:
        raise SystemExit(f"unknown sources {sorted(unknown)}; known: {[s.name for s in SOURCES]}")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)

    # 1. the corpus
    t = time.perf_counter()
    folder = data_dir(args.data_dir)
    by_source, load_stats = load_all(folder, names)
    paragraphs, _ = collect_paragraphs(ex for n in names for ex in by_source[n])
    all_paragraphs = len(paragraphs)
    if args.limit_docs:
        paragraphs = paragraphs[: args.limit_docs]
    in_corpus = {p.key: p.doc_id for p in paragraphs}
    counts = sync_corpus(paragraphs, work / "corpus")
    with (work / "paragraphs.jsonl").open("w", encoding="utf-8") as fh:
        for para in paragraphs:
            fh.write(json.dumps(para.record(), ensure_ascii=False) + "\n")
    per_source: dict[str, int] = {}
    for para in paragraphs:
        per_source[para.source] = per_source.get(para.source, 0) + 1
    corpus = {
        "sources": names,
        "distinct_paragraphs": all_paragraphs,
        "documents": len(paragraphs),
        "limit_docs": args.limit_docs or None,
        "documents_per_source": per_source,
        "chars": sum(len(p.text) for p in paragraphs),
        "files": counts,
        "loaders": load_stats,
        "seconds": round(time.perf_counter() - t, 1),
    }
    corpus["complete"] = not args.limit_docs and len(names) == len(SOURCES)
    corpus["subset"] = ", ".join(names) + (
        f", first {len(paragraphs):,} paragraphs" if args.limit_docs else ""
    )
    label = "all distinct paragraphs" if not args.limit_docs else f"first {len(paragraphs)}"
    print(
        f"corpus: {len(paragraphs):,} documents ({label} of {all_paragraphs:,}; "
        f"{', '.join(f'{k} {v:,}' for k, v in per_source.items())}), files {counts}",
        flush=True,
    )

    # 2. the index (incremental: nothing is embedded when the corpus did not change)
    print("building (or checking) the index in a fresh process ...", flush=True)
    check = run_child("build", work)
    built_file = work / "build.json"
    if check["up_to_date"] and built_file.is_file():
        build = json.loads(built_file.read_text(encoding="utf-8"))
        if build.get("version") != check["version"]:
            build = {**check, "note": "no record of the build that made this version"}
    else:
        build = check
        built_file.write_text(json.dumps(build, indent=2), encoding="utf-8")
    print(f"  {check['summary']}", flush=True)

    # 3. the questions
    if SQUAD11 not in by_source:
        raise SystemExit("the questions are SQuAD 1.1 train's: include squad11 in --sources")
    asked, warm = sample_questions(
        by_source[SQUAD11], in_corpus, args.questions, args.warmup, args.seed
    )
    gold_ids = [in_corpus[paragraph_key(ex.context)] for ex in asked]
    work_file = work / "ask.in.json"
    work_file.write_text(
        json.dumps(
            {"questions": [ex.question for ex in asked], "warmup": [ex.question for ex in warm]}
        ),
        encoding="utf-8",
    )
    print(
        f"asking {len(asked)} questions (+{len(warm)} warm-up) in a fresh process ...", flush=True
    )
    served = run_child("ask", work, work_file)
    rows = served.pop("rows")
    summary, per_question = score(asked, rows, gold_ids)

    report = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "caveat": CAVEAT,
        "corpus": corpus,
        "build": build,
        "build_check": None if check is build else check,
        "serving": served,
        "questions": {
            "source": "squad11-train",
            "sampled": len(asked),
            "seed": args.seed,
            "warmup": len(warm),
            "top_k_asked": K,
            "relevance": "a passage of the question's own paragraph's document (by id)",
        },
        "results": summary,
        "per_question": per_question,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "open_retrieval_large.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print_tables(report)
    print(f"\nwritten to {os.path.relpath(path, Path.cwd())}")


def print_tables(report: dict[str, Any]) -> None:
    corpus, build, served, r = (report[k] for k in ("corpus", "build", "serving", "results"))
    check = report["build_check"]
    dense = build["dense"]
    kind = dense.get("kind", "?") + (f" (nlist {dense['nlist']})" if dense.get("nlist") else "")
    scope = "every distinct paragraph" if corpus["complete"] else "SUBSET: " + corpus["subset"]
    print(f"\nOpen retrieval over ../shared/datasets ({scope})\n")
    print(
        "| documents | chunks | dense index | build s | chunks/s | index MB | build peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {build['documents']:,} | {build['chunks']:,} | {kind} | {build['seconds']} "
        f"| {build['chunks_per_second']} | {build['index_mb']} | {build['peak_rss_mb']} |"
    )
    if check is not None:
        print(
            f"\nRerun over the unchanged corpus: {check['summary']} "
            f"(peak RSS {check['peak_rss_mb']} MB)"
        )
    print(
        f"\n{r['questions']} SQuAD 1.1 train questions (seed {report['questions']['seed']}), "
        f"reader {served['reader']}, open retrieval over all {served['documents']:,} documents\n"
    )
    print(
        "| recall@1 | recall@5 | recall@10 | MRR | F1* | EM* | abstained | citations verified "
        "| cite own paragraph | load s | ready s | RSS after load MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {r['recall@1']:.3f} | {r['recall@5']:.3f} | {r['recall@10']:.3f} | {r['mrr']:.3f} "
        f"| {r['f1']:.3f} | {r['em']:.3f} | {r['abstention_rate']:.3f} "
        f"| {r['citation_verified_rate']:.3f} | {r['cites_own_paragraph_rate']:.3f} "
        f"| {served['load_s']} | {served['ready_s']} | {served['rss_after_load_mb']} |"
    )
    print("\n| stage | p50 ms | p95 ms |")
    print("|---|---|---|")
    for stage, v in r["latency_ms"].items():
        print(f"| {stage} | {v['p50']} | {v['p95']} |")
    print(f"\n*{report['caveat']}")
    if r["errors"]:
        print(f"{r['errors']} questions failed (see per_question in the JSON)")


if __name__ == "__main__":
    main()
