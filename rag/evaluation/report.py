"""Evaluation reports: Markdown for reading in a terminal or a PR, HTML with charts.

The HTML page is self-contained: inline CSS and SVG, no scripts, no external files.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_PALETTE = ["#1f5fa8", "#c2410c", "#15803d", "#7c3aed", "#b91c1c", "#0e7490"]


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def _reliability_rows(reader: dict[str, Any]) -> list[list[Any]]:
    """Score bin, questions in it, mean F1: one row per bin."""
    return [
        [f"{r['from']:.1f}–{r['to']:.1f}", int(r["n"]), r["mean_f1"]]
        for r in reader.get("reliability", [])
    ]


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


ANSWER_COLUMNS = [
    ("answerable_f1", "ans F1"),
    ("answerable_em", "ans EM"),
    ("unanswerable_abstained", "unans abstained"),
    ("answerable_abstained", "ans abstained"),
    ("f1", "F1"),
    ("em", "EM"),
    ("abstain_precision", "abst. precision"),
    ("abstain_recall", "abst. recall"),
]


def reader_rows(report: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, r in report["readers"].items():
        a = r["answers"]
        lat = r["latency_ms"].get("total", {})
        rows.append(
            [name, r["threshold"]]
            + [a[k] for k, _ in ANSWER_COLUMNS]
            + [r["citations"]["citation_accuracy"], r.get("passages_read"), lat.get("p50")]
            + [lat.get("p95")]
        )
    return rows


READER_HEADERS = (
    ["reader", "threshold"]
    + [label for _, label in ANSWER_COLUMNS]
    + ["citation acc.", "passages read", "p50 ms", "p95 ms"]
)


def retrieval_rows(report: dict[str, Any], by: str) -> list[list[Any]]:
    rows = []
    for system in ("rag", "haystack"):
        for mode, run in report["retrieval"].get(system, {}).items():
            m = run[by]
            rows.append(
                [
                    system,
                    mode,
                    m["recall@1"],
                    m["recall@3"],
                    m["recall@5"],
                    m["recall@10"],
                    m["mrr"],
                    m["ndcg@10"],
                ]
            )
    return rows


BY_EV, BY_DOC = "by_evidence", "by_document"
RETRIEVAL_HEADERS = ["system", "mode", "R@1", "R@3", "R@5", "R@10", "MRR", "nDCG@10"]


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    out = [
        "# Evaluation report",
        "",
        f"Sets: {', '.join(meta['sets'])} | {meta['n']} questions ({meta['n_answerable']} "
        f"answerable, {meta['n_unanswerable']} unanswerable) | {meta['mode']} | index: "
        f"{meta['documents']} documents, {meta['chunks']} chunks | retrieval "
        f"{meta['retrieval_mode']}, top_k {meta['top_k']} | primary reader "
        f"{meta['primary_reader']} | {meta['created_at']}",
        "",
        "## Answers",
        "",
        _table(READER_HEADERS, reader_rows(report)),
        "",
    ]
    for name, reason in report.get("skipped_readers", {}).items():
        out.append(f"Reader `{name}` skipped: {reason}")
    out += [
        "",
        "## Retrieval (answerable questions)",
        "",
        "By evidence (a passage holds the evidence quote):",
        "",
        _table(RETRIEVAL_HEADERS, retrieval_rows(report, "by_evidence")),
        "",
        "By document (a passage comes from a gold document):",
        "",
        _table(RETRIEVAL_HEADERS, retrieval_rows(report, "by_document")),
        "",
        "The Haystack baseline uses Haystack's embedding retriever over the same model's "
        "vectors, its BM25 and its reciprocal-rank-fusion joiner over the same chunks. "
        "Its extractive reader needs a hub model, which cannot be downloaded here, so only "
        "retrieval is compared.",
        "",
    ]
    primary = report["readers"][meta["primary_reader"]]
    out += [
        "## Abstention threshold sweep (primary reader)",
        "",
        f"Configured threshold: {primary['threshold']:.2f}; best overall F1 on this set at "
        f"{primary['best_threshold_on_this_set']:.2f}.",
        "",
    ]
    sweep_rows = [
        [
            r["threshold"],
            r["f1"],
            r["answerable_f1"],
            r["unanswerable_abstained"],
            r["answerable_abstained"],
        ]
        for r in primary["sweep"][::5]
    ]
    out += [
        _table(["threshold", "F1", "ans F1", "unans abstained", "ans abstained"], sweep_rows),
        "",
    ]
    out += [
        "## Is a higher score more often right? (primary reader)",
        "",
        "Mean F1 of the best candidate by score bin (an unanswerable question counts 0).",
        "",
    ]
    out += [
        _table(
            ["score", "questions", "mean F1"],
            _reliability_rows(primary),
        ),
        "",
    ]
    out += ["## Latency (ms, primary reader)", ""]
    out += [
        _table(
            ["stage", "p50", "p95"],
            [[s, v["p50"], v["p95"]] for s, v in primary["latency_ms"].items()],
        ),
        "",
    ]
    failures = report.get("failures", [])
    out += [f"## Failures ({len(failures)})", ""]
    for f in failures:
        out.append(
            f"- **{f['id']}** {f['question']}  \n  gold: {f['gold']} | predicted: "
            f"{f['prediction']!r} (best {f['best_candidate']!r} @ {_fmt(f['best_score'])}) | "
            f"F1 {_fmt(f['f1'])} | from {f['predicted_document']}"
        )
    return "\n".join(out) + "\n"


# -- HTML with inline SVG -------------------------------------------------------------


def _line_chart(
    title: str,
    series: dict[str, list[tuple[float, float]]],
    *,
    x_label: str,
    marker: float | None = None,
    width: int = 560,
    height: int = 300,
) -> str:
    left, right, top, bottom = 48, 150, 28, 40
    pw, ph = width - left - right, height - top - bottom
    xs = [x for pts in series.values() for x, _ in pts] or [0.0, 1.0]
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def sy(y: float) -> float:
        return top + (1 - max(0.0, min(1.0, y))) * ph

    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="18" class="t">{html.escape(title)}</text>',
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        y = sy(tick)
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y}" y2="{y}" class="g"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4}" class="a" text-anchor="end">{tick}</text>')
    for i in range(5):
        xv = x0 + (x1 - x0) * i / 4
        parts.append(
            f'<text x="{sx(xv)}" y="{top + ph + 16}" class="a" text-anchor="middle">{xv:g}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2}" y="{height - 6}" class="a" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
    )
    if marker is not None:
        parts.append(
            f'<line x1="{sx(marker)}" x2="{sx(marker)}" y1="{top}" y2="{top + ph}" class="m"/>'
            f'<text x="{sx(marker) + 4}" y="{top + 12}" class="a">chosen {marker:.2f}</text>'
        )
    for i, (name, pts) in enumerate(series.items()):
        color = _PALETTE[i % len(_PALETTE)]
        clean = [(x, y) for x, y in pts if y is not None]
        if clean:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in clean)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
        ly = top + 14 + i * 18
        parts.append(
            f'<rect x="{left + pw + 12}" y="{ly - 9}" width="10" height="10" fill="{color}"/>'
            f'<text x="{left + pw + 26}" y="{ly}" class="a">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _bar_chart(title: str, rows: list[tuple[str, float, float]], width: int = 560) -> str:
    left, top, bar = 90, 28, 16
    height = top + len(rows) * (2 * bar + 10) + 20
    vmax = max([max(a or 0, b or 0) for _, a, b in rows] + [1.0])
    pw = width - left - 70
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{left}" y="18" class="t">{html.escape(title)}</text>',
    ]
    y = top
    for name, p50, p95 in rows:
        label = html.escape(name)
        parts.append(
            f'<text x="{left - 6}" y="{y + bar}" class="a" text-anchor="end">{label}</text>'
        )
        for j, (label, v) in enumerate((("p50", p50), ("p95", p95))):
            w = (v or 0) / vmax * pw
            parts.append(
                f'<rect x="{left}" y="{y + j * bar}" width="{w:.1f}" height="{bar - 2}" '
                f'fill="{_PALETTE[j]}"/><text x="{left + w + 4}" y="{y + j * bar + bar - 4}" '
                f'class="a">{label} {_fmt(v)}</text>'
            )
        y += 2 * bar + 10
    parts.append("</svg>")
    return "".join(parts)


def _html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#1a1a1a;
padding:0 1rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}
td:first-child,th:first-child{text-align:left}
svg{max-width:100%;height:auto;border:1px solid #ddd;margin:.5rem 1rem .5rem 0;background:#fff}
.t{font-weight:600;font-size:13px}.a{font-size:11px;fill:#333}.g{stroke:#e5e5e5}
.m{stroke:#b91c1c;stroke-dasharray:4 3}.charts{display:flex;flex-wrap:wrap}
details{margin:.3rem 0}summary{cursor:pointer}code{background:#f4f4f4;padding:0 3px}
"""


def html_page(report: dict[str, Any]) -> str:
    meta = report["meta"]
    primary = report["readers"][meta["primary_reader"]]
    sweep = primary["sweep"]
    series = {
        name: [(r["threshold"], r[key]) for r in sweep]
        for name, key in (
            ("overall F1", "f1"),
            ("answerable F1", "answerable_f1"),
            ("unans. abstained", "unanswerable_abstained"),
            ("ans. abstained", "answerable_abstained"),
        )
    }
    charts = [
        _line_chart(
            "Abstention threshold sweep", series, x_label="threshold", marker=primary["threshold"]
        )
    ]
    recall_series: dict[str, list[tuple[float, float]]] = {}
    for system in ("rag", "haystack"):
        for mode, run in report["retrieval"].get(system, {}).items():
            ev = run["by_evidence"]
            recall_series[f"{system} {mode}"] = [(k, ev[f"recall@{k}"]) for k in (1, 3, 5, 10)]
    charts.append(_line_chart("Evidence recall@k", recall_series, x_label="k"))
    charts.append(
        _bar_chart(
            "Latency per stage (ms)",
            [(s, v["p50"], v["p95"]) for s, v in primary["latency_ms"].items()],
        )
    )
    reliability_rows = _reliability_rows(primary)
    failures = "".join(
        f"<details><summary><b>{html.escape(f['id'])}</b> {html.escape(f['question'])} — "
        f"gold {html.escape(str(f['gold']))}, predicted {html.escape(repr(f['prediction']))}"
        f"</summary><p>best candidate {html.escape(repr(f['best_candidate']))} @ "
        f"{_fmt(f['best_score'])} from {html.escape(str(f['predicted_document']))}</p><ol>"
        + "".join(
            f"<li><code>{html.escape(p['document_id'])}[{p['start']}:{p['end']}]</code> "
            f"{html.escape(p['text'])}</li>"
            for p in f["passages"]
        )
        + "</ol></details>"
        for f in report.get("failures", [])
    )
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>rag evaluation report</title><style>{_CSS}</style></head><body>
<h1>Evaluation report</h1>
<p>{html.escape(", ".join(meta["sets"]))}: {meta["n"]} questions ({meta["n_answerable"]} answerable,
{meta["n_unanswerable"]} unanswerable), {html.escape(meta["mode"])}; index of {meta["documents"]}
documents / {meta["chunks"]} chunks; retrieval {html.escape(meta["retrieval_mode"])}, top_k
{meta["top_k"]}; primary reader <b>{html.escape(meta["primary_reader"])}</b>;
{html.escape(meta["created_at"])}.</p>
<h2>Answers</h2>{_html_table(READER_HEADERS, reader_rows(report))}
<div class="charts">{"".join(charts)}</div>
<h2>Is a higher score more often right?</h2>
<p>Mean F1 of the primary reader's best candidate by score bin (unanswerable questions count 0).</p>
{_html_table(["score", "questions", "mean F1"], reliability_rows)}
<h2>Retrieval by evidence</h2>{_html_table(RETRIEVAL_HEADERS, retrieval_rows(report, BY_EV))}
<h2>Retrieval by document</h2>{_html_table(RETRIEVAL_HEADERS, retrieval_rows(report, BY_DOC))}
<p>Haystack baseline: same chunks and embedding model through Haystack's components; its reader
needs a hub model, so only retrieval is compared.</p>
<h2>Failures ({len(report.get("failures", []))})</h2>{failures}
</body></html>
"""


def write_reports(report: dict[str, Any], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "report.md", folder / "report.html", folder / "report.json"]
    paths[0].write_text(markdown(report), encoding="utf-8")
    paths[1].write_text(html_page(report), encoding="utf-8")
    paths[2].write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
    return paths
