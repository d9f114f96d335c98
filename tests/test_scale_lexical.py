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


# --- posting lists: `top` and `scores_of` read only the query terms' postings, with the scores `scores` gives ---
def _dense_reference(idx: BM25Index, query: str) -> tuple[np.ndarray, np.ndarray]:
    """(live chunk ids ascending, their BM25) as BM25Index.scores computed them before posting-list search: a
    float32 array per segment, every query term's postings added in query order. Written out plainly."""
    q = tokenize(query)
    n = len(idx.ids)
    tids = [idx.vocab[t] for t in q if t in idx.vocab and idx.df[idx.vocab[t]] > 0]
    parts = []
    for seg in idx.segments:
        s = np.zeros(len(seg.ids), np.float32)
        for tid in tids:
            rows, tf = seg.postings(tid)
            if len(rows):
                df = float(idx.df[tid])
                ratio = (n - df + 0.5) / (df + 0.5)
                idf = np.float32(np.log(1.0 + ratio) if idx.method == "lucene" else np.log(ratio))
                norm = idx.k1 * ((1.0 - idx.b) + idx.b * seg.dl[rows] / np.float32(idx.total_len / n))
                s[rows] += idf * (tf / (norm + tf))
        parts.append(s)
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids = np.concatenate([seg.ids for seg in idx.segments])
    alive = np.concatenate([seg.alive for seg in idx.segments])
    every = np.concatenate(parts)[alive]
    order = np.argsort(ids[alive], kind="stable")
    return ids[alive][order], every[order]


def _reference_top(ids: np.ndarray, s: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    keep = s > 0
    order = np.lexsort((ids[keep], -s[keep]))[:k]
    return ids[keep][order].tolist(), s[keep][order].tolist()


def _check_postings_path(idx: BM25Index, queries: list[str], rng: np.random.Generator) -> None:
    for q in queries:
        ids, want = _dense_reference(idx, q)
        assert np.array_equal(idx.ids, ids)
        np.testing.assert_array_equal(idx.scores(q), want)  # the full-array API: the same bits
        np.testing.assert_array_equal(idx.scores_of(q, ids), want)
        np.testing.assert_array_equal(idx.query_scores(q).of(ids[::-1]), want[::-1])
        assert idx.scores_of(q, np.array([-5, 10**9])).tolist() == [0.0, 0.0]  # not indexed
        for k in (1, 10, 50):
            got_s, got_i = idx.top(q, k)
            assert (got_i.tolist(), got_s.tolist()) == _reference_top(ids, want, k), (q, k)
            assert idx.search(q, k)[1].tolist() == got_i.tolist()
        for share in (0.02, 0.5):  # a small scope (scored directly) and a large one (threshold algorithm)
            allowed = np.sort(rng.choice(ids, max(1, int(share * len(ids))), replace=False)) if len(ids) else ids
            inside = np.isin(ids, allowed)
            got_s, got_i = idx.top(q, 20, allowed)
            assert (got_i.tolist(), got_s.tolist()) == _reference_top(ids[inside], want[inside], 20), (q, share)


def _paragraphs(folder) -> list[str]:
    from pathlib import Path

    out = []
    for f in sorted(Path(folder).iterdir()):
        if f.suffix in (".txt", ".md"):
            out += [p.strip() for p in f.read_text(encoding="utf-8").split("\n") if p.strip()]
    return out


def _word_queries(texts: list[str], rng: np.random.Generator, n: int) -> list[str]:
    """Queries of 1 to 4 words drawn from the texts (common words often), plus repeats and unknown words."""
    words = [w for t in texts for w in t.split()]
    qs = [" ".join(rng.choice(words, int(rng.integers(1, 5)))) for _ in range(n)]
    return qs + [f"{words[3]} {words[3]} {words[9]}", "zzzunknown", "the of and", ""]


@pytest.fixture(params=["default", "tiny-blocks"])
def postings_consts(request, monkeypatch):
    """Default thresholds, and tiny ones so that small corpora take the best-first path with many rounds."""
    if request.param == "tiny-blocks":
        monkeypatch.setattr(lexmod, "LONG_POSTINGS", 3)
        monkeypatch.setattr(lexmod, "IMPACT_BLOCK", 2)
        monkeypatch.setattr(lexmod, "FIRST_DEPTH", 2)
        monkeypatch.setattr(lexmod, "SMALL_SEGMENT", 4)
    return request.param


@pytest.mark.parametrize("method", ["lucene", "robertson"])
def test_posting_search_equals_dense_scores_on_the_labelled_corpora(postings_consts, method):
    from pathlib import Path

    rng = np.random.default_rng(5)
    root = Path(__file__).resolve().parents[1]
    for folder in (root / "data" / "sample", root.parent / "shared" / "corpora" / "articles"):
        texts = _paragraphs(folder)
        assert len(texts) > 20, folder
        idx = BM25Index(method=method)
        ids = rng.permutation(len(texts)).astype(np.int64) * 3 + 7
        for part in np.array_split(np.arange(len(texts)), 5):  # five ingests, ids out of order: five segments
            idx.add(ids[part], [texts[i] for i in part])
        idx.remove(ids[::11])
        _check_postings_path(idx, _word_queries(texts, rng, 40), rng)


def test_posting_search_equals_dense_scores_on_random_segmented_indexes(postings_consts):
    rng = np.random.default_rng(11)
    for trial in range(3):
        n = 12000 if postings_consts == "default" else 800  # default: segments past SMALL_SEGMENT, long lists
        texts = _corpus(n, seed=trial)
        ids = rng.permutation(n).astype(np.int64) + 1
        idx = BM25Index(method="lucene" if trial != 1 else "robertson")
        start = 0
        while start < n:  # ingests of random sizes, with removes (and re-adds) between them
            size = int(rng.integers(1, n // 4))
            idx.add(ids[start : start + size], texts[start : start + size])
            start += size
            live = idx.ids
            gone = rng.choice(live, int(rng.integers(0, max(1, len(live) // 10))), replace=False)
            idx.remove(gone)
            if len(gone) and rng.random() < 0.5:
                idx.add(gone[:3], ["w1 w2 w2 w3"] * len(gone[:3]))
        assert len(idx.segments) >= 1
        queries = [" ".join(f"w{int(w)}" for w in rng.zipf(1.3, int(rng.integers(1, 5))) if w < 3000)
                   for _ in range(25)]
        _check_postings_path(idx, queries + QUERIES, rng)


def test_long_lists_are_saved_best_first_with_their_segment(postings_consts, tmp_path):
    """A saved segment carries its long lists best-first (impact_*.npy): a loaded index never orders one on first
    use, and its top-k stays the dense path's, bit for bit, before and after a reload, with removes."""
    rng = np.random.default_rng(5)
    n = 9000 if postings_consts == "default" else 600
    idx = BM25Index()
    idx.add(np.arange(1, n + 1, dtype=np.int64), _corpus(n, seed=7))
    idx.remove(rng.choice(idx.ids, n // 20, replace=False))
    idx.save(tmp_path / "bm25", {"corpus_version": 1})
    seg_dirs = [p for p in (tmp_path / "bm25").iterdir() if p.name.startswith("seg-")]
    assert seg_dirs and all((d / "impact_tids.npy").exists() for d in seg_dirs)
    loaded, _ = BM25Index.load(tmp_path / "bm25")
    seg = max(loaded.segments, key=lambda s: len(s.ids))
    assert seg.saved_impacts is not None and len(seg.saved_impacts.tids) > 0
    tid = int(seg.saved_impacts.tids[0])
    made = lexmod._Segment(name="x", ids=seg.ids, dl=seg.dl, indptr=seg.indptr, indices=seg.indices,
                           data=seg.data, alive=seg.alive).impact(tid, loaded.k1, loaded.b, np.float32(5.0))
    saved = seg.impact(tid, loaded.k1, loaded.b, np.float32(5.0))
    assert sorted(saved.rows.tolist()) == sorted(made.rows.tolist())  # the same postings, in another order
    assert len(saved.tf_max) == len(made.tf_max)
    queries = [" ".join(f"w{int(w)}" for w in rng.zipf(1.3, int(rng.integers(1, 5))) if w < 3000) for _ in range(20)]
    _check_postings_path(loaded, queries + QUERIES, rng)
