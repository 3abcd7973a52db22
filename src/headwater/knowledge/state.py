"""The process-wide knowledge objects of a runtime: its index backend and its embedder clients.

Kept beside the Runtime (keyed by it) rather than in it, so the knowledge
feature stays one package; built on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

from headwater.knowledge.embeddings import EmbedderPool
from headwater.knowledge.index_base import ChunkIndex

if TYPE_CHECKING:
    from headwater.config import Settings
    from headwater.runtime import Runtime


@dataclass(slots=True)
class KnowledgeState:
    index: ChunkIndex
    embedders: EmbedderPool


_STATES: dict[int, tuple["Runtime", KnowledgeState]] = {}


def knowledge_state(runtime: "Runtime") -> KnowledgeState:
    entry = _STATES.get(id(runtime))
    if entry is None or entry[0] is not runtime:
        entry = (runtime, KnowledgeState(index=build_index(runtime.settings), embedders=EmbedderPool()))
        _STATES[id(runtime)] = entry
    return entry[1]


def build_index(settings: "Settings") -> ChunkIndex:
    if settings.is_sqlite:
        from headwater.knowledge.index_sqlite import SqliteChunkIndex

        return SqliteChunkIndex(vector_dir(settings))
    from headwater.knowledge.index_postgres import PostgresChunkIndex

    return PostgresChunkIndex()


def vector_dir(settings: "Settings") -> Path:
    """`<database file>-vectors/` beside the SQLite file (the data dir for an in-memory database)."""
    database = make_url(settings.resolved_database_url).database
    if database and database != ":memory:":
        path = Path(database)
        return path.with_name(path.stem + "-vectors")
    return settings.data_dir / "vectors"
