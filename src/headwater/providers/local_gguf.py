"""What a GGUF file says about itself, read from its header without loading the model.

The local provider needs one fact before it builds a prompt: whether the file
carries a chat template (`tokenizer.chat_template`). An instruction-tuned model
is prompted through its own template; a base model, such as the packaged Gemma
3 270M, gets a plain transcript. The runtime does not tell the two apart (it
falls back to a generic template), so the header is read here.

Layout (GGUF v2/v3, little-endian): magic "GGUF", version u32, tensor count u64,
key/value count u64, then the key/value pairs, then the tensor infos. Arrays
(the vocabulary has 262k strings) are skipped, not decoded.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any

CHAT_TEMPLATE_KEY = "tokenizer.chat_template"

_STRING, _ARRAY = 8, 9
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class NotGguf(ValueError):
    pass


def read_metadata(path: Path) -> dict[str, Any]:
    """Every scalar and string value of the header; arrays appear as None."""
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        values, _ = _read_header(data)
        return values


def metadata_end(data: bytes | mmap.mmap) -> tuple[dict[str, Any], int, int]:
    """(metadata, offset just after the key/value pairs, tensor count): what a writer needs to insert a value."""
    values, offset = _read_header(data)
    (tensors,) = struct.unpack_from("<Q", data, 8)
    return values, offset, tensors


def _read_header(data: bytes | mmap.mmap) -> tuple[dict[str, Any], int]:
    if len(data) < 24 or data[:4] != b"GGUF":
        raise NotGguf("not a GGUF file")
    (version,) = struct.unpack_from("<I", data, 4)
    if version < 2:
        raise NotGguf(f"GGUF version {version} is too old")
    (count,) = struct.unpack_from("<Q", data, 16)
    offset = 24
    values: dict[str, Any] = {}
    try:
        for _ in range(count):
            key, offset = _string(data, offset)
            (kind,) = struct.unpack_from("<I", data, offset)
            offset += 4
            if kind == _STRING:
                values[key], offset = _string(data, offset)
            elif kind in _SCALARS:
                (values[key],) = struct.unpack_from("<" + _SCALARS[kind], data, offset)
                offset += struct.calcsize(_SCALARS[kind])
            else:
                values[key] = None
                offset = _skip(data, kind, offset)
    except (struct.error, UnicodeDecodeError, KeyError) as exc:
        raise NotGguf(f"unreadable GGUF header: {exc}") from None
    return values, offset


def _string(data: bytes | mmap.mmap, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<Q", data, offset)
    end = offset + 8 + length
    if end > len(data):
        raise struct.error("string runs past the end of the file")
    return bytes(data[offset + 8 : end]).decode("utf-8"), end


def _skip(data: bytes | mmap.mmap, kind: int, offset: int) -> int:
    if kind in _SCALARS:
        return offset + struct.calcsize(_SCALARS[kind])
    if kind == _STRING:
        (length,) = struct.unpack_from("<Q", data, offset)
        return offset + 8 + length
    if kind == _ARRAY:
        item_kind, count = struct.unpack_from("<IQ", data, offset)
        offset += 12
        if item_kind in _SCALARS:
            return offset + struct.calcsize(_SCALARS[item_kind]) * count
        for _ in range(count):
            offset = _skip(data, item_kind, offset)
        return offset
    raise KeyError(f"unknown value type {kind}")


def chat_template(path: Path) -> str | None:
    """The file's own chat template, or None (a base model, or a file without one)."""
    template = read_metadata(path).get(CHAT_TEMPLATE_KEY)
    return template if isinstance(template, str) and template.strip() else None
