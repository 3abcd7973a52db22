"""Cut loaded blocks into chunks along the document's own structure.

A chunk never spans two pages or two sections, so its page and section are
exact citations. Within a section, paragraphs are packed up to `size`
characters; a paragraph longer than that is cut at sentence ends, then at
spaces. Consecutive chunks of one section share `overlap` characters (the
previous chunk's tail, cut at a word boundary) so a passage that straddles a
cut is still found whole in one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import groupby

from headwater.knowledge.loaders import Block

MIN_CHUNK_SIZE = 100
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+")


@dataclass(slots=True)
class ChunkDraft:
    ordinal: int
    text: str
    page: int | None
    section: str | None

    @property
    def embedding_text(self) -> str:
        return f"{self.section}\n{self.text}" if self.section else self.text


def chunk_blocks(blocks: list[Block], size: int = 1000, overlap: int = 150) -> list[ChunkDraft]:
    size = max(size, MIN_CHUNK_SIZE)
    overlap = max(0, min(overlap, size // 2))
    drafts: list[ChunkDraft] = []
    for (page, section), group in groupby(blocks, key=lambda b: (b.page, b.section)):
        for text in _pack([b.text.strip() for b in group], size, overlap):
            drafts.append(ChunkDraft(len(drafts), text, page, section))
    return drafts


def _pack(paragraphs: list[str], size: int, overlap: int) -> list[str]:
    pieces = [piece for p in paragraphs for piece in _split_long(p, size - overlap)]
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    for piece in pieces:
        extra = len(piece) + (2 if current else 0)
        if current and length + extra > size:
            chunks.append("\n\n".join(current))
            tail = _tail(chunks[-1], overlap)
            current, length = ([tail], len(tail)) if tail else ([], 0)
            extra = len(piece) + (2 if current else 0)
        current.append(piece)
        length += extra
    if current:
        text = "\n\n".join(current)
        # A last chunk that is only the overlap of the one before adds nothing.
        if not chunks or not chunks[-1].endswith(text):
            chunks.append(text)
    return chunks


def _split_long(paragraph: str, limit: int) -> list[str]:
    if len(paragraph) <= limit:
        return [paragraph]
    out: list[str] = []
    current = ""
    for sentence in _SENTENCE_END.split(paragraph):
        for part in _split_words(sentence, limit):
            if current and len(current) + 1 + len(part) > limit:
                out.append(current)
                current = part
            else:
                current = f"{current} {part}" if current else part
    if current:
        out.append(current)
    return out


def _split_words(sentence: str, limit: int) -> list[str]:
    if len(sentence) <= limit:
        return [sentence]
    out, current = [], ""
    for word in sentence.split():
        while len(word) > limit:  # a "word" longer than a chunk (a URL, base64): cut it hard
            if current:
                out.append(current)
                current = ""
            out.append(word[:limit])
            word = word[limit:]
        if current and len(current) + 1 + len(word) > limit:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        out.append(current)
    return out


def _tail(text: str, overlap: int) -> str:
    if overlap <= 0 or len(text) <= overlap:
        return "" if overlap <= 0 else text
    tail = text[-overlap:]
    space = tail.find(" ")
    return tail[space + 1:].strip() if 0 <= space < len(tail) - 1 else tail.strip()
