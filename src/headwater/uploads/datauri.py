"""Strict parsing of `data:` URIs as chat clients send files: `data:<mime>[;name=value]*;base64,<data>`.

Waterflai puts the file name in a parameter (`data:application/pdf;filename=a.pdf;base64,...`).
Anything malformed (no base64 marker, an invalid MIME type, bad base64, stray
characters) is a 422; a payload over the size cap is a 413, found before decoding.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

from headwater.errors import InvalidInput, PayloadTooLarge

_MIME = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
_PARAM = re.compile(r"^([a-z0-9_.-]{1,64})=(.{0,500})$", re.IGNORECASE)
_BASE64_BODY = re.compile(r"^[A-Za-z0-9+/_-]*={0,2}$")


@dataclass(slots=True)
class DataUri:
    mime: str
    data: bytes
    params: dict[str, str] = field(default_factory=dict)

    @property
    def filename(self) -> str | None:
        return self.params.get("filename") or self.params.get("name")

    def as_uri(self) -> str:
        """Re-encoded canonically (no parameters): what is handed on to a model provider."""
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode()}"


def is_data_uri(value: str) -> bool:
    return value[:5].lower() == "data:"


def parse_data_uri(value: str, *, max_bytes: int, label: str = "upload") -> DataUri:
    value = value.strip()
    if not is_data_uri(value):
        raise InvalidInput(f"{label}: expected a data: URI")
    header, comma, payload = value[5:].partition(",")
    if not comma:
        raise InvalidInput(f"{label}: the data URI has no ',' before its data")
    parts = header.split(";")
    if parts[-1].lower() != "base64":
        raise InvalidInput(f"{label}: only base64 data URIs are accepted (…;base64,<data>)")
    mime = parts[0].strip().lower()
    if not _MIME.match(mime):
        raise InvalidInput(f"{label}: '{mime[:100]}' is not a valid MIME type")
    params: dict[str, str] = {}
    for raw in parts[1:-1]:
        match = _PARAM.match(raw.strip())
        if not match:
            raise InvalidInput(f"{label}: malformed data URI parameter '{raw[:60]}'")
        params[match.group(1).lower()] = unquote(match.group(2))
    return DataUri(mime=mime, data=decode_base64(payload, max_bytes=max_bytes, label=label), params=params)


def decode_base64(payload: str, *, max_bytes: int, label: str = "upload") -> bytes:
    payload = "".join(payload.split())  # line breaks inside base64 are common and harmless
    if len(payload) * 3 // 4 > max_bytes:
        raise PayloadTooLarge(f"{label} is larger than {max_bytes} bytes")
    if not payload:
        raise InvalidInput(f"{label} has no data")
    if not _BASE64_BODY.match(payload):
        raise InvalidInput(f"{label}: the data is not valid base64")
    try:
        if "-" in payload or "_" in payload:
            return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        return base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{label}: the data is not valid base64") from None
