"""Milvus as the vector store (index/milvus.py) on a real embedded Milvus (milvus-lite), started by the tests.

No skip: the `milvus` extra is installed by `make install`, so a broken milvus-lite fails here."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pymilvus  # noqa: F401 - fail (not skip) when the extra is missing or broken

from localrag.index.milvus import MilvusVectorIndex, client_for

QUERIES = [
    "Who built the research vessel RV Kittiwake?",
    "How much energy does the microgrid battery store?",
    "When is the lighthouse open to visitors?",
    "What starter does the bakery use for its sourdough?",
    "purple sandpiper record count",
]


def _dense_top10(rag, q: str) -> list[int]:
    return [h.chunk_id for h in rag.search(q, k=10, mode="dense")]


def test_flat_milvus_gives_the_faiss_flat_top10_and_hnsw_recall(sample_rag, rag_factory, tmp_path, capsys):
    """data/sample embedded by the real MiniLM (the session's FAISS-flat collection); the same data directory
    opened with Milvus builds the Milvus collection from the stored embeddings (nothing re-embedded)."""
    flat = rag_factory(sample_rag.data_dir, vector_backend="milvus", milvus_index="FLAT",
                       milvus_uri=str(tmp_path / "flat.db"))
    hnsw = rag_factory(sample_rag.data_dir, vector_backend="milvus", milvus_index="HNSW",
                       milvus_uri=str(tmp_path / "hnsw.db"))
    recalls = []
    for q in QUERIES:
        want = _dense_top10(sample_rag, q)
        assert len(want) == 10
        assert _dense_top10(flat, q) == want, q
        recalls.append(len(set(_dense_top10(hnsw, q)) & set(want)) / 10)
    health = flat.status()["collections"][0]["index"]
    assert health["in_step"] and health["vector_backend"] == "milvus" and health["vector_index"] == "milvus FLAT"
    with capsys.disabled():
        print(f"\nMilvus HNSW recall@10 against FAISS flat on data/sample ({len(QUERIES)} queries): "
              f"{np.mean(recalls):.3f}")
    assert np.mean(recalls) >= 0.9


def test_updates_deletes_and_crash_reconciliation(rag_factory, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The lighthouse keeper trimmed the wick at dusk and logged the weather. " * 6)
    (docs / "b.txt").write_text("Kelp canopy surveys at Skerry Point are counted by divers each August. " * 6)
    opts = {"vector_backend": "milvus", "milvus_index": "FLAT", "chunk_tokens": 32, "chunk_overlap": 0}
    rag = rag_factory(**opts)
    rag.ingest([docs])
    coll = rag.store.collection("default")
    mv = rag._open_indexes(coll).vectors
    assert isinstance(mv, MilvusVectorIndex)

    def in_step(r) -> bool:
        ids = r.store.chunk_ids(coll.id)
        return bool(np.array_equal(np.sort(mv.ids()), ids) and r.status()["collections"][0]["index"]["in_step"])

    assert in_step(rag) and mv.saved_version() == rag.store.corpus_version(coll.id)
    before = set(rag.store.chunk_ids(coll.id).tolist())
    (docs / "a.txt").write_text("The ferry timetable changes in winter; the harbour office posts it. " * 6)
    rag.ingest([docs])  # a changed file: its old chunks' vectors deleted, the new ones upserted
    assert in_step(rag) and set(rag.store.chunk_ids(coll.id).tolist()) != before
    assert rag.search("ferry timetable winter", k=1, mode="dense")[0].source.endswith("a.txt")
    rag.remove([str(docs / "b.txt")])
    assert in_step(rag) and not any(h.source.endswith("b.txt") for h in rag.search("kelp divers", k=5))

    # a crash between the store commit and the Milvus write: vectors missing, a stray one, an older version
    ids = rag.store.chunk_ids(coll.id)
    mv.remove(ids[:2])
    mv.add(np.array([10_000_000]), np.full((1, 384), 1 / np.sqrt(384), np.float32))
    mv.save_version(rag.store.corpus_version(coll.id) - 1)
    second = rag_factory(tmp_path / "data", **opts)  # a second Rag in this process: one shared client
    report = second.ingest([docs])  # nothing changed on disk; the open repairs Milvus from stored embeddings
    assert report.to_dict()
    assert in_step(second)
    assert mv.saved_version() == second.store.corpus_version(coll.id)

    # same version number but other contents (a Milvus collection left from another database): count differs
    mv.add(np.array([10_000_001]), np.full((1, 384), 1 / np.sqrt(384), np.float32))
    third = rag_factory(tmp_path / "data", **opts)
    assert third.status()["collections"][0]["index"]["in_step"]
    assert 10_000_001 not in set(mv.ids().tolist())


def test_a_second_process_on_a_lite_file_gets_a_clear_error(tmp_path):
    uri = str(tmp_path / "m.db")
    client_for(uri).list_collections()  # this process holds the file
    code = f"from localrag.index.milvus import client_for\nclient_for({uri!r})\n"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert "one process" in p.stderr and "http://host:19530" in p.stderr, p.stderr[-2000:]


def test_index_type_change_and_bad_settings(tmp_path):
    uri = str(tmp_path / "t.db")
    mv = MilvusVectorIndex.open(uri, "t_0001", 8, index_type="FLAT")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    mv.add(np.arange(50) + 100, x)
    assert mv.ntotal == 50
    again = MilvusVectorIndex.open(uri, "t_0001", 8, index_type="HNSW")  # re-indexed, data kept
    assert again.description == "milvus HNSW" and again.ntotal == 50
    s, ids = again.search(x[:2], 3, allowed_ids=np.array([100, 101, 140]))
    assert ids[0, 0] == 100 and ids[1, 0] == 101 and set(ids[0]) <= {100, 101, 140}
    np.testing.assert_allclose(again.vectors(np.array([103, 100])), x[[3, 0]], rtol=1e-6)
    import pytest

    with pytest.raises(ValueError, match="holds 8-d"):
        MilvusVectorIndex.open(uri, "t_0001", 16)
    with pytest.raises(ValueError, match="milvus_index"):
        MilvusVectorIndex.open(uri, "t_0002", 8, index_type="DISKANN")


def test_the_row_count_is_kept_between_changes(tmp_path, monkeypatch):
    """Searches (and `ntotal`, which the search stage asks on every query) send no count(*) query while the
    collection is unchanged; every add or remove through the index makes the next `ntotal` count again, right
    also for an upsert of ids already there and a remove of ids that are not."""
    mv = MilvusVectorIndex.open(str(tmp_path / "c.db"), "c_0001", 8, index_type="FLAT")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((60, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    mv.add(np.arange(40), x[:40])
    queries: list[str] = []
    real_query = mv.client.query

    def counting(name, **kw):
        queries.append(str(kw.get("output_fields")))
        return real_query(name, **kw)

    monkeypatch.setattr(mv.client, "query", counting)
    assert mv.ntotal == 40 and len(queries) == 1
    for v in x[:5]:
        assert mv.ntotal == 40
        mv.search(v, 3)
    assert len(queries) == 1  # counted once for all those searches
    mv.add(np.arange(30, 50), x[30:50])  # ids 30-39 upserted again, 40-49 new
    assert mv.ntotal == 50 and len(queries) == 2
    mv.remove(np.array([0, 1, 999]))  # 999 is not there
    assert mv.ntotal == 48 and len(queries) == 3
    assert mv.ntotal == 48 and len(queries) == 3


def test_health_compares_counts_without_reading_every_id(rag_factory, tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The lighthouse keeper trimmed the wick at dusk and logged the weather. " * 6)
    rag = rag_factory(vector_backend="milvus", milvus_index="FLAT", chunk_tokens=32, chunk_overlap=0)
    rag.ingest([docs])

    def no_ids(self):
        raise AssertionError("health read every id back from Milvus")

    monkeypatch.setattr(MilvusVectorIndex, "ids", no_ids)
    health = rag.status()["collections"][0]["index"]
    assert health["in_step"] and health["vectors"] == health["chunks"] > 1
    coll = rag.store.collection("default")
    idx = rag._open_indexes(coll)
    idx.vectors.remove(rag.store.chunk_ids(coll.id)[:1])  # a vector lost behind the store's back
    assert not rag.status()["collections"][0]["index"]["in_step"]
