"""Store benchmark: the same collection in SQLite and in PostgreSQL (an embedded pgserver on a Unix socket), timing
what the store does for the rest of localrag:

- insert: N synthetic chunks (random unit fp16 vectors, ~120-word texts) in per-document transactions of 50;
- catch-up reads: all chunk ids, all fp16 embeddings, all chunk texts: what a machine whose index files lag behind
  the database reads to rebuild FAISS and BM25 (index/indexes.py);
- hydrate: one search's store round trip (texts, sources, pages of 10 chunk ids), p50 and p95 over 300 queries;
- corpus_version: the one-row read every search makes to see if its indexes are current.

Ratios are PostgreSQL / SQLite in the same process. Needs the postgres extra (`pip install -e '.[postgres]'`).

    python -m bench.store [--chunks 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select

from localrag.index.store import ChunkRow, CollectionRow, DocumentRow, Store

_WORDS = ("harbour tide keeper lantern kelp gannet storm ferry pier beacon skerry sound mooring quay gull tern "
          "pontoon slipway bakery starter battery inverter solar council minute vote lighthouse lens").split()
DOC_CHUNKS = 50


def _fill(store: Store, n: int, dim: int, seed: int = 5) -> float:
    rng = random.Random(seed)
    vecs = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float16)
    with store.session() as s:
        coll = CollectionRow(name="bench", embedding_model="random", embedding_dim=dim, chunk_tokens=200,
                             chunk_overlap=32)
        s.add(coll)
        s.flush()
        cid = coll.id
    t = time.perf_counter()
    for d, start in enumerate(range(0, n, DOC_CHUNKS)):
        with store.session() as s:
            doc = DocumentRow(collection_id=cid, source=f"/bench/doc-{d:06d}.txt", kind="text", sha256=f"{d:064x}",
                              size=1, mtime=0.0)
            s.add(doc)
            s.flush()
            rows = [{"collection_id": cid, "document_id": doc.id, "ordinal": i - start, "page": None,
                     "text": " ".join(rng.choice(_WORDS) for _ in range(120)), "n_tokens": 150,
                     "text_sha256": f"{i:064x}", "embedding": vecs[i].tobytes()}
                    for i in range(start, min(n, start + DOC_CHUNKS))]
            s.execute(insert(ChunkRow), rows)
    return time.perf_counter() - t


def _time(fn: Any) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def measure(store: Store, n: int, dim: int, queries: int = 300) -> dict[str, float]:
    out: dict[str, float] = {"insert_s": _fill(store, n, dim)}
    coll = store.collection("bench")
    ids = store.chunk_ids(coll.id)
    out["chunk_ids_s"] = _time(lambda: store.chunk_ids(coll.id))
    out["embeddings_s"] = _time(lambda: store.embeddings(ids, dim))
    out["chunk_texts_s"] = _time(lambda: store.chunk_texts(coll.id))
    rng = np.random.default_rng(1)
    hydrate, version = [], []
    for _ in range(queries):
        pick = [int(i) for i in rng.choice(ids, 10, replace=False)]
        t = time.perf_counter()
        with store.session() as s:
            s.execute(select(ChunkRow.id, ChunkRow.text, DocumentRow.source, ChunkRow.page)
                      .join(DocumentRow, DocumentRow.id == ChunkRow.document_id).where(ChunkRow.id.in_(pick))).all()
        hydrate.append(time.perf_counter() - t)
        version.append(_time(lambda: store.corpus_version(coll.id)))
    out["hydrate_p50_ms"] = statistics.median(hydrate) * 1000
    out["hydrate_p95_ms"] = float(np.percentile(hydrate, 95)) * 1000
    out["corpus_version_p50_ms"] = statistics.median(version) * 1000
    return out


def run(n: int, dim: int = 384) -> dict[str, Any]:
    import pgserver
    import psycopg

    tmp = Path(tempfile.mkdtemp(prefix="localrag-bench-store-"))
    server = None
    try:
        sqlite = Store.sqlite(tmp / "bench.sqlite")
        res_sqlite = measure(sqlite, n, dim)
        sqlite.engine.dispose()
        server = pgserver.get_server(tmp / "pgdata", cleanup_mode="delete")
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
        pg = Store(server.get_uri("bench"))
        res_pg = measure(pg, n, dim)
        pg.engine.dispose()
    finally:
        if server is not None:
            server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"chunks": n, "dim": dim, "sqlite": res_sqlite, "postgresql": res_pg,
            "ratio_pg_over_sqlite": {k: res_pg[k] / res_sqlite[k] for k in res_sqlite if res_sqlite[k] > 0}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.store", description=__doc__.split("\n\n")[0])
    ap.add_argument("--chunks", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run(args.chunks)
    if args.json:
        print(json.dumps(res, indent=1))
        return
    print(f"{args.chunks} chunks, {res['dim']}-d fp16 embeddings")
    print(f"{'':24}{'SQLite':>12}{'PostgreSQL':>12}{'PG/SQLite':>11}")
    for key in res["sqlite"]:
        a, b = res["sqlite"][key], res["postgresql"][key]
        print(f"{key:24}{a:12.3f}{b:12.3f}{b / a if a else float('nan'):10.2f}x")


if __name__ == "__main__":
    main()
