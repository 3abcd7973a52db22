"""Decide what kind of document some bytes are, from their content first.

The file name's extension and the declared MIME type are claims; the bytes
are the evidence. A claim the bytes contradict (a PDF named notes.txt, a zip
named report.pdf) is refused with 415 rather than handed to the wrong parser.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import PurePosixPath

from headwater.errors import UnsupportedMediaType

KINDS = ("txt", "md", "html", "pdf", "docx", "pptx", "csv", "json")
TEXT_KINDS = ("txt", "md", "html", "csv", "json")

EXTENSIONS = {
    ".txt": "txt", ".text": "txt", ".log": "txt",
    ".md": "md", ".markdown": "md",
    ".html": "html", ".htm": "html", ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".pptx": "pptx",
    ".csv": "csv",
    ".json": "json",
}
MIME_TYPES = {
    "text/plain": "txt",
    "text/markdown": "md", "text/x-markdown": "md",
    "text/html": "html", "application/xhtml+xml": "html",
    "application/pdf": "pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
    "text/csv": "csv", "application/csv": "csv",
    "application/json": "json", "text/json": "json",
}
KIND_MIME = {
    "txt": "text/plain", "md": "text/markdown", "html": "text/html", "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "csv": "text/csv", "json": "application/json",
}
# MIME types that say nothing about the content: clients send them for anything.
UNINFORMATIVE_MIME = {"", "application/octet-stream", "binary/octet-stream", "application/x-www-form-urlencoded"}


def claimed_kind(file_name: str | None, mime: str | None) -> str | None:
    """What the name (then the MIME type) says the file is; None when neither says."""
    if file_name:
        suffix = PurePosixPath(file_name.replace("\\", "/")).suffix.lower()
        if suffix in EXTENSIONS:
            return EXTENSIONS[suffix]
        if suffix:
            raise UnsupportedMediaType(f"files of type '{suffix}' are not supported; accepted: {_accepted()}")
    base = (mime or "").split(";")[0].strip().lower()
    if base in UNINFORMATIVE_MIME:
        return None
    if base in MIME_TYPES:
        return MIME_TYPES[base]
    raise UnsupportedMediaType(f"content type '{base}' is not supported; accepted: {_accepted()}")


def sniff(data: bytes) -> str:
    """The family the bytes belong to: 'pdf', 'docx', 'pptx', 'text', or an unsupported binary (415)."""
    head = data[:8]
    if data.lstrip()[:5] == b"%PDF-":
        return "pdf"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _office_kind(data)
    if _looks_binary(data):
        raise UnsupportedMediaType("the file is binary and not a PDF, DOCX or PPTX document")
    return "text"


def detect_kind(data: bytes, file_name: str | None = None, mime: str | None = None) -> str:
    """The loader to use. The bytes decide the family; for text, the claim picks the flavour."""
    claimed = claimed_kind(file_name, mime)
    family = sniff(data)
    if family != "text":
        if claimed is not None and claimed != family:
            raise UnsupportedMediaType(f"the content is a {family.upper()} file but was sent as {claimed}")
        return family
    if claimed in ("pdf", "docx", "pptx"):
        raise UnsupportedMediaType(f"the content is plain text, not a {claimed.upper()} file")
    if claimed is not None:
        if claimed == "json":
            _require_json(data)
        return claimed
    return _guess_text_flavour(data)


def _office_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise UnsupportedMediaType("the file looks like a zip archive but cannot be read") from None
    if "word/document.xml" in names:
        return "docx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    raise UnsupportedMediaType("zip archives other than DOCX and PPTX documents are not supported")


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    if not sample:
        return False
    if b"\x00" in sample:
        # UTF-16 text has NULs too; accept it only with a byte order mark.
        return not (sample.startswith(b"\xff\xfe") or sample.startswith(b"\xfe\xff"))
    control = sum(1 for b in sample if b < 9 or 13 < b < 32)
    return control / len(sample) > 0.05


def _guess_text_flavour(data: bytes) -> str:
    head = data[:2048].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<body" in head:
        return "html"
    if head[:1] in (b"{", b"["):
        try:
            json.loads(data)
            return "json"
        except ValueError:
            pass
    return "txt"


def _require_json(data: bytes) -> None:
    try:
        json.loads(data)
    except ValueError:
        raise UnsupportedMediaType("the file was sent as JSON but is not valid JSON") from None


def _accepted() -> str:
    return ", ".join(sorted({ext for ext in EXTENSIONS if ext in (".txt", ".md", ".html", ".pdf", ".docx",
                                                                  ".pptx", ".csv", ".json")}))
