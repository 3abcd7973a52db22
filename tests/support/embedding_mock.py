"""A small OpenAI-compatible `/v1/embeddings` server with deterministic vectors.

Vectors are hashed bags of words and character trigrams: texts sharing words
(or word pieces) point the same way, so vector search behaves plausibly and
every value is reproducible. Served for real over HTTP so the server under
test goes through the official `openai` SDK. It also answers
`/v1/audio/transcriptions` with a fixed text, for the transcription-provider path.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from support.provider_mocks import ServedApp

DIMENSIONS = 256
TRANSCRIPT = "what does the handbook say about parking"


def hashed_embedding(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    vector = np.zeros(dimensions, dtype=np.float64)
    words = re.findall(r"[a-z0-9]+", text.lower())
    features = [(w.rstrip("s") or w, 1.0) for w in words]
    features += [(f"#{w[i:i + 3]}", 0.3) for w in words for i in range(max(1, len(w) - 2))]
    for feature, weight in features:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        index = int.from_bytes(digest[:4], "little") % dimensions
        vector[index] += weight if digest[4] & 1 else -weight
    norm = np.linalg.norm(vector) or 1.0
    return (vector / norm).round(6).tolist()


@dataclass
class EmbeddingMockState:
    requests: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    fail_next: int = 0
    stopping: bool = False

    def reset(self) -> None:
        self.requests.clear()
        self.authorizations.clear()
        self.fail_next = 0


def embeddings_app(state: EmbeddingMockState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/embeddings")
    async def embeddings(request: Request):
        body = await request.json()
        state.requests.append(body)
        state.authorizations.append(request.headers.get("authorization"))
        if state.fail_next:
            state.fail_next -= 1
            return JSONResponse({"error": {"message": "mock outage", "type": "server_error"}}, status_code=503)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return {
            "object": "list", "model": body["model"],
            "data": [{"object": "embedding", "index": i, "embedding": hashed_embedding(t)} for i, t in enumerate(inputs)],
            "usage": {"prompt_tokens": sum(len(t.split()) for t in inputs), "total_tokens": 0},
        }

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        form = await request.form()
        state.requests.append({"transcription": form.get("model"), "file": getattr(form.get("file"), "filename", None)})
        return {"text": TRANSCRIPT}

    return app


def serve_embeddings() -> ServedApp:
    state = EmbeddingMockState()
    return ServedApp(embeddings_app(state), state).start()  # type: ignore[arg-type]
