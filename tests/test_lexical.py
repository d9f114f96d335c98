"""BM25: ours (BM25Index) against the reference rank-bm25 on the same tokens, persistence, and the factory that
picks the backend from the setting."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from localrag.index.lexical import (
    BM25Index,
    LexicalUnavailable,
    RankBM25Index,
    lexical_class,
    tokenize,
)

CORPUS = [
    "The Gannet Head lighthouse has a second-order Fresnel lens in a mercury bath.",
    "Kelp canopy at Skerry Point fell from 68 percent to 45 percent between 2011 and 2022.",
    "The microgrid battery stores 1.2 MWh of lithium iron phosphate cells.",
    "Old Josiah, the bakery starter, is refreshed at one to five to five.",
    "Purple sandpipers: a record count of 27 birds on 12 December 2019.",
    "Channel 72 is the fishing fleet's inter-ship channel on VHF radio.",
    "The research vessel RV Kittiwake was built by Halloran Marine.",
    "Storm Isolde islanded the microgrid for 31 hours in 2022.",
]
QUERIES = ["fresnel lens", "kelp canopy 2022", "battery MWh", "starter bakery", "VHF channel 72", "Halloran"]


def test_ours_matches_rank_bm25_scores():
    """With the Robertson variant, ours and rank-bm25 compute the same BM25 (for terms with positive idf), up to
    the constant factor (k1 + 1) that ours (like bm25s) leaves out of the term-frequency part (it cannot change a
    ranking)."""
    ids = np.arange(100, 100 + len(CORPUS))
    ours = BM25Index(method="robertson")
    ours.build(ids, CORPUS)
    ref = BM25Okapi([tokenize(t) for t in CORPUS], k1=1.5, b=0.75)
    for q in QUERIES:
        np.testing.assert_allclose(ours.scores(q) * (1.5 + 1), ref.get_scores(tokenize(q)), rtol=1e-4, atol=1e-5)


def test_backends_rank_alike_and_survive_save_load(tmp_path):
    ids = np.arange(len(CORPUS)) * 3 + 7
    results = {}
    for backend in ("bm25", "rank-bm25"):
        kind = lexical_class(backend)
        idx = kind()
        idx.build(ids, CORPUS)
        idx.save(tmp_path / backend, {"corpus_version": 4})
        loaded, meta = kind.load(tmp_path / backend)
        assert meta["corpus_version"] == 4 and type(loaded) is kind
        results[backend] = [loaded.search(q, 1)[1].tolist() for q in QUERIES]
        assert results[backend] == [idx.search(q, 1)[1].tolist() for q in QUERIES]
        for q in QUERIES:
            np.testing.assert_allclose(loaded.normalized(q, loaded.scores(q)), idx.normalized(q, idx.scores(q)))
    assert results["bm25"] == results["rank-bm25"]
    assert results["bm25"][0] == [7]
    with pytest.raises(ValueError, match="uses rank-bm25"):  # another backend's folder: the caller rebuilds
        BM25Index.load(tmp_path / "rank-bm25")


def test_the_factory_picks_the_class_and_takes_the_old_name():
    assert lexical_class("bm25") is BM25Index and lexical_class("bm25s") is BM25Index
    assert lexical_class("rank-bm25") is RankBM25Index
    assert BM25Index.saved_name == "bm25s"  # indexes saved under the old name keep loading
    with pytest.raises(ValueError, match="unknown lexical backend 'bm25x'.*'bm25' or 'rank-bm25'"):
        lexical_class("bm25x")


def test_rank_bm25_without_its_library_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "rank_bm25", None)  # as if it were not installed
    with pytest.raises(LexicalUnavailable, match=r"rank-bm25 package.*localrag\[bench\]"):
        RankBM25Index()
    BM25Index().build(np.arange(2), CORPUS[:2])  # ours needs no BM25 library


def test_prefilter_mask_and_empty_cases():
    idx = BM25Index()
    idx.build(np.arange(len(CORPUS)), CORPUS)
    mask = np.zeros(len(CORPUS), bool)
    mask[7] = True
    _, got = idx.search("microgrid", 5, allowed=mask)
    assert got.tolist() == [7]
    assert len(idx.search("the and of", 5)[1]) == 0  # only stopwords
    assert len(idx.search("zzzunknown", 5)[1]) == 0
    empty = BM25Index()
    empty.build(np.zeros(0, np.int64), [])
    assert len(empty.search("anything", 3)[1]) == 0


def _pruning_corpus(n: int, rng: np.random.Generator, flat: bool) -> list[str]:
    """Zipf word use over 2,000 words (a few words in most texts, most in a few), lengths 0-80, one text in ten a
    copy of another (equal scores: ties) and some with a word repeated many times (the largest term parts).
    `flat`: ten distinct words of the first 60 per text instead, so that every posting of a word scores the same
    (block bounds exact, scores tied by the hundred: the stop and skip tests decide on equal scores)."""
    if flat:
        return [" ".join(f"w{w}" for w in rng.choice(60, 10, replace=False)) for _ in range(n)]
    p = 1.0 / np.arange(1, 2001) ** 1.1
    p /= p.sum()
    texts = [" ".join(f"w{w}" for w in rng.choice(2000, int(rng.integers(0, 81)), p=p)) for _ in range(n)]
    for i in rng.choice(n, n // 10, replace=False):
        texts[i] = texts[int(rng.integers(0, n))]
    for i in rng.choice(n, n // 50, replace=False):
        texts[i] += f" w{int(rng.integers(0, 300))}" * int(rng.integers(2, 9))
    return texts


@pytest.mark.parametrize("corpus", ["zipf", "flat"])
@pytest.mark.parametrize("consts", ["default", "tiny"])
@pytest.mark.parametrize("where", ["memory", "loaded"])
def test_pruned_top_k_equals_the_exhaustive_one(corpus, consts, where, tmp_path, monkeypatch):
    """BM25Index.top stops reading long posting lists early and skips rows that cannot reach the top-k; its top-k
    must be the exhaustive scorer's (every chunk scored by `scores`, then sorted): the same ids, the same float32
    scores, the same order, ties (copied texts) by lower id, with common and rare words, repeated words, removed
    chunks, several segments and filters of any size, before and after a save and load."""
    from localrag.index import lexical as lexmod

    if consts == "tiny":  # small lists, blocks and first reads: many rounds on a small corpus
        for name, value in (("LONG_POSTINGS", 8), ("IMPACT_BLOCK", 4), ("FIRST_DEPTH", 4), ("SMALL_SEGMENT", 16)):
            monkeypatch.setattr(lexmod, name, value)
    calls = {"_new_rows": 0, "_next_depths": 0}
    for name in calls:
        real = getattr(BM25Index, name)

        def spy(*args, _real=real, _name=name):
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(BM25Index, name, staticmethod(spy))
    rng = np.random.default_rng(2026)
    n = 6000 if consts == "default" else 1500  # default: a segment past SMALL_SEGMENT, lists past LONG_POSTINGS
    texts = _pruning_corpus(n, rng, corpus == "flat")
    ids = rng.permutation(n).astype(np.int64) * 2 + 5
    idx = BM25Index(method="lucene" if where == "memory" else "robertson")
    idx.add(ids[: n * 4 // 5], texts[: n * 4 // 5])
    idx.add(ids[n * 4 // 5 :], texts[n * 4 // 5 :])  # a second segment, its ids between the first one's
    idx.remove(rng.choice(ids, n // 15, replace=False))
    if where == "loaded":
        idx.save(tmp_path / "bm25", {"corpus_version": 1})
        idx, _ = BM25Index.load(tmp_path / "bm25")
    rank = [f"w{w}" for w in range(60 if corpus == "flat" else 2000)]
    queries = [" ".join(rng.choice(rank[:8], int(rng.integers(1, 4)))) for _ in range(10)]  # words in most texts
    queries += [
        f"{rng.choice(rank[:30])} {rng.choice(rank[30:300])} {rng.choice(rank[300:] or rank)}" for _ in range(20)
    ]
    queries += [" ".join(rng.choice(rank[: 10 ** int(rng.integers(1, 4))], int(rng.integers(1, 6)))) for _ in range(20)]
    queries += ["w0 w0 w1", "w3 w3 w3 w700", "w1999 zzzunknown", "w5 w250 w250"]
    live = idx.ids
    for q in queries:
        every = idx.scores(q)  # the exhaustive scorer, aligned with idx.ids
        scopes = [None] + [
            np.sort(rng.choice(live, max(1, int(share * len(live))), replace=False)) for share in (0.05, 0.3, 0.8)
        ]
        for allowed in scopes:
            inside = np.ones(len(live), bool) if allowed is None else np.isin(live, allowed)
            keep = inside & (every > 0)
            order = np.lexsort((live[keep], -every[keep]))
            for k in (1, 7, 50):
                got_s, got_i = idx.top(q, k, allowed)
                want = order[:k]
                assert got_i.tolist() == live[keep][want].tolist(), (q, k, allowed is None)
                assert got_s.tobytes() == every[keep][want].tobytes(), (q, k)
    assert calls["_new_rows"] > 20 and calls["_next_depths"] > 20  # the pruned rounds did run
