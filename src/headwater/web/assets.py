"""The Studio's static files, read once from the package and served from memory.

Only the files shipped in `web/static/` exist here (a fixed table, looked up by
name), so no request path ever reaches the file system. Each file carries an
ETag and a gzip copy; browsers revalidate (`no-cache`) and get 304 when unchanged.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".html": "text/html; charset=utf-8",
}
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*\.(js|css|svg|html)$")


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    gzipped: bytes
    etag: str
    content_type: str


@lru_cache(maxsize=1)
def assets() -> dict[str, Asset]:
    folder = resources.files("headwater.web") / "static"
    table: dict[str, Asset] = {}
    for entry in folder.iterdir():
        if not _NAME.match(entry.name):
            continue
        body = entry.read_bytes()
        suffix = entry.name[entry.name.rindex("."):]
        table[entry.name] = Asset(
            name=entry.name, body=body, gzipped=gzip.compress(body, compresslevel=9, mtime=0),
            etag='"' + hashlib.sha256(body).hexdigest()[:20] + '"', content_type=CONTENT_TYPES[suffix],
        )
    return table


def version_tag() -> str:
    """One short hash of every asset: the page's URLs change whenever any file does."""
    digest = hashlib.sha256("".join(a.etag for a in sorted(assets().values(), key=lambda a: a.name)).encode())
    return digest.hexdigest()[:12]
