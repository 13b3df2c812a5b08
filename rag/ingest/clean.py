"""Cleaning: remove extraction artefacts from loaded text without changing its words.

The cleaned text is what the service stores, shows and cites, so every rule here
is conservative. Within a single source line the characters stay as they were,
except that runs of spaces collapse, lines are stripped, bullet glyphs become a
plain ``- `` marker, private-use glyphs go and footnote markers glued to words
are removed. What changes is the *layout*: furniture lines (adverts, separators,
page numbers) are dropped, duplicated captions are kept once, footnote bodies are
put on one line and lines that a PDF hard-wrapped inside a paragraph are joined.

Pages are cleaned one by one and joined with a blank line, so ``page_starts``
stays exact: every offset of the stored text still maps to its page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.types import LoadedText

PAGE_SEPARATOR = "\n\n"

# Formats that are (or may be) text rendered onto pages: their lines may be hard
# wraps of a paragraph, and bare numbers in them may be page numbers or footnote
# numbers. DOCX, HTML and Markdown loaders emit one line per paragraph and have
# no page furniture of that kind.
_RENDERED_FORMATS = frozenset({"txt", "pdf"})

# Web furniture that repeats through scraped articles; whole lines only.
_FURNITURE_LINES = frozenset(
    {
        "hide ad",
        "advertisement",
        "skip to content",
        "skip to main content",
        "story continues below advertisement",
        "share this article",
    }
)

_SPACE_CHARS = re.compile(r"[ \t\v\u00a0\u2007\u202f]+")
_BULLETS = frozenset("•▪◦●○■‣⁃")
_PUA = re.compile(r"[\ue000-\uf8ff]")
_SEPARATOR_LINE = re.compile(r"^[_\-–—―=~*\u2500-\u257f ]{3,}$")
_PAGE_LABEL = re.compile(
    r"^(?:(?:page|pg\.?|p\.)\s*\d{1,4}(?:\s*(?:of|/)\s*\d{1,4})?"
    r"|[-–—]\s*\d{1,4}\s*[-–—]"
    r"|\d{1,4}\s*(?:of|/)\s*\d{1,4})$",
    re.IGNORECASE,
)
_LONE_NUMBER = re.compile(r"^\d{1,3}$")
_LIST_ITEM = re.compile(r"^(?:[-–—*] |\(?(?:\d{1,3}|[a-zA-Z]|[ivxIVX]{1,5})[.)] )")
_SENTENCE_END = re.compile(r"[.!?:;…][\"'’”)\]]*$")
_MIN_CAPTION_HALF = 8
_MIN_DUPLICATE_LEN = 10

# Wrapped-paragraph detection (see _estimate_width and _continues).
_WIDTH_SAMPLE_MIN_LEN = 20
_WIDTH_MIN_SAMPLES = 5
_WIDTH_QUANTILE = 0.9
_MIN_WRAP_WIDTH = 40
_MAX_WRAP_WIDTH = 140
_FULL_LINE_SHARE = 0.8


@dataclass(slots=True)
class _Line:
    """One output line; ``kind`` protects list items and footnotes from joins."""

    text: str
    kind: str = "text"  # "text", "item" or "footnote"
    last_raw: str = field(default="")  # last source line merged into this one

    def __post_init__(self) -> None:
        self.last_raw = self.last_raw or self.text


def clean(loaded: LoadedText) -> tuple[str, list[int]]:
    """Return the stored text and its page starts (empty for formats without pages)."""
    rendered = loaded.format in _RENDERED_FORMATS
    pages = split_pages(loaded.text, loaded.page_starts)
    page_lines = [
        _tidy_page(page, number, len(pages), rendered=rendered)
        for number, page in enumerate(pages, 1)
    ]
    if rendered:
        footnotes = _merge_footnote_bodies(page_lines)
        for index, lines in enumerate(page_lines):
            _remove_footnote_markers(lines, footnotes, index)
    width = _estimate_width(page_lines) if rendered else None
    texts = [_render(_join_lines(lines, width, hyphenation=rendered)) for lines in page_lines]
    if not loaded.page_starts:
        return texts[0], []
    return _join_pages(texts)


def split_pages(text: str, page_starts: list[int]) -> list[str]:
    """Cut ``text`` at ``page_starts``; a text without pages is a single page."""
    if not page_starts:
        return [text]
    ends = [*page_starts[1:], len(text)]
    return [text[start:end] for start, end in zip(page_starts, ends, strict=True)]


def _join_pages(texts: list[str]) -> tuple[str, list[int]]:
    starts: list[int] = []
    offset = 0
    for index, text in enumerate(texts):
        if index:
            offset += len(PAGE_SEPARATOR)
        starts.append(offset)
        offset += len(text)
    return PAGE_SEPARATOR.join(texts), starts


# ----------------------------------------------------------------------------
# Line-level tidying
# ----------------------------------------------------------------------------


def _tidy_page(page: str, number: int, total: int, *, rendered: bool) -> list[_Line]:
    """Normalise each line, drop furniture and fix duplicated captions."""
    page = page.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    texts = [normalise_line(raw) for raw in page.split("\n")]
    texts = _merge_lone_bullets(texts)
    texts = [text for text in texts if not is_furniture_line(text)]
    if rendered:
        texts = _drop_page_numbers(texts, number, paged=total > 1)
    texts = _dedupe_captions(texts)
    return [_Line(text, "item" if _LIST_ITEM.match(text) else "text") for text in texts]


def normalise_line(raw: str) -> str:
    """Collapse spaces, strip the line, turn a leading bullet glyph into ``- ``.

    Private-use characters (Wingdings/Symbol glyphs a PDF font maps there) carry
    no text; at the start of a line they were list bullets.
    """
    text = _SPACE_CHARS.sub(" ", raw).strip()
    if text and (text[0] in _BULLETS or _PUA.match(text[0])):
        rest = _PUA.sub("", text[1:]).lstrip(" ")
        rest = rest[1:].lstrip(" ") if rest[:1] in _BULLETS else rest
        return f"- {rest}" if rest else "-"
    return _SPACE_CHARS.sub(" ", _PUA.sub("", text)).strip()


def _merge_lone_bullets(texts: list[str]) -> list[str]:
    """A bullet extracted on a line of its own belongs to the next line."""
    out: list[str] = []
    for text in texts:
        if out and out[-1] == "-" and text:
            out[-1] = f"- {text}"
        else:
            out.append(text)
    return out


def is_furniture_line(text: str) -> bool:
    """Adverts, skip links, separator rules and page labels like "Page 3 of 7"."""
    lowered = text.lower()
    return (
        lowered in _FURNITURE_LINES
        or bool(_SEPARATOR_LINE.match(text))
        or bool(_PAGE_LABEL.match(text))
    )


def _drop_page_numbers(texts: list[str], number: int, *, paged: bool) -> list[str]:
    """Drop a bare number that is a page number.

    A bare number is a page number when it is the first or last line of a page,
    or, in a paged document, when it equals the page's own number and is not
    followed by text (a bare number followed by text is a footnote body).
    """
    filled = [i for i, text in enumerate(texts) if text]
    edges = {filled[0], filled[-1]} if filled else set()
    drop: set[int] = set()
    for i, text in enumerate(texts):
        if not _LONE_NUMBER.match(text):
            continue
        followed_by_text = i + 1 < len(texts) and bool(texts[i + 1])
        if i in edges or (paged and int(text) == number and not followed_by_text):
            drop.add(i)
    return [text for i, text in enumerate(texts) if i not in drop]


def _dedupe_captions(texts: list[str]) -> list[str]:
    """Keep one copy of a caption that the extractor doubled or repeated.

    Web pages often render an image caption twice (visible text and alt text),
    which scraping turns into "CaptionCaption" or two identical lines.
    """
    out: list[str] = []
    for text in texts:
        text = undouble(text)
        if out and text and text == out[-1] and _is_caption_like(text):
            continue
        out.append(text)
    return out


def undouble(text: str) -> str:
    """``"AbcAbc"`` -> ``"Abc"`` when a line is the same phrase twice, glued."""
    half, odd = divmod(len(text), 2)
    if odd or half < _MIN_CAPTION_HALF or text[:half] != text[half:]:
        return text
    first = text[:half]
    return first if " " in first.strip() and any(ch.isalpha() for ch in first) else text


def _is_caption_like(text: str) -> bool:
    return len(text) >= _MIN_DUPLICATE_LEN and " " in text


# ----------------------------------------------------------------------------
# Footnotes
# ----------------------------------------------------------------------------

Position = tuple[int, int]  # (page index, line index)


def _merge_footnote_bodies(pages: list[list[_Line]]) -> dict[str, Position]:
    """Put each footnote body on one line: ``"1"`` + ``"Section 119 ..."``.

    Returns where each footnote number's body sits, so that only markers with a
    body, and only before it, are removed from the text.
    """
    bodies: dict[str, Position] = {}
    for page_index, lines in enumerate(pages):
        merged: list[_Line] = []
        i = 0
        while i < len(lines):
            line = lines[i]
            nxt = lines[i + 1] if i + 1 < len(lines) else None
            if nxt is not None and _is_footnote_start(line, nxt):
                bodies.setdefault(line.text, (page_index, len(merged)))
                merged.append(_Line(f"{line.text} {nxt.text}", "footnote"))
                i += 2
                continue
            merged.append(line)
            i += 1
        lines[:] = merged
    return bodies


def _is_footnote_start(line: _Line, nxt: _Line) -> bool:
    """A bare number directly followed by a line of text opens a footnote body."""
    return (
        bool(_LONE_NUMBER.match(line.text)) and bool(nxt.text) and not _LONE_NUMBER.match(nxt.text)
    )


_MARKER = re.compile(
    r"(?<=[a-z][a-z])(\d{1,3})(?=[.,;:!?)\]’”'\"]*(?: |$))|"
    r"(?<=[a-z][a-z][.,;:’”)])(\d{1,3})(?= |$)"
)


def _remove_footnote_markers(
    lines: list[_Line], bodies: dict[str, Position], page_index: int
) -> None:
    """Remove footnote numbers glued to words ("functions1." -> "functions.").

    A number counts as a marker only when a body with that number follows it in
    the document, so "Schedule 12" or "2013" are never touched.
    """
    if not bodies:
        return
    for line_index, line in enumerate(lines):
        if line.kind == "footnote":
            continue
        here = (page_index, line_index)

        def strip_marker(match: re.Match[str], here: Position = here) -> str:
            number = match.group(1) or match.group(2)
            body = bodies.get(number)
            return "" if body is not None and here < body else match.group(0)

        line.text = _MARKER.sub(strip_marker, line.text)
        line.last_raw = line.text


# ----------------------------------------------------------------------------
# Joining hard-wrapped lines
# ----------------------------------------------------------------------------


def _estimate_width(pages: list[list[_Line]]) -> int | None:
    """The wrap width of a hard-wrapped text, or None when lines are not wrapped.

    Wrapped body text has a ceiling: most full lines sit just under it. A high
    quantile of line lengths estimates that ceiling; texts whose lines run to
    hundreds of characters (one line per paragraph) or are all short (address
    blocks, tables) are not treated as wrapped.
    """
    lengths = sorted(
        len(line.text)
        for lines in pages
        for line in lines
        if len(line.text) >= _WIDTH_SAMPLE_MIN_LEN
    )
    if len(lengths) < _WIDTH_MIN_SAMPLES:
        return None
    width = lengths[int(_WIDTH_QUANTILE * (len(lengths) - 1))]
    return width if _MIN_WRAP_WIDTH <= width <= _MAX_WRAP_WIDTH else None


def _join_lines(lines: list[_Line], width: int | None, *, hyphenation: bool) -> list[_Line]:
    """Join wrapped lines of a paragraph; keep one blank line between blocks.

    A block is a run of lines without blank lines. A block becomes *structured*
    (kept line by line) when a short line is followed by a line that continues
    in lower case: the author broke the line on purpose, as in a list whose
    bullets were lost, so nothing more is joined in that block.
    """
    out: list[_Line] = []
    blanks = 0
    structured = False
    for line in lines:
        if not line.text:
            blanks += 1
            continue
        prev = out[-1] if out else None
        if prev is not None and blanks == 0 and hyphenation and _is_hyphenated(prev, line):
            prev.text, prev.last_raw = prev.text[:-1] + line.text, line.text
            continue
        if prev is not None and width and _continues(prev, line, width, blanks, structured):
            prev.text, prev.last_raw = f"{prev.text} {line.text}", line.text
            blanks = 0
            continue
        if blanks:
            structured = False
            if out:
                out.append(_Line(""))
        elif prev is not None and _starts_lower(line.text):
            structured = True
        out.append(line)
        blanks = 0
    return out


def _is_hyphenated(prev: _Line, line: _Line) -> bool:
    """ "exam-" + "ple": a word split at the line end, lower case on both sides."""
    raw = prev.last_raw
    return (
        len(raw) >= 2
        and raw.endswith("-")
        and raw[-2].islower()
        and line.kind == "text"
        and line.text[:1].islower()
    )


def _continues(prev: _Line, line: _Line, width: int, blanks: int, structured: bool) -> bool:
    """Is ``line`` the wrapped continuation of the paragraph ending in ``prev``?

    The previous source line must be *full*: the next line's first word would
    not have fitted on it. Within a block that is enough, even after a full stop
    (a paragraph whose last line is full is rare). Across one blank line, which
    some PDF extractors insert after a paragraph's first line, the previous line
    must also stop mid-sentence: no closing punctuation, and either the next line
    starts in lower case or the previous one ends on a lower-case word or number.
    """
    if line.kind != "text" or blanks > 1 or not _is_full(prev.last_raw, line.text, width):
        return False
    if blanks == 0:
        return not structured
    raw = prev.last_raw
    if _SENTENCE_END.search(raw):
        return False
    last_word = raw.rsplit(" ", 1)[-1]
    return _starts_lower(line.text) or last_word[:1].islower() or last_word[:1].isdigit()


def _is_full(raw: str, next_text: str, width: int) -> bool:
    first_word = next_text.split(" ", 1)[0]
    return len(raw) + 1 + len(first_word) >= _FULL_LINE_SHARE * width


def _starts_lower(text: str) -> bool:
    return text[:1].islower()


def _render(lines: list[_Line]) -> str:
    texts = [line.text for line in lines]
    while texts and not texts[-1]:
        texts.pop()
    while texts and not texts[0]:
        texts.pop(0)
    return "\n".join(texts)
