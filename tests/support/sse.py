"""Reading Server-Sent Events in tests, the way a plain SSE client does."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def sse_frames(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """SSE frames as {"event", "id", "data"} with `data` parsed as JSON (comments such as pings skipped)."""
    frame: dict[str, Any] = {}
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                frame["data"] = json.loads("\n".join(data))
                yield frame
            frame, data = {}, []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name in ("event", "id"):
                frame[name] = value
