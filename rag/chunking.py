"""Split documents into overlapping chunks measured in the embedding model's tokens.

langchain-text-splitters does the splitting (paragraphs first, then lines, sentences,
clauses, words); this module adds what it lacks: offsets back into the document and a
stable id per chunk. A chunk's offsets are found by searching the document text, so
``document.text[chunk.start:chunk.end] == chunk.text`` holds by construction and is
asserted for every chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from rag.types import Chunk, Document

#: Coarse to fine: a chunk breaks at a paragraph if it can, else a line, a sentence end,
#: a clause, a word. The separators stay at the end of the piece they close.
SEPARATORS = ["\n\n", "\n", ". ", "? ", "! ", "; ", ": ", ", ", " ", ""]


def chunk_id(document_id: str, start: int, text: str) -> str:
    """Content-hash id: the same text at the same place of the same document keeps its id."""
    digest = hashlib.sha256(f"{document_id}\x00{start}\x00{text}".encode()).hexdigest()
    return digest[:20]


def text_hash(text: str) -> str:
    """Key of the embedding cache: identical chunk text is never embedded twice."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ChunkerSettings:
    chunk_tokens: int
    chunk_overlap: int

    def to_dict(self) -> dict[str, object]:
        return {
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap,
            "separators": SEPARATORS,
            "splitter": "langchain_text_splitters.RecursiveCharacterTextSplitter",
        }


class Chunker:
    """Document -> chunks with document offsets."""

    def __init__(self, settings: ChunkerSettings, count_tokens: Callable[[str], int]) -> None:
        if settings.chunk_overlap >= settings.chunk_tokens:
            raise ValueError("chunk_overlap must be smaller than chunk_tokens")
        self.settings = settings
        self._splitter = RecursiveCharacterTextSplitter(
            separators=SEPARATORS,
            keep_separator="end",
            chunk_size=settings.chunk_tokens,
            chunk_overlap=settings.chunk_overlap,
            length_function=count_tokens,
            strip_whitespace=True,
        )

    def split(self, document: Document) -> list[Chunk]:
        text = document.text
        chunks: list[Chunk] = []
        cursor = 0
        for piece in self._splitter.split_text(text):
            start = text.find(piece, cursor)
            if start < 0:  # overlap can place a piece before the cursor: search from the last start
                start = text.find(piece, chunks[-1].start if chunks else 0)
            if start < 0:
                raise AssertionError(f"chunk not found in {document.id}: {piece[:60]!r}")
            end = start + len(piece)
            chunks.append(
                Chunk(
                    id=chunk_id(document.id, start, piece),
                    document_id=document.id,
                    start=start,
                    end=end,
                    text=piece,
                )
            )
            cursor = start + 1
        return chunks
