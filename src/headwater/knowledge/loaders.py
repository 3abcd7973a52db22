"""Turn a document's bytes into text blocks that remember where they came from.

Every loader returns a `LoadedDocument`: an optional title and a list of
`Block`s in reading order, each with the page (PDF page, slide) and the
section (the heading path, e.g. "Install > Linux") it belongs to. The chunker
uses those to cut along the document's own structure. Loaders are pure
functions of bytes, run in a worker thread, and raise headwater errors (415,
413, 422) for files they cannot read, never a parser's exception.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from headwater.errors import HeadwaterError, InvalidInput, UnsupportedMediaType
from headwater.knowledge.zipguard import check_archive

MAX_PDF_PAGES = 5_000
MAX_JSON_DEPTH = 50
ProgressCallback = Callable[[int, int], None]  # (done, total)


@dataclass(slots=True)
class Block:
    text: str
    page: int | None = None
    section: str | None = None


@dataclass(slots=True)
class LoadedDocument:
    blocks: list[Block] = field(default_factory=list)
    title: str | None = None
    page_count: int | None = None

    @property
    def text(self) -> str:
        return "\n\n".join(b.text for b in self.blocks)


def load(kind: str, data: bytes, progress: ProgressCallback | None = None) -> LoadedDocument:
    loader = _LOADERS.get(kind)
    if loader is None:
        raise UnsupportedMediaType(f"no loader for '{kind}' documents")
    try:
        document = loader(data, progress) if kind == "pdf" else loader(data)
    except HeadwaterError:
        raise
    except Exception as exc:  # a damaged file must be the uploader's 4xx, not our 500
        raise InvalidInput(f"the {kind} file could not be read: {exc.__class__.__name__}") from None
    document.blocks = [b for b in document.blocks if b.text.strip()]
    return document


# --- text -------------------------------------------------------------------


def decode_text(data: bytes) -> str:
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text.replace("\r\n", "\n").replace("\r", "\n")) if p.strip()]


def load_txt(data: bytes) -> LoadedDocument:
    return LoadedDocument(blocks=[Block(p) for p in _paragraphs(decode_text(data))])


_ATX_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def load_md(data: bytes) -> LoadedDocument:
    lines = decode_text(data).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    buffer: list[str] = []
    title = None
    in_fence = False

    def flush() -> None:
        text = "\n".join(buffer).strip()
        buffer.clear()
        if text:
            blocks.append(Block(text, section=" > ".join(h for _, h in headings) or None))

    def set_heading(level: int, text: str) -> None:
        nonlocal title
        flush()
        while headings and headings[-1][0] >= level:
            headings.pop()
        headings.append((level, text))
        if title is None and level == 1:
            title = text

    for index, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
            buffer.append(line)
            continue
        if in_fence:
            buffer.append(line)
            continue
        match = _ATX_HEADING.match(line)
        if match:
            set_heading(len(match.group(1)), match.group(2))
        elif buffer and line.strip() and set(line.strip()) <= {"="} and len(buffer) == 1:
            set_heading(1, buffer.pop())
        elif buffer and line.strip() and set(line.strip()) <= {"-"} and len(line.strip()) > 2 and len(buffer) == 1:
            set_heading(2, buffer.pop())
        elif not line.strip():
            flush()
        else:
            buffer.append(line)
    flush()
    return LoadedDocument(blocks=blocks, title=title)


# --- HTML ---------------------------------------------------------------------

_SKIP_TAGS = {"script", "style", "noscript", "template", "svg", "iframe", "object", "head", "nav", "form", "button"}
_HEADING_TAGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_BLOCK_TAGS = {
    "p", "li", "pre", "blockquote", "tr", "dt", "dd", "figcaption", "caption", "address", "td", "th",
    "div", "section", "article", "main", "aside", "ul", "ol", "dl", "table", "tbody", "thead", "body", "html",
    "header", "footer", "figure", "details", "summary",
}


def load_html(data: bytes) -> LoadedDocument:
    from bs4 import BeautifulSoup, NavigableString, Tag

    soup = BeautifulSoup(decode_text(data), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    inline: list[str] = []

    def flush() -> None:
        text = re.sub(r"[ \t\r\f\v]+", " ", "".join(inline)).strip()
        inline.clear()
        if text:
            blocks.append(Block(text, section=" > ".join(h for _, h in headings) or None))

    def walk(node) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if child.__class__.__name__ in ("Comment", "Doctype", "Declaration", "ProcessingInstruction"):
                    continue
                inline.append(str(child))
                continue
            if not isinstance(child, Tag) or child.name in _SKIP_TAGS:
                continue
            if child.name in _HEADING_TAGS:
                flush()
                level, text = _HEADING_TAGS[child.name], child.get_text(" ", strip=True)
                while headings and headings[-1][0] >= level:
                    headings.pop()
                if text:
                    headings.append((level, text))
                continue
            if child.name == "br":
                inline.append("\n")
            elif child.name == "pre":
                flush()
                inline.append(child.get_text())
                flush()
            elif child.name in _BLOCK_TAGS:
                flush()
                walk(child)
                if child.name in ("td", "th"):
                    inline.append(" | ")
                else:
                    flush()
            else:
                walk(child)

    walk(soup)
    flush()
    if not title:
        first_h1 = soup.find("h1")
        title = first_h1.get_text(" ", strip=True) if first_h1 else None
    return LoadedDocument(blocks=blocks, title=title or None)


# --- PDF --------------------------------------------------------------------


def load_pdf(data: bytes, progress: ProgressCallback | None = None) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnsupportedMediaType("password-protected PDFs are not supported")
        pages = reader.pages
        total = len(pages)
    except (PdfReadError, FileNotDecryptedError, ValueError, KeyError) as exc:
        raise InvalidInput(f"the PDF could not be read: {exc.__class__.__name__}") from None
    if total > MAX_PDF_PAGES:
        raise InvalidInput(f"the PDF has {total} pages; at most {MAX_PDF_PAGES} are accepted")
    blocks: list[Block] = []
    for number, page in enumerate(pages, start=1):
        text = page.extract_text() or ""
        for paragraph in _paragraphs(text):
            blocks.append(Block(paragraph, page=number))
        if progress is not None:
            progress(number, total)
    title = None
    try:
        title = (reader.metadata.title or None) if reader.metadata else None
    except Exception:  # noqa: BLE001 - broken metadata is not worth failing the document
        title = None
    return LoadedDocument(blocks=blocks, title=title, page_count=total)


# --- Office -----------------------------------------------------------------


def load_docx(data: bytes) -> LoadedDocument:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_archive(data)
    document = docx.Document(io.BytesIO(data))
    headings: list[tuple[int, str]] = []
    blocks: list[Block] = []
    title = (document.core_properties.title or "").strip() or None

    for item in document.iter_inner_content():
        section = " > ".join(h for _, h in headings) or None
        if isinstance(item, Table):
            rows = [" | ".join(cell.text.strip() for cell in row.cells) for row in item.rows]
            blocks.append(Block("\n".join(rows), section=section))
            continue
        if not isinstance(item, Paragraph):
            continue
        text = item.text.strip()
        if not text:
            continue
        level = _docx_heading_level(item.style.name if item.style is not None else "")
        if level is None:
            blocks.append(Block(text, section=section))
            continue
        if level == 0:  # the Title style: the root every Heading 1 sits under
            title = title or text
        while headings and headings[-1][0] >= level:
            headings.pop()
        headings.append((level, text))
    return LoadedDocument(blocks=blocks, title=title)


def _docx_heading_level(style_name: str) -> int | None:
    if style_name == "Title":
        return 0
    match = re.match(r"Heading (\d)", style_name or "")
    return int(match.group(1)) if match else None


def load_pptx(data: bytes) -> LoadedDocument:
    from pptx import Presentation

    check_archive(data)
    presentation = Presentation(io.BytesIO(data))
    blocks: list[Block] = []
    title = (presentation.core_properties.title or "").strip() or None
    slides = list(presentation.slides)
    for number, slide in enumerate(slides, start=1):
        blocks_before = len(blocks)
        title_shape = slide.shapes.title
        slide_title = title_shape.text_frame.text.strip() if title_shape is not None else None
        section = slide_title or f"Slide {number}"
        for shape in slide.shapes:
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if shape.has_text_frame and shape.text_frame.text.strip():
                blocks.append(Block(shape.text_frame.text.strip(), page=number, section=section))
            elif getattr(shape, "has_table", False) and shape.has_table:
                rows = [" | ".join(c.text.strip() for c in row.cells) for row in shape.table.rows]
                blocks.append(Block("\n".join(rows), page=number, section=section))
        if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
            notes = slide.notes_slide.notes_text_frame.text.strip()
            if notes:
                blocks.append(Block(notes, page=number, section=section))
        if slide_title and len(blocks) == blocks_before:  # a title-only slide still says something
            blocks.append(Block(slide_title, page=number, section=section))
    if title is None and slides and slides[0].shapes.title is not None:
        title = slides[0].shapes.title.text_frame.text.strip() or None
    return LoadedDocument(blocks=blocks, title=title, page_count=len(slides))


# --- data -------------------------------------------------------------------


def load_csv(data: bytes) -> LoadedDocument:
    text = decode_text(data)
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    if not rows:
        return LoadedDocument()
    header = [h.strip() for h in rows[0]]
    blocks = []
    for number, row in enumerate(rows[1:], start=2):
        cells = [f"{name}: {value.strip()}" for name, value in zip(header, row) if value.strip()]
        if cells:
            blocks.append(Block(f"Row {number}: " + "; ".join(cells)))
    if not blocks:  # a single row: no header to pair with
        blocks = [Block("; ".join(rows[0]))]
    return LoadedDocument(blocks=blocks)


def load_json(data: bytes) -> LoadedDocument:
    try:
        value = json.loads(decode_text(data))
    except ValueError:
        raise UnsupportedMediaType("the file is not valid JSON") from None
    blocks: list[Block] = []
    if isinstance(value, dict):
        for key, item in value.items():
            blocks.append(Block("\n".join(_flatten(item, str(key), 0)), section=str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            blocks.append(Block("\n".join(_flatten(item, f"[{index}]", 0))))
    else:
        blocks.append(Block(str(value)))
    return LoadedDocument(blocks=blocks)


def _flatten(value, path: str, depth: int) -> list[str]:
    if depth > MAX_JSON_DEPTH:
        raise InvalidInput(f"the JSON nests deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, dict):
        return [line for key, item in value.items() for line in _flatten(item, f"{path}.{key}", depth + 1)]
    if isinstance(value, list):
        return [line for i, item in enumerate(value) for line in _flatten(item, f"{path}[{i}]", depth + 1)]
    return [f"{path}: {value}"]


_LOADERS = {
    "txt": load_txt, "md": load_md, "html": load_html, "pdf": load_pdf,
    "docx": load_docx, "pptx": load_pptx, "csv": load_csv, "json": load_json,
}
