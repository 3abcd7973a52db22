"""Encryption at rest for provider secrets (Fernet, key from settings or data_dir)."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.fernet import Fernet

from headwater.config import Settings


class SecretBox:
    def __init__(self, settings: Settings):
        self._fernet = Fernet(_load_key(settings))

    def seal(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode("utf-8"))

    def open(self, token: bytes) -> str:
        return self._fernet.decrypt(token).decode("utf-8")


def _load_key(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        # Any string works as a setting; Fernet needs 32 url-safe base64 bytes.
        digest = hashlib.sha256(settings.secret_key.get_secret_value().encode()).digest()
        return base64.urlsafe_b64encode(digest)
    path = Path(settings.data_dir) / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process of this instance won the race
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
