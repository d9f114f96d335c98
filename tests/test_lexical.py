"""BM25: bm25s against the reference rank-bm25 on the same tokens, and persistence."""

from __future__ import annotations

import numpy as np
from rank_bm25 import BM25Okapi

from localrag.index.lexical import LexicalIndex, tokenize

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


def test_bm25s_matches_rank_bm25_scores():
    """With the Robertson variant, bm25s and rank-bm25 compute the same BM25 (for terms with positive idf), up to
    the constant factor (k1 + 1) that bm25s leaves out of the term-frequency part (it cannot change a ranking)."""
    ids = np.arange(100, 100 + len(CORPUS))
    ours = LexicalIndex("bm25s", method="robertson")
    ours.build(ids, CORPUS)
    ref = BM25Okapi([tokenize(t) for t in CORPUS], k1=1.5, b=0.75)
    for q in QUERIES:
        np.testing.assert_allclose(ours.scores(q) * (1.5 + 1), ref.get_scores(tokenize(q)), rtol=1e-4, atol=1e-5)


def test_backends_rank_alike_and_survive_save_load(tmp_path):
    ids = np.arange(len(CORPUS)) * 3 + 7
    results = {}
    for backend in ("bm25s", "rank-bm25"):
        idx = LexicalIndex(backend)
        idx.build(ids, CORPUS)
        idx.save(tmp_path / backend, {"corpus_version": 4})
        loaded, meta = LexicalIndex.load(tmp_path / backend, backend)
        assert meta["corpus_version"] == 4
        results[backend] = [loaded.search(q, 1)[1].tolist() for q in QUERIES]
        assert results[backend] == [idx.search(q, 1)[1].tolist() for q in QUERIES]
    assert results["bm25s"] == results["rank-bm25"]
    assert results["bm25s"][0] == [7]


def test_prefilter_mask_and_empty_cases():
    idx = LexicalIndex("bm25s")
    idx.build(np.arange(len(CORPUS)), CORPUS)
    mask = np.zeros(len(CORPUS), bool)
    mask[7] = True
    _, got = idx.search("microgrid", 5, allowed=mask)
    assert got.tolist() == [7]
    assert len(idx.search("the and of", 5)[1]) == 0  # only stopwords
    assert len(idx.search("zzzunknown", 5)[1]) == 0
    empty = LexicalIndex("bm25s")
    empty.build(np.zeros(0, np.int64), [])
    assert len(empty.search("anything", 3)[1]) == 0
