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
