"""Segmented, incrementally updated BM25 (index/lexical.py): after adds and removes in any order, the scores are
exactly those of a full rebuild over the live chunks, and those of the bm25s library itself."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from localrag.index import lexical as lexmod
from localrag.index.lexical import BM25Index, tokenize

QUERIES = ["w1 w2 w3", "w10 w10 w2999", "w500 w7", "w42", "nothing-here"]


def _corpus(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(3000)])
    # Zipf-like word use, some empty texts
    p = 1.0 / np.arange(1, 3001)
    p /= p.sum()
    return [" ".join(rng.choice(words, size=int(rng.integers(0, 60)), p=p)) for _ in range(n)]


def _full(ids: np.ndarray, texts: list[str]) -> BM25Index:
    idx = BM25Index()
    idx.build(ids, texts)
    return idx


def test_incremental_adds_and_removes_equal_a_full_rebuild_and_bm25s():
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    texts = _corpus(3000)
    ids = np.arange(3000, dtype=np.int64) * 2 + 1
    inc = BM25Index()
    for start in range(0, 3000, 100):  # 30 ingest runs: delta segments, then merges
        inc.add(ids[start : start + 100], texts[start : start + 100])
        if start == 1500:
            inc.remove(ids[::7])  # a removal in the middle (tombstones in base and deltas); later ids not there yet
    inc.remove(ids[5:40])
    assert inc.merges > 0 and len(inc.segments) >= 1
    keep = np.ones(3000, bool)
    keep[:1600:7] = False
    keep[5:40] = False
    live_texts = [t for t, k in zip(texts, keep, strict=True) if k]
    full = _full(ids[keep], live_texts)
    ref = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    ref.index([tokenize(t) or [""] for t in live_texts], show_progress=False)
    assert np.array_equal(inc.ids, ids[keep]) and len(inc) == int(keep.sum())
    for q in QUERIES:
        got = inc.scores(q)
        np.testing.assert_array_equal(got, full.scores(q))  # exact: same statistics, same arithmetic
        known = [t for t in tokenize(q) if t in ref.vocab_dict]
        want = ref.get_scores(known) if known else np.zeros(len(live_texts))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # bm25s precomputes in float32
        assert inc.max_score(q) == pytest.approx(full.max_score(q))
        assert inc.search(q, 10)[1].tolist() == full.search(q, 10)[1].tolist()


def test_ids_out_of_order_and_readding_a_removed_id():
    texts = _corpus(200, seed=1)
    inc = BM25Index()
    inc.add(np.arange(100, 200), texts[100:])
    inc.add(np.arange(0, 100), texts[:100])  # lower ids after higher ones
    inc.remove(np.array([150]))
    inc.add(np.array([150]), ["w1 w1 w2"])  # a removed id indexed again with another text
    full = _full(np.arange(200), texts[:150] + ["w1 w1 w2"] + texts[151:])
    assert np.array_equal(inc.ids, np.arange(200))
    for q in QUERIES:
        np.testing.assert_allclose(inc.scores(q), full.scores(q), rtol=1e-6)
    with pytest.raises(ValueError, match="indexed already"):
        inc.add(np.array([3]), ["again"])


def test_save_writes_only_what_changed_and_loads_back(tmp_path, monkeypatch):
    monkeypatch.setattr(lexmod, "MAX_DELTAS", 100)
    texts = _corpus(1200, seed=2)
    ids = np.arange(1200)
    idx = BM25Index()
    idx.add(ids[:1000], texts[:1000])
    idx.save(tmp_path, {"corpus_version": 1})
    base_dir = next(tmp_path.glob("seg-*"))
    base_files = {p.name: p.stat().st_mtime_ns for p in base_dir.iterdir()}
    idx.add(ids[1000:1100], texts[1000:1100])
    idx.remove(ids[:3])
    idx.save(tmp_path, {"corpus_version": 2})
    assert {p.name: p.stat().st_mtime_ns for p in base_dir.iterdir()} == base_files  # base not rewritten
    assert len(list(tmp_path.glob("seg-*"))) == 2
    loaded, meta = BM25Index.load(tmp_path)
    assert meta["corpus_version"] == 2
    full = _full(ids[3:1100], texts[3:1100])
    for q in QUERIES:
        np.testing.assert_array_equal(loaded.scores(q), full.scores(q))
    loaded.add(ids[1100:], texts[1100:])  # a loaded (memory-mapped) index keeps changing
    loaded.remove(ids[3:5])
    loaded.save(tmp_path, {"corpus_version": 3})
    again, _ = BM25Index.load(tmp_path)
    full = _full(ids[5:], texts[5:])
    for q in QUERIES:
        np.testing.assert_array_equal(again.scores(q), full.scores(q))


def test_older_format_is_refused_so_the_caller_rebuilds(tmp_path):
    (tmp_path / "current.json").write_text('{"backend": "bm25s", "folder": "v1-1", "corpus_version": 1}')
    with pytest.raises(ValueError, match="format"):
        BM25Index.load(tmp_path)


def test_ingest_updates_bm25_without_a_rebuild(rag_factory, tmp_path, monkeypatch):
    """Through Rag: a second file is added as a new segment (the first file's segment stays), and removing it
    leaves BM25 equal to a fresh build from the store."""
    monkeypatch.setattr(lexmod, "DELTA_MERGE_RATIO", 10.0)  # tiny files: keep the second one a delta segment
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("The lighthouse keeper trimmed the wick at dusk. " * 20)
    rag = rag_factory()
    rag.ingest([docs])
    (docs / "b.txt").write_text("Kelp canopy surveys at Skerry Point, counted by divers. " * 20)
    rag.ingest([docs])
    coll = rag.store.collection("default")
    idx = rag._open_indexes(coll)
    assert len(idx.lexical.segments) == 2
    rag.remove([str(docs / "b.txt")])
    idx = rag._open_indexes(rag.store.collection("default"))
    ids, texts = rag.store.chunk_texts(coll.id)
    full = _full(ids, texts)
    assert np.array_equal(idx.lexical.ids, ids)
    for q in ("lighthouse wick", "kelp divers"):
        np.testing.assert_array_equal(idx.lexical.scores(q), full.scores(q))
    assert rag.status()["collections"][0]["index"]["in_step"]
