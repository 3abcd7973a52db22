"""Refuse zip bombs before a DOCX or PPTX parser inflates them.

Office files are zip archives; their central directory states every member's
compressed and uncompressed size, so the totals can be checked without
decompressing anything. The declared sizes could lie, so the parsers also run
on the bounded data only (python-docx and python-pptx read members through
zipfile, which stops at the declared size and checks the CRC).
"""

from __future__ import annotations

import io
import zipfile

from headwater.errors import PayloadTooLarge, UnsupportedMediaType

MAX_MEMBERS = 5_000
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
MAX_RATIO = 200  # a DOCX's XML compresses ~5-20x; hundreds is a bomb


def check_archive(data: bytes) -> None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise UnsupportedMediaType("the document's zip container is damaged") from None
    if len(members) > MAX_MEMBERS:
        raise PayloadTooLarge(f"the document holds more than {MAX_MEMBERS} parts")
    total = 0
    for member in members:
        if member.flag_bits & 0x1:
            raise UnsupportedMediaType("encrypted documents are not supported")
        total += member.file_size
        if member.file_size > 1_000_000 and member.file_size > MAX_RATIO * max(member.compress_size, 1):
            raise PayloadTooLarge("the document expands far beyond its size (a decompression bomb?)")
    if total > MAX_UNCOMPRESSED_BYTES:
        raise PayloadTooLarge(f"the document expands to more than {MAX_UNCOMPRESSED_BYTES // (1024 * 1024)} MiB")
