"""The embedded vector index used beside SQLite: exact cosine search with numpy.

The store keeps every chunk's vector (kb_chunk_vectors, float32 blobs) as the
source of truth. This index is a per-knowledge-base matrix of them, loaded
once and kept until the base's `index_version` changes; a snapshot of it is
written beside the database file (`<data dir>/vectors/`) so a restart maps it
back without reading every blob. Exact search over 100k 384-dim vectors is
one matrix-vector product (tens of milliseconds), so no ANN structure is
needed at that size (see bench/retrieval for the measurements).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

log = logging.getLogger(__name__)


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


@dataclass(slots=True)
class _Matrix:
    version: int
    ids: np.ndarray  # int64 chunk ids
    vectors: np.ndarray  # float32, rows normalised


class EmbeddedVectorIndex:
    def __init__(self, directory: Path):
        self.directory = directory
        self._cache: dict[str, _Matrix] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._file_lock = threading.Lock()

    async def search(
        self, db: AsyncSession, kb_id: str, version: int, query: np.ndarray, limit: int
    ) -> list[tuple[int, float]]:
        matrix = await self._matrix(db, kb_id, version)
        if matrix.ids.size == 0:
            return []
        scores = matrix.vectors @ query.astype(np.float32)
        limit = min(limit, scores.size)
        top = np.argpartition(-scores, limit - 1)[:limit]
        top = top[np.argsort(-scores[top])]
        return [(int(matrix.ids[i]), float(scores[i])) for i in top]

    async def similarities(
        self, db: AsyncSession, kb_id: str, version: int, query: np.ndarray, chunk_ids: list[int]
    ) -> dict[int, float]:
        matrix = await self._matrix(db, kb_id, version)
        if matrix.ids.size == 0 or not chunk_ids:
            return {}
        positions = np.searchsorted(matrix.ids, chunk_ids)
        out = {}
        for chunk_id, pos in zip(chunk_ids, positions):
            if pos < matrix.ids.size and matrix.ids[pos] == chunk_id:
                out[chunk_id] = float(matrix.vectors[pos] @ query)
        return out

    def forget(self, kb_id: str) -> None:
        self._cache.pop(kb_id, None)
        for path in self.directory.glob(f"{kb_id}.*"):
            path.unlink(missing_ok=True)

    async def _matrix(self, db: AsyncSession, kb_id: str, version: int) -> _Matrix:
        cached = self._cache.get(kb_id)
        if cached is not None and cached.version == version:
            return cached
        lock = self._locks.setdefault(kb_id, asyncio.Lock())
        async with lock:
            cached = self._cache.get(kb_id)
            if cached is not None and cached.version == version:
                return cached
            matrix = await asyncio.to_thread(self._read_snapshot, kb_id, version)
            if matrix is None:
                matrix = await self._load(db, kb_id, version)
                await asyncio.to_thread(self._write_snapshot, kb_id, matrix)
            self._cache[kb_id] = matrix
            return matrix

    async def _load(self, db: AsyncSession, kb_id: str, version: int) -> _Matrix:
        result = await db.execute(
            text("SELECT chunk_id, embedding FROM kb_chunk_vectors WHERE knowledge_base_id = :kb ORDER BY chunk_id"),
            {"kb": kb_id},
        )
        rows = result.all()
        if not rows:
            return _Matrix(version, np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32))
        size = len(rows[-1][1])  # the newest rows decide, should a base ever mix vector sizes
        kept = [r for r in rows if len(r[1]) == size]
        if len(kept) != len(rows):
            log.warning("knowledge base %s mixes vector sizes; %d older rows ignored", kb_id, len(rows) - len(kept))
        ids = np.fromiter((r[0] for r in kept), dtype=np.int64, count=len(kept))
        vectors = np.frombuffer(b"".join(r[1] for r in kept), dtype="<f4").reshape(len(kept), size // 4)
        return _Matrix(version, ids, vectors.astype(np.float32))

    def _paths(self, kb_id: str, version: int) -> tuple[Path, Path]:
        return (self.directory / f"{kb_id}.v{version}.ids.npy", self.directory / f"{kb_id}.v{version}.vec.npy")

    def _read_snapshot(self, kb_id: str, version: int) -> _Matrix | None:
        ids_path, vec_path = self._paths(kb_id, version)
        if not (ids_path.exists() and vec_path.exists()):
            return None
        try:
            return _Matrix(version, np.load(ids_path), np.load(vec_path, mmap_mode="r"))
        except (OSError, ValueError):
            return None

    def _write_snapshot(self, kb_id: str, matrix: _Matrix) -> None:
        if matrix.ids.size == 0:
            return
        with self._file_lock:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                for old in self.directory.glob(f"{kb_id}.v*.npy"):
                    old.unlink(missing_ok=True)
                ids_path, vec_path = self._paths(kb_id, matrix.version)
                for path, array in ((ids_path, matrix.ids), (vec_path, matrix.vectors)):
                    partial = path.with_suffix(".partial")
                    with open(partial, "wb") as handle:
                        np.save(handle, array)
                    partial.replace(path)
            except OSError as exc:  # a snapshot is an optimisation; the store still has the vectors
                log.warning("could not write the vector snapshot of %s: %s", kb_id, exc)
