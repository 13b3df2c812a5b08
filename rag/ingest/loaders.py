"""Format loaders: raw bytes of one file -> :class:`~rag.types.LoadedText`.

The format is decided by what the bytes *are*, not by what the file is called: a
PDF saved as ``.txt`` or a web page saved without an extension is still read
correctly. The extension only breaks the tie between plain text and Markdown,
which content alone cannot tell apart reliably.

Loaders return text before cleaning; :mod:`rag.ingest.clean` removes extraction
artefacts afterwards. Every refusal is a :class:`~rag.errors.DocumentLoadError`
whose reason tells the user what is wrong with the file.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import CData, Comment, Declaration, Doctype, ProcessingInstruction

from rag.errors import DocumentLoadError
from rag.types import LoadedText

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mkdn"})

_PDF_MAGIC = b"%PDF-"
_ZIP_MAGIC = b"PK\x03\x04"
_DOCX_PART = "word/document.xml"
_BINARY_CONTROL_SHARE = 0.1  # more control characters than this: not a text file
_ALLOWED_CONTROLS = frozenset("\n\r\t\f\v")

# ----------------------------------------------------------------------------
# Dispatch and sniffing
# ----------------------------------------------------------------------------


def load_bytes(
    data: bytes,
    *,
    source: str,
    suffix: str = "",
    max_chars: int | None = None,
    max_zip_ratio: float | None = None,
) -> LoadedText:
    """Pick the loader from the content of ``data`` and run it.

    ``source`` names the file in error messages; ``suffix`` (``".md"``) is only a
    hint between plain text and Markdown. Raises DocumentLoadError when the bytes
    are binary, corrupt or hold no text, when a zipped format expands more than
    ``max_zip_ratio`` times, or when more than ``max_chars`` characters come out
    (what every later stage costs grows with the text, not with the file size).
    """
    suffix = suffix.lower()
    if not data.strip():
        raise DocumentLoadError(source, "empty file")
    if is_pdf(data):
        loaded = load_pdf(data, source=source, max_chars=max_chars)
    elif data.startswith(_ZIP_MAGIC):
        if max_zip_ratio is not None:
            check_zip_ratio(data, source=source, max_ratio=max_zip_ratio)
        loaded = _load_zip(data, source=source, suffix=suffix)
    else:
        # Every character takes at least one byte and at most four: refuse what is surely
        # too long before decoding it, and what is too long before parsing it.
        if max_chars is not None and len(data) > 4 * max_chars:
            raise DocumentLoadError(source, _too_much_text(len(data) // 4, max_chars, "at least "))
        text = decode_text(data, source=source)
        if max_chars is not None and len(text) > max_chars:
            raise DocumentLoadError(source, _too_much_text(len(text), max_chars))
        if looks_like_html(text):
            loaded = load_html(text)
        elif suffix in MARKDOWN_SUFFIXES:
            loaded = load_markdown(text)
        else:
            loaded = load_txt(text)
    if not loaded.text.strip():
        raise DocumentLoadError(source, _no_text_reason(loaded.format))
    if max_chars is not None and len(loaded.text) > max_chars:
        raise DocumentLoadError(source, _too_much_text(len(loaded.text), max_chars))
    return loaded


def _too_much_text(chars: int, max_chars: int, qualifier: str = "") -> str:
    return (
        f"too much text: {qualifier}{chars:,} characters > max {max_chars:,} "
        "(RAG_MAX_DOCUMENT_CHARS)"
    )


def check_zip_ratio(data: bytes, *, source: str, max_ratio: float) -> None:
    """Refuse a zip whose members expand to more than ``max_ratio`` times its size.

    The sizes come from the archive's directory, which also bounds what zipfile will
    ever decompress, so a zip bomb is refused before anything is expanded.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        return  # not a readable zip: the loader says what is wrong with it
    ratio = expanded / max(len(data), 1)
    if ratio > max_ratio:
        raise DocumentLoadError(
            source,
            f"zip expands {ratio:,.0f} times ({expanded:,} bytes from {len(data):,}); "
            f"max {max_ratio:g} (RAG_MAX_ZIP_RATIO)",
        )


def is_pdf(data: bytes) -> bool:
    """True when the bytes start with the PDF header (after optional whitespace)."""
    return data.lstrip(b" \t\r\n\f\x00")[: len(_PDF_MAGIC)] == _PDF_MAGIC


def is_docx(data: bytes) -> bool:
    """True for a zip archive holding ``word/document.xml`` (a Word document)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return _DOCX_PART in archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return False


_HTML_START = re.compile(
    r"\A\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)\b",
    re.IGNORECASE | re.DOTALL,
)
_HTML_ROOT_TAG = re.compile(r"<(?:html|body)\b[^>]*>", re.IGNORECASE)
_HTML_TAG = re.compile(
    r"</?(p|div|span|a|br|h[1-6]|ul|ol|li|table|tr|td|th|section|article|main|nav|img"
    r"|strong|em|b|i|script|style|meta|link|title|header|footer)\b[^<>]*>",
    re.IGNORECASE,
)
_HTML_MIN_TAGS = 10
_HTML_MIN_TAG_KINDS = 3


def looks_like_html(text: str) -> bool:
    """Sniff HTML: a doctype/root element near the top, or many distinct HTML tags.

    Markdown may embed a few tags (``<br>``, ``<img>``); it takes a real page
    structure or a dense mix of tags before text is parsed as HTML.
    """
    head = text[:4096]
    if _HTML_START.match(head) or _HTML_ROOT_TAG.search(head):
        return True
    tags = [m.group(1).lower() for m in _HTML_TAG.finditer(text[:20000])]
    return len(tags) >= _HTML_MIN_TAGS and len(set(tags)) >= _HTML_MIN_TAG_KINDS


def _load_zip(data: bytes, *, source: str, suffix: str) -> LoadedText:
    """A zip is only a document when it is a Word file; anything else is binary."""
    if is_docx(data):
        return load_docx(data, source=source)
    if suffix == ".docx":
        raise DocumentLoadError(source, "invalid DOCX file: not a readable Word document")
    raise DocumentLoadError(source, "binary file")


def _no_text_reason(fmt: str) -> str:
    if fmt == "pdf":
        return "no extractable text in PDF (scanned image without a text layer?)"
    return f"no text in {fmt.upper()} file (empty after extraction)"


# ----------------------------------------------------------------------------
# Text decoding
# ----------------------------------------------------------------------------

_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def decode_text(data: bytes, *, source: str) -> str:
    """Decode a text file: UTF-8 (BOM optional), else the legacy Windows code page.

    Anything but clean UTF-8 is decoded with a warning that names the file, never
    silently. Mostly UTF-8 with a few stray bytes (a file edited by two tools) keeps
    its UTF-8 and reads only the stray bytes as cp1252, so "Café" does not become
    "CafÃ©"; a file with no UTF-8 sequence at all is read as cp1252, because legacy
    documents in this domain come from Windows tools (it also rejects the few byte
    values it leaves undefined, which helps to detect binary files). Newlines are
    normalised to ``\\n``.
    """
    text, warning = _decode(data)
    if text is None or _is_mostly_control(text):
        raise DocumentLoadError(source, "binary file")
    if warning is not None:
        log.warning("%s: %s", source, warning)
    return normalise_newlines(text)


#: A well-formed multi-byte UTF-8 sequence.
_UTF8_MULTIBYTE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
#: What ``surrogateescape`` makes of a byte that is not UTF-8.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


def _decode(data: bytes) -> tuple[str | None, str | None]:
    """The text and, unless it was clean UTF-8, a warning saying how it was read."""
    if data.startswith(_UTF16_BOMS):
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError:
            return None, None
    if b"\x00" in data:
        return None, None
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        pass
    body = data.removeprefix(b"\xef\xbb\xbf")
    escaped = body.decode("utf-8", "surrogateescape")
    stray = len(_ESCAPED_BYTE.findall(escaped))
    utf8 = len(_UTF8_MULTIBYTE.findall(body))
    if utf8 > stray:
        text = _ESCAPED_BYTE.sub(
            lambda m: bytes([ord(m.group()) - 0xDC00]).decode("cp1252", "replace"), escaped
        )
        return text, (
            f"mixed encoding: UTF-8 with {stray} byte(s) that are not UTF-8, "
            "read as cp1252 (Windows-1252); check those characters"
        )
    try:
        return data.decode("cp1252"), "not UTF-8: decoded as cp1252 (Windows-1252)"
    except UnicodeDecodeError:
        return None, None


def _is_mostly_control(text: str) -> bool:
    if not text:
        return False
    controls = sum(
        1 for ch in text if unicodedata.category(ch) == "Cc" and ch not in _ALLOWED_CONTROLS
    )
    return controls / len(text) > _BINARY_CONTROL_SHARE


def normalise_newlines(text: str) -> str:
    """Turn Windows and old Mac line ends into ``\\n``."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


# ----------------------------------------------------------------------------
# Plain text
# ----------------------------------------------------------------------------


def load_txt(text: str) -> LoadedText:
    """Plain text carries no structure or title of its own."""
    return LoadedText(text=normalise_newlines(text), format="txt")


# ----------------------------------------------------------------------------
# Markdown
# ----------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_FRONT_MATTER_TITLE = re.compile(r"^title\s*:\s*(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_ATX_HEADING = re.compile(r"^\s{0,3}#{1,6}(?:\s+(.*?))?(?:\s+#+)?\s*$")
_SETEXT_UNDERLINE = re.compile(r"^\s{0,3}(=+|-+)\s*$")
_RULE = re.compile(r"^\s{0,3}(?:(?:\*\s*){3,}|(?:-\s*){3,}|(?:_\s*){3,})$")
_BLOCKQUOTE = re.compile(r"^\s{0,3}>\s?")
_BULLET_ITEM = re.compile(r"^(\s*)[*+-]\s+(?:\[[ xX]\]\s+)?")
_ORDERED_ITEM = re.compile(r"^\s*\d{1,9}[.)]\s+")
_LINK_DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+")
_TABLE_DIVIDER = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)*\|?\s*$")
_INLINE_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"!\[([^\]]*)\]\([^)]*\)"), r"\1"),  # image -> alt text
    (re.compile(r"!\[([^\]]*)\]\[[^\]]*\]"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # [text](url) -> text
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),  # [text][ref] -> text
    (re.compile(r"<((?:https?|mailto):[^>\s]+)>"), r"\1"),  # autolink
    (re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>"), ""),  # inline HTML tags
    (re.compile(r"(`+)(.+?)\1"), r"\2"),  # inline code
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # strong
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),  # emphasis *x*
    (re.compile(r"(?<![\w_])_(?=\S)(.+?)(?<=\S)_(?![\w_])"), r"\1"),  # emphasis _x_
    (re.compile(r"~~(?=\S)(.+?)(?<=\S)~~"), r"\1"),  # strikethrough
    (re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])"), r"\1"),  # backslash escapes
)


def load_markdown(text: str) -> LoadedText:
    """Markdown rendered as readable plain text: the words stay, the markup goes.

    Soft-wrapped paragraph lines are joined as a Markdown renderer would, so the
    stored text reads like the rendered document. The title is the front-matter
    ``title`` or else the first heading.
    """
    text = normalise_newlines(text)
    title, text = _split_front_matter(text)
    lines, first_heading = _markdown_lines(text.split("\n"))
    return LoadedText(text="\n".join(lines), format="md", title=title or first_heading)


def _split_front_matter(text: str) -> tuple[str | None, str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return None, text
    title_match = _FRONT_MATTER_TITLE.search(match.group(1))
    title = title_match.group(1).strip("'\" ") if title_match else None
    return title or None, text[match.end() :]


def _markdown_lines(raw_lines: list[str]) -> tuple[list[str], str | None]:
    """Convert Markdown lines; return the plain lines and the first heading."""
    out: list[str] = []
    first_heading: str | None = None
    fence: str | None = None
    joinable = False  # may the next plain line continue the previous output line?
    for index, raw in enumerate(raw_lines):
        if fence is not None:  # inside a code block: keep the code, drop the fence
            if raw.strip().startswith(fence):
                fence, joinable = None, False
            else:
                out.append(raw.rstrip())
            continue
        fence_match = _FENCE.match(raw)
        if fence_match:
            fence, joinable = fence_match.group(1)[:3], False
            continue
        prev_raw = raw_lines[index - 1] if index else ""
        next_raw = raw_lines[index + 1] if index + 1 < len(raw_lines) else ""
        kind, line = _markdown_line(raw, prev_raw, next_raw)
        if kind == "drop":
            continue
        if kind == "heading":
            first_heading = first_heading or line or None
        if kind == "plain" and joinable and out and line:
            out[-1] = f"{out[-1]} {line}"
        else:
            out.append(line)
        hard_break = raw.endswith(("  ", "\\"))
        joinable = kind in ("plain", "item") and bool(line) and not hard_break
        if hard_break and out:
            out[-1] = out[-1].rstrip("\\ ")
    return out, first_heading


def _is_setext_heading(raw: str, next_raw: str) -> bool:
    return (
        bool(raw.strip())
        and bool(_SETEXT_UNDERLINE.match(next_raw))
        and not (_BULLET_ITEM.match(raw) or _ORDERED_ITEM.match(raw) or _RULE.match(raw))
    )


def _markdown_line(raw: str, prev_raw: str, next_raw: str) -> tuple[str, str]:
    """Classify one Markdown line and strip its markup.

    Kinds: ``drop`` (markup only), ``heading``, ``item`` (list item), ``table``,
    ``blank`` and ``plain`` (paragraph text that may continue a previous line).
    """
    if not raw.strip():
        return "blank", ""
    if _LINK_DEFINITION.match(raw) or ("|" in raw and _TABLE_DIVIDER.match(raw)):
        return "drop", ""
    if _SETEXT_UNDERLINE.match(raw) and _is_setext_heading(prev_raw, raw):
        return "drop", ""  # the heading text was the previous line
    if _RULE.match(raw):
        return "blank", ""
    heading = _ATX_HEADING.match(raw)
    if heading:
        return "heading", strip_inline_markdown(heading.group(1) or "")
    if _is_setext_heading(raw, next_raw):
        return "heading", strip_inline_markdown(raw.strip())
    line = _BLOCKQUOTE.sub("", raw)
    kind = "plain"
    bullet = _BULLET_ITEM.match(line)
    if bullet:
        line, kind = "- " + line[bullet.end() :], "item"
    elif _ORDERED_ITEM.match(line):
        line, kind = line.strip(), "item"
    elif line.strip().startswith("|"):
        line, kind = line.strip().strip("|"), "table"
    return kind, strip_inline_markdown(line.strip())


def strip_inline_markdown(text: str) -> str:
    """Remove inline Markdown (links, emphasis, code) and keep the words."""
    for pattern, replacement in _INLINE_RULES:
        text = pattern.sub(replacement, text)
    return text


# ----------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------

_DROPPED_TAGS = (
    "script",
    "style",
    "nav",
    "footer",
    "header",
    "aside",
    "noscript",
    "template",
    "svg",
    "iframe",
    "canvas",
    "button",
    "select",
)
# A <header>/<footer> inside an article belongs to the article (its headline,
# its byline), not to the site's furniture, so it is kept.
_SECTIONING_PARENTS = ("article", "main")
_BLOCK_TAGS = frozenset(
    {
        "address",
        "article",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hgroup",
        "hr",
        "html",
        "legend",
        "main",
        "ol",
        "p",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "ul",
    }
)
_SKIPPED_STRINGS = (Comment, Doctype, Declaration, ProcessingInstruction, CData)
_SPACES = re.compile(r"\s+")
_BLANK_RUNS = re.compile(r"\n{3,}")


def load_html(text: str) -> LoadedText:
    """Visible text of a web page, one paragraph per block element.

    Scripts, styles and page furniture (navigation, site header and footer,
    asides) are dropped before the text is taken. The title is ``<title>`` or,
    failing that, the first ``<h1>``.
    """
    soup = BeautifulSoup(text, "html.parser")
    title = _html_title(soup)
    _drop_furniture(soup)
    root = soup.body or soup
    builder: list[str] = []
    _render_children(root, builder, pre=False)
    return LoadedText(text=_tidy_html_text("".join(builder)), format="html", title=title)


def _html_title(soup: BeautifulSoup) -> str | None:
    for element in (soup.title, soup.find("h1")):
        if isinstance(element, Tag):
            title = _SPACES.sub(" ", element.get_text()).strip()
            if title:
                return title
    return None


def _drop_furniture(soup: BeautifulSoup) -> None:
    for tag in soup.find_all(_DROPPED_TAGS):
        if not isinstance(tag, Tag) or tag.decomposed:
            continue
        if tag.name in ("header", "footer") and tag.find_parent(_SECTIONING_PARENTS):
            continue
        tag.decompose()
    for tag in soup.find_all(_is_hidden):
        if isinstance(tag, Tag) and not tag.decomposed:
            tag.decompose()


def _is_hidden(tag: Tag) -> bool:
    style = str(tag.get("style") or "").replace(" ", "").lower()
    return (
        tag.has_attr("hidden")
        or str(tag.get("aria-hidden") or "").lower() == "true"
        or "display:none" in style
        or "visibility:hidden" in style
    )


# Break markers used while rendering; resolved by _resolve_breaks. Control
# characters that never survive in rendered text (they are replaced on input).
_LINE = "\x1f"
_PARA = "\x1e"
_BREAK_RUN = re.compile(f"[{_LINE}{_PARA}\\s]*[{_LINE}{_PARA}][{_LINE}{_PARA}\\s]*")


def _render_children(node: Tag, out: list[str], *, pre: bool) -> None:
    for child in node.children:
        if isinstance(child, _SKIPPED_STRINGS):
            continue
        if isinstance(child, NavigableString):
            text = str(child).replace(_LINE, " ").replace(_PARA, " ")
            out.append(text if pre else _SPACES.sub(" ", text))
        elif isinstance(child, Tag):
            _render_tag(child, out, pre=pre)


def _render_tag(tag: Tag, out: list[str], *, pre: bool) -> None:
    name = tag.name
    if name == "br":
        out.append(_LINE)
    elif name == "li":
        out.append(_LINE + _list_marker(tag) + _render_inline(tag) + _LINE)
    elif name == "tr":
        cells = [_render_inline(cell) for cell in tag.find_all(("td", "th"), recursive=False)]
        out.append(_LINE + " | ".join(cell for cell in cells if cell) + _LINE)
    elif name == "pre":
        out.append(_PARA)
        _render_children(tag, out, pre=True)
        out.append(_PARA)
    elif name in _BLOCK_TAGS:
        out.append(_PARA)
        _render_children(tag, out, pre=pre)
        out.append(_PARA)
    else:
        _render_children(tag, out, pre=pre)


def _render_inline(tag: Tag) -> str:
    """Text of a list item or table cell on one line; nested lists keep their lines."""
    parts: list[str] = []
    _render_children(tag, parts, pre=False)
    lines = [line.strip() for line in _resolve_breaks("".join(parts)).split("\n")]
    return _LINE.join(line for line in lines if line)


def _list_marker(item: Tag) -> str:
    parent = item.find_parent(("ol", "ul"))
    if parent is None or parent.name != "ol":
        return "- "
    siblings = parent.find_all("li", recursive=False)
    position = next((i for i, li in enumerate(siblings) if li is item), 0)
    return f"{position + 1}. "


def _resolve_breaks(text: str) -> str:
    """A run of break markers is a blank line if it holds a paragraph break."""
    return _BREAK_RUN.sub(lambda m: "\n\n" if _PARA in m.group(0) else "\n", text)


def _tidy_html_text(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in _resolve_breaks(text).split("\n")]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


# ----------------------------------------------------------------------------
# PDF
# ----------------------------------------------------------------------------

_PAGE_SEPARATOR = "\n\n"
_FILE_NAME_TITLE = re.compile(r".*\.(?:docx?|pdf|rtf|odt|txt|indd|qxd|xlsx?|pptx?)$", re.I)
_PLACEHOLDER_TITLES = frozenset(
    {"untitled", "untitled document", "document", "title", "no title", "microsoft word"}
)
_WORD_PREFIX = re.compile(r"^microsoft (?:word|powerpoint) - ", re.I)


def load_pdf(data: bytes, *, source: str, max_chars: int | None = None) -> LoadedText:
    """Text of each page in order; ``page_starts`` marks where each page begins.

    With ``max_chars``, extraction stops as soon as the pages hold more text than that.
    """
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        _decrypt_if_needed(reader, source)
        pages: list[str] = []
        chars = 0
        for page in reader.pages:
            pages.append(normalise_newlines(page.extract_text() or ""))
            chars += len(pages[-1])
            if max_chars is not None and chars > max_chars:
                raise DocumentLoadError(source, _too_much_text(chars, max_chars, "at least "))
        raw_title = reader.metadata.title if reader.metadata else None
    except DocumentLoadError:
        raise
    except Exception as exc:  # pypdf raises many kinds of errors on damaged files
        raise DocumentLoadError(source, f"invalid PDF: {_describe(exc)}") from exc
    if not pages:
        raise DocumentLoadError(source, "invalid PDF: no pages")
    text, starts = join_pages(pages)
    return LoadedText(
        text=text, format="pdf", page_starts=starts, title=meaningful_title(raw_title)
    )


def _decrypt_if_needed(reader: object, source: str) -> None:
    if not getattr(reader, "is_encrypted", False):
        return
    try:
        ok = reader.decrypt("")  # type: ignore[attr-defined]
    except Exception as exc:  # missing crypto dependency, unsupported algorithm
        raise DocumentLoadError(source, f"encrypted PDF: {_describe(exc)}") from exc
    if not ok:
        raise DocumentLoadError(source, "encrypted PDF: a password is required")


def join_pages(pages: Iterable[str]) -> tuple[str, list[int]]:
    """Concatenate page texts and record the offset where each one starts."""
    starts: list[int] = []
    parts: list[str] = []
    offset = 0
    for index, page in enumerate(pages):
        if index:
            parts.append(_PAGE_SEPARATOR)
            offset += len(_PAGE_SEPARATOR)
        starts.append(offset)
        parts.append(page)
        offset += len(page)
    return "".join(parts), starts


def meaningful_title(raw: object) -> str | None:
    """A title from file properties, unless it is a placeholder or a file name.

    Authoring tools often fill the title with "Microsoft Word - letter.docx" or
    "Untitled"; such values would be worse than the document's own heading.
    """
    if not isinstance(raw, str):
        return None
    title = _WORD_PREFIX.sub("", " ".join(raw.split()))
    if len(title) < 3 or not any(ch.isalpha() for ch in title):
        return None
    if _FILE_NAME_TITLE.match(title) or title.lower() in _PLACEHOLDER_TITLES:
        return None
    return title


def _describe(exc: BaseException) -> str:
    message = str(exc).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


# ----------------------------------------------------------------------------
# DOCX
# ----------------------------------------------------------------------------


def load_docx(data: bytes, *, source: str) -> LoadedText:
    """Paragraphs and tables of a Word document in body order.

    Paragraphs are separated by a blank line (Word has no line wrapping to undo);
    list paragraphs get a ``- `` marker and table rows become ``cell | cell`` lines.
    """
    import docx

    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(_docx_blocks(document.iter_inner_content()))
        raw_title = document.core_properties.title
    except Exception as exc:  # python-docx / lxml errors on damaged parts
        raise DocumentLoadError(source, f"invalid DOCX file: {_describe(exc)}") from exc
    return LoadedText(
        text=_join_docx_blocks(blocks), format="docx", title=meaningful_title(raw_title)
    )


def _docx_blocks(items: Iterable[object]) -> Iterator[tuple[str, str]]:
    """Yield ``(kind, text)`` with kind ``paragraph``, ``item`` or ``table``."""
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    for item in items:
        if isinstance(item, Paragraph):
            text = normalise_newlines(item.text)
            if _is_list_paragraph(item) and text.strip():
                yield "item", "- " + text.strip()
            else:
                yield "paragraph", text
        elif isinstance(item, Table):
            yield "table", _docx_table_text(item)


def _is_list_paragraph(paragraph: object) -> bool:
    p_pr = getattr(getattr(paragraph, "_p", None), "pPr", None)
    if p_pr is not None and getattr(p_pr, "numPr", None) is not None:
        return True
    style = getattr(paragraph, "style", None)
    name = getattr(style, "name", "") or ""
    return name.lower().startswith("list")


def _docx_table_text(table: object) -> str:
    rows: list[str] = []
    for row in getattr(table, "rows", []):
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # merged cells repeat the same element
                continue
            seen.add(id(cell._tc))
            text = " ".join(line.strip() for line in cell.text.split("\n") if line.strip())
            if text:
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return "\n".join(rows)


def _join_docx_blocks(blocks: list[tuple[str, str]]) -> str:
    out: list[str] = []
    previous = ""
    for kind, text in blocks:
        if out:
            out.append("\n" if kind == previous == "item" else "\n\n")
        out.append(text)
        previous = kind
    return "".join(out)
