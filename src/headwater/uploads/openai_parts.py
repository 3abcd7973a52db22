"""OpenAI-style content parts that carry uploads, as `UploadItem`s.

Accepted shapes (Waterflai documents the first; OpenAI's SDK sends the others):
- `{"type": "image_url", "image_url": {"url": "data:<mime>;filename=<name>;base64,..."}}` with a non-image MIME type;
- `{"type": "image_url", "image_url": {"url": "https://..."}}`: an image fetched through the SSRF-safe client;
- `{"type": "file", "file": {"file_data": "data:...", "filename": "..."}}` (or `"file": "data:..."`);
- `{"type": "input_audio", "input_audio": {"data": "<base64>", "format": "wav"}}`.
Inline `data:image/...` parts stay with the dialect's own image handling.
"""

from __future__ import annotations

from typing import Any

from headwater.errors import InvalidInput
from headwater.uploads import UploadItem
from headwater.uploads.datauri import is_data_uri

UPLOAD_PART_TYPES = ("file", "input_file", "input_audio")


def is_upload_part(part: Any) -> bool:
    """True for parts that `upload_items` handles (so the dialect's own parser skips them)."""
    if part.type in UPLOAD_PART_TYPES:
        return True
    if part.type == "image_url":
        url = _image_url(part)
        return bool(url) and (url.lower().startswith("https://") or (
            is_data_uri(url) and not url[5:].lower().startswith("image/")))
    return False


def upload_items(content: Any) -> list[UploadItem]:
    if not isinstance(content, list):
        return []
    items = []
    for part in content:
        if not is_upload_part(part):
            continue
        extra = part.model_extra or {}
        if part.type == "image_url":
            url = _image_url(part)
            items.append(UploadItem(type="url" if url.lower().startswith("https://") else "file", data=url))
        elif part.type == "input_audio":
            audio = extra.get("input_audio") or {}
            if not isinstance(audio, dict) or not isinstance(audio.get("data"), str):
                raise InvalidInput("input_audio needs {'data': <base64>, 'format': 'wav'|'mp3'}")
            audio_format = str(audio.get("format") or "wav").lower()
            items.append(UploadItem(type="audio", data=audio["data"], name=f"audio.{audio_format}",
                                    mime=f"audio/{audio_format}"))
        else:
            file = extra.get("file") if part.type == "file" else extra.get("input_file", extra)
            if isinstance(file, str):
                items.append(UploadItem(type="file", data=file))
            elif isinstance(file, dict) and isinstance(file.get("file_data"), str):
                items.append(UploadItem(type="file", data=file["file_data"], name=file.get("filename")))
            else:
                raise InvalidInput(f"a '{part.type}' part needs file data as a data: URI (file_data)")
    return items


def _image_url(part: Any) -> str:
    value = part.image_url.get("url") if isinstance(part.image_url, dict) else part.image_url
    return value if isinstance(value, str) else ""
