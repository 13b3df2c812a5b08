"""Plain-text rendering of an answer for the terminal."""

from __future__ import annotations

import textwrap

from rag.store.index import Index
from rag.types import AskResult

MARK_OPEN, MARK_CLOSE = "[[", "]]"


def marked_sentence(sentence: str, start: int, end: int) -> str:
    """The sentence with the answer (sentence-relative offsets) between [[ and ]]."""
    return sentence[:start] + MARK_OPEN + sentence[start:end] + MARK_CLOSE + sentence[end:]


def render_answer(result: AskResult, index: Index, *, explain: bool, threshold: float) -> str:
    lines: list[str] = []
    if result.answer is None:
        lines.append("The documents do not answer this question.")
        if result.passages:
            lines.append("")
            lines.append("Closest passages:")
            for p in result.passages[:3]:
                doc = index.documents[p.chunk.document_id]
                snippet = textwrap.shorten(p.chunk.text, 160)
                lines.append(f"  - {doc.title} ({doc.date or 'undated'}): {snippet}")
    else:
        answer, c = result.answer, result.answer.citation
        quoted = marked_sentence(
            c.sentence_text, c.start - c.sentence.start, c.end - c.sentence.start
        )
        page = f", page {c.page}" if c.page else ""
        lines += [
            f"Answer: {answer.text}",
            f"Score:  {answer.score:.2f}",
            "",
            textwrap.fill(f"“{quoted}”", width=100, initial_indent="  ", subsequent_indent="  "),
            "",
            f"Source: {c.document_title} ({c.document_date or 'undated'}{page})",
            f"        {c.document_id} [{c.start}:{c.end}]",
        ]
    if explain:
        lines += ["", f"Stages (ms): {result.timings_ms}", f"Abstention threshold: {threshold:.3f}"]
        best = result.answer or result.rejected
        if best is not None:
            tag = "answer" if result.answer else "best rejected candidate"
            lines.append(f"Reader ({tag}: {best.text!r}, score {best.score:.3f}):")
            for name, value in sorted(best.details.items()):
                lines.append(f"  {name:22s} {value:8.3f}")
        lines.append("Passages:")
        for rank, p in enumerate(result.passages, start=1):
            stages = ", ".join(f"{k} {v:.3f}" for k, v in p.stage_scores.items())
            ranks = ", ".join(f"{k} #{v}" for k, v in p.stage_ranks.items())
            lines.append(
                f"  {rank}. {p.chunk.document_id}[{p.chunk.start}:{p.chunk.end}] {stages} ({ranks})"
            )
    return "\n".join(lines)
