"""Consistency checks shared by the ingestion and crash tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from localrag.index.lexical import BM25Index
from localrag.index.store import ChunkRow, DocumentRow, Store
from localrag.index.vectors import FaissVectorIndex


def saved_state(data_dir: Path, collection: str = "default") -> dict:
    """Read the store and the saved index files directly (no repair) and describe them."""
    store = Store.sqlite(data_dir / "localrag.sqlite")
    coll = store.collection(collection)
    folder = data_dir / "collections" / f"{coll.id:04d}"
    db_ids = store.chunk_ids(coll.id)
    vi, vmeta = FaissVectorIndex.load(folder / "vectors.faiss", coll.embedding_dim, use_gpu=False)
    lx, lmeta = BM25Index.load(folder / "bm25-bm25s")
    with store.session() as s:
        dup_ordinals = s.execute(
            select(ChunkRow.document_id, ChunkRow.ordinal, func.count())
            .group_by(ChunkRow.document_id, ChunkRow.ordinal)
            .having(func.count() > 1)
        ).all()
        docs = dict(s.execute(select(DocumentRow.source, DocumentRow.status)).all())
        orphans = s.scalar(
            select(func.count()).select_from(ChunkRow).where(~ChunkRow.document_id.in_(select(DocumentRow.id)))
        )
    state = {
        "db_version": coll.corpus_version,
        "vec_version": vmeta.get("corpus_version"),
        "bm25_version": lmeta.get("corpus_version"),
        "db_ids": db_ids,
        "vec_ids": np.sort(vi.ids()),
        "bm25_ids": np.sort(lx.ids),
        "dup_ordinals": dup_ordinals,
        "orphans": orphans,
        "docs": docs,
    }
    store.engine.dispose()
    return state


def assert_consistent(data_dir: Path, collection: str = "default") -> dict:
    st = saved_state(data_dir, collection)
    assert st["vec_version"] == st["db_version"] == st["bm25_version"], st
    assert np.array_equal(st["vec_ids"], st["db_ids"]), "vectors without chunks or chunks without vectors"
    assert np.array_equal(st["bm25_ids"], st["db_ids"]), "BM25 out of step with chunks"
    assert len(np.unique(st["vec_ids"])) == len(st["vec_ids"]), "duplicate vector ids"
    assert not st["dup_ordinals"], "duplicate chunks"
    assert st["orphans"] == 0
    return st
