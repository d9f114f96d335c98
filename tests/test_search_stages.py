"""Each stage of the search pipeline alone, on small hand-made inputs (real FAISS and BM25 indexes over a few
hand-written vectors and texts), then the stages composed by hand over the sample corpus, checked against
`Rag.search`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from localrag.index.lexical import BM25Index, LexicalIndex
from localrag.index.vectors import FaissVectorIndex
from localrag.retrieval import fusion
from localrag.retrieval.kg import Links, attach_neighbours, load_links
from localrag.retrieval.rerank import rerank_head
from localrag.retrieval.search import (
    Candidates,
    SearchParams,
    StageScores,
    StaleIndex,
    allowed_chunk_ids,
    apply_floor,
    candidates,
    dense_leg,
    embed_query,
    fuse_scores,
    lexical_leg,
    normalize_dense,
    record_scores,
    scope_ids,
    score_candidates,
    source_matches,
)
from localrag.retrieval.types import Filters, Hit

PW = "https://example.org/portwren/"


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float32)
    return a / np.linalg.norm(a)


@pytest.fixture()
def vectors() -> FaissVectorIndex:
    """Four chunks in 3-d: 10 along x, 11 along y, 12 between x and y, 13 pointing away from x."""
    vi = FaissVectorIndex(3, use_gpu=False)
    vi.add(np.array([10, 11, 12, 13]), np.stack([unit([1, 0, 0]), unit([0, 1, 0]), unit([1, 1, 0]),
                                                  unit([-1, 0, 0.2])]))
    return vi


TEXTS = {
    10: "The Fresnel lens floats in a mercury bath.",
    11: "Mercury was drained from the bath in 1998; the lens now turns on rollers.",
    12: "The bakery opens at seven and sells saffron buns.",
    13: "Kelp canopy surveys run every summer.",
}


@pytest.fixture()
def lexical() -> LexicalIndex:
    li = BM25Index()
    li.build(np.array(sorted(TEXTS)), [TEXTS[i] for i in sorted(TEXTS)])
    return li


# --- scope ---------------------------------------------------------------------------------------------------
def test_source_matches_path_name_and_tail():
    assert source_matches("/data/notes/a.md", ["*.md"])
    assert source_matches("/data/notes/a.md", ["a.md"])  # the file name
    assert source_matches("/data/notes/a.md", ["notes/*.md"])  # the tail
    assert not source_matches("/data/notes/a.md", ["*.txt", "b.md", "other/*.md"])


def test_scope_resolves_kind_and_source_filters_to_chunk_ids(sample_rag):
    store = sample_rag.store
    coll = store.collection("default")
    everything = allowed_chunk_ids(store, coll.id, Filters(sources=["*"]))
    rdf = allowed_chunk_ids(store, coll.id, Filters(kinds=["rdf"]))
    ttl = allowed_chunk_ids(store, coll.id, Filters(sources=["port-wren.ttl"]))
    assert list(rdf) == sorted(rdf) and len(rdf) > 0
    assert np.array_equal(rdf, ttl)  # the only RDF file
    assert set(rdf) < set(everything)
    assert len(allowed_chunk_ids(store, coll.id, Filters(kinds=["rdf"], sources=["*.md"]))) == 0


def test_scope_is_remembered_per_corpus_version(sample_rag):
    store = sample_rag.store
    coll = store.collection("default")
    rdf = scope_ids(store, coll.id, 7, Filters(kinds=["rdf"]))
    assert np.array_equal(rdf, allowed_chunk_ids(store, coll.id, Filters(kinds=["rdf"])))
    assert scope_ids(store, coll.id, 7, Filters(kinds=["rdf"])) is rdf  # the same filters, the same version
    assert scope_ids(store, coll.id, 8, Filters(kinds=["rdf"])) is not rdf  # a new version resolves again
    assert not np.array_equal(scope_ids(store, coll.id, 7, Filters(kinds=["markdown"])), rdf)
    with pytest.raises(ValueError):
        rdf[0] = -1  # shared between searches: read-only


# --- candidates ------------------------------------------------------------------------------------------------
def test_dense_leg_ranks_by_cosine_within_the_allowed_ids(vectors):
    q = unit([1, 0.1, 0])
    ranked, scores = dense_leg(vectors, q, n=3)
    assert ranked == [10, 12, 11]
    assert scores[10] == pytest.approx(float(q @ unit([1, 0, 0])), abs=1e-6)
    assert scores[12] == pytest.approx(float(q @ unit([1, 1, 0])), abs=1e-6)
    ranked, _ = dense_leg(vectors, q, n=10, allowed=np.array([11, 13]))
    assert ranked == [11, 13]  # only allowed ids, all of them although they are the worst
    assert dense_leg(vectors, q, n=99)[0] == [10, 12, 11, 13]


def test_lexical_leg_keeps_chunks_with_a_query_word_within_the_allowed_ids(lexical):
    ranked, every = lexical_leg(lexical, "mercury bath rollers", n=10)
    assert ranked == [11, 10]  # 11 also has "rollers"; 12 and 13 have no query word
    every = every.of(np.array([10, 11, 12, 13]))  # scores on demand
    assert every.shape == (4,) and every[2] == 0 and every[3] == 0 and every[1] > every[0] > 0
    assert lexical_leg(lexical, "mercury bath rollers", n=1)[0] == [11]
    assert lexical_leg(lexical, "mercury bath rollers", n=10, allowed=np.array([10, 12]))[0] == [10]
    ranked, every = lexical_leg(lexical, "what is the", n=10)  # stopwords only
    assert ranked == [] and not every.of(np.array([10, 11, 12, 13])).any()


def test_embed_query_notes_a_query_longer_than_the_model_reads(embedder):
    v, note = embed_query(embedder, "mercury bath")
    assert v.shape == (embedder.dim,) and note is None
    assert float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-4)
    _, note = embed_query(embedder, "lighthouse lens mercury " * 300)
    assert note is not None and "truncated" in note


def test_candidates_runs_the_legs_the_mode_names(embedder, lexical):
    vi = FaissVectorIndex(embedder.dim, use_gpu=False)
    ids = sorted(TEXTS)
    vi.add(np.array(ids), embedder.encode([TEXTS[i] for i in ids]))
    timings: dict[str, float] = {}
    both = candidates("When was the mercury drained?", ("dense", "lexical"), 2, embedder=embedder, vectors=vi,
                      lexical=lexical, timings=timings)
    assert {"embed", "dense", "lexical"} <= set(timings)
    assert len(both.dense) == 2 and both.dense[0] == 11  # "drained" is in 11 only
    assert both.lexical == [11, 10] and both.query_vector is not None and both.lexical_all is not None
    assert both.ids == list(dict.fromkeys(both.dense + both.lexical))
    lex = candidates("saffron", ("lexical",), 5, embedder=None, vectors=vi, lexical=lexical)
    assert lex.lexical == [12] and lex.dense == [] and lex.query_vector is None and lex.notes == []
    none = candidates("zebra", ("lexical",), 5, embedder=None, vectors=vi, lexical=lexical)
    assert none.ids == [] and none.notes and "lexical search found nothing" in none.notes[0]
    dense = candidates("zebra", ("dense",), 5, embedder=embedder, vectors=vi, lexical=lexical,
                       allowed=np.array([12, 13]))
    assert sorted(dense.dense) == [12, 13] and dense.lexical_all is None and dense.notes == []


# --- scores ----------------------------------------------------------------------------------------------------
def test_normalize_dense_clips_cosine_to_the_unit_interval():
    assert normalize_dense({1: -0.3, 2: 0.4, 3: 1.0000001}) == {1: 0.0, 2: 0.4, 3: 1.0}


def test_scores_fill_in_the_other_legs_score_for_every_candidate(vectors, lexical):
    q = unit([0, 1, 0])
    query = "mercury rollers"
    every = lexical.scores(query)
    cands = Candidates(dense=[11], lexical=[11, 10], dense_scores={11: 1.0}, query_vector=q,
                       lexical_all=lexical.query_scores(query))
    cands.dense.append(13)  # a dense candidate without any query word
    cands.dense_scores[13] = float(q @ unit([-1, 0, 0.2]))
    s = score_candidates(cands, query, vectors, lexical)
    assert s.ids == [11, 13, 10]
    # 10 came from BM25 only: its cosine is computed from its stored vector (orthogonal to q)
    assert s.dense[10] == pytest.approx(0.0, abs=1e-6) and s.dense[11] == pytest.approx(1.0)
    # 13 came from FAISS only: no query word, BM25 0
    assert s.lexical[13] == 0.0 and s.lexical[11] == pytest.approx(float(every[1]))
    top = lexical.max_score(query)
    assert s.lexical_norm[11] == pytest.approx(float(every[1]) / top, rel=1e-5) and 0 < s.lexical_norm[11] < 1
    assert s.normalized() == {"dense": s.dense_norm, "lexical": s.lexical_norm}
    only_lex = score_candidates(Candidates(lexical=[11, 10], lexical_all=lexical.query_scores(query)), query,
                                vectors, lexical)
    assert only_lex.dense is None and only_lex.normalized().keys() == {"lexical"}


def test_scores_of_a_chunk_faiss_lacks_is_a_stale_index(vectors, lexical):
    cands = Candidates(dense=[10], dense_scores={10: 1.0}, lexical=[99], query_vector=unit([1, 0, 0]))
    with pytest.raises(StaleIndex) as err:
        score_candidates(cands, "x", vectors, lexical)
    assert err.value.missing == [99]


# --- fusion ----------------------------------------------------------------------------------------------------
def test_fuse_convex_orders_by_relevance_and_rrf_by_ranks():
    normalized = {"dense": {1: 0.9, 2: 0.2, 3: 0.5}, "lexical": {1: 0.0, 2: 1.0, 3: 0.5}}
    ranked = {"dense": [1, 3, 2], "lexical": [2, 3]}
    convex = fusion.fuse(normalized, ranked, "convex", alpha=0.5)
    assert convex.relevance == pytest.approx({1: 0.45, 2: 0.6, 3: 0.5})
    assert convex.scores == convex.relevance and convex.order == [2, 3, 1]
    dense_heavy = fusion.fuse(normalized, ranked, "convex", alpha=0.9)
    assert dense_heavy.order == [1, 3, 2]
    rrf = fusion.fuse(normalized, ranked, "rrf", alpha=0.5, rrf_k=1.0)
    assert rrf.scores[3] == pytest.approx(1 / 3 + 1 / 3) and rrf.scores[1] == pytest.approx(1 / 2)
    assert rrf.order == [2, 3, 1]  # 2: 1/4 + 1/2 = 0.75
    assert rrf.relevance == convex.relevance  # relevance stays the convex mix, whatever orders the hits
    single = fusion.fuse({"lexical": {1: 0.3, 2: 0.3, 3: 0.7}}, {"lexical": [3, 1, 2]}, None)
    assert single.order == [3, 1, 2] and single.scores == {1: 0.3, 2: 0.3, 3: 0.7}  # ties by id
    with pytest.raises(ValueError, match="unknown fusion"):
        fusion.fuse(normalized, ranked, "max")


def test_normalisations_of_one_leg():
    raw = {1: 10.0, 2: 5.0, 3: 0.0}
    assert fusion.normalize(raw, "minmax") == {1: 1.0, 2: 0.5, 3: 0.0}
    z = fusion.normalize(raw, "zscore")
    assert z[2] == pytest.approx(0.0) and z[1] == pytest.approx(-z[3]) and z[1] > 1.0
    assert fusion.normalize(raw, "rank", ranked=[2, 1]) == {1: 0.5, 2: 1.0, 3: 0.0}
    # txtai: BM25 / min(top + mean of the positive scores, 6 x that mean); dense stays raw cosine
    assert fusion.normalize(raw, "txtai", leg="lexical") == pytest.approx({1: 10 / 17.5, 2: 5 / 17.5, 3: 0.0})
    assert fusion.normalize({1: 0.3}, "txtai", leg="dense") == {1: 0.3}
    assert fusion.normalize(raw, "fixed", fixed={1: 0.2}) == {1: 0.2}
    assert fusion.normalize({1: 2.0, 2: 2.0}, "minmax") == {1: 1.0, 2: 1.0}
    with pytest.raises(ValueError, match="unknown normalisation"):
        fusion.normalize(raw, "softmax")


def test_leg_confidence_and_adaptive_weights():
    peaked, flat = [9.0, 1.0, 1.0, 1.0, 1.0], [5.0, 4.9, 4.9, 4.8, 4.8]
    for method in ("gap", "zgap", "entropy"):
        assert 0.0 <= fusion.confidence(flat, method) < fusion.confidence(peaked, method) <= 1.0, method
    assert fusion.confidence([], "entropy") == 0.0 and fusion.confidence(peaked, "none") == 1.0
    assert fusion.leg_weights(0.3, {"dense": flat, "lexical": peaked}, "none") == pytest.approx(
        {"dense": 0.3, "lexical": 0.7})
    w = fusion.leg_weights(0.5, {"dense": flat, "lexical": peaked}, "entropy")
    assert w["lexical"] > 0.5 > w["dense"] and sum(w.values()) == pytest.approx(1.0)
    w = fusion.leg_weights(0.5, {"dense": peaked, "lexical": flat}, "entropy")
    assert w["dense"] > 0.5 and sum(w.values()) == pytest.approx(1.0)
    # both legs without a signal: the prior stays
    assert fusion.leg_weights(0.3, {"dense": [], "lexical": []}, "gap") == pytest.approx({"dense": 0.3, "lexical": 0.7})


def test_adaptive_convex_follows_the_confident_leg():
    """Dense hardly tells chunk 1 from 2; BM25 clearly prefers 2: the adaptive mix follows BM25, the
    fixed mix at the same prior follows the slightly higher cosine. The relevance is the fixed mix either way."""
    normalized = {"dense": {1: 0.53, 2: 0.51, 3: 0.30}, "lexical": {1: 0.0225, 2: 0.06, 3: 0.0}}
    raw = {"dense": normalized["dense"], "lexical": {1: 3.0, 2: 8.0, 3: 0.0}}
    ranked = {"dense": [1, 2, 3], "lexical": [2, 1]}
    plain = fusion.fuse(normalized, ranked, "convex", alpha=0.7, raw=raw)
    assert plain.order[0] == 1 and plain.weights == {"dense": 0.7, "lexical": pytest.approx(0.3)}
    adaptive = fusion.fuse(normalized, ranked, "convex", alpha=0.7, raw=raw, adaptive="entropy", conf_top=3)
    assert adaptive.order[0] == 2 and adaptive.weights["lexical"] > 0.3
    assert adaptive.relevance == plain.relevance
    minmax = fusion.fuse(normalized, ranked, "convex", alpha=0.5, raw=raw, norm="minmax")
    assert minmax.order == [2, 1, 3]  # min-max: lexical 2 -> 1, 1 -> 0.375; dense 1 -> 1, 2 -> 0.91
    with pytest.raises(ValueError, match="raw scores"):
        fusion.fuse(normalized, ranked, "convex", norm="zscore")


def test_level_weightings_read_the_fixed_scores_not_the_raw_ones():
    """level / lgap judge a leg by how well its best chunk matches at all (fixed [0, 1] scores): a BM25 list whose
    best chunk stands far above the rest in raw score but matches a small share of the query counts little."""
    assert fusion.confidence([0.8, 0.5, 0.1], "level") == pytest.approx(0.8)
    assert fusion.confidence([0.8, 0.5, 0.1], "lgap", top=2) == pytest.approx(0.3)
    assert fusion.confidence([], "level") == 0.0 and fusion.confidence([0.4], "lgap") == 0.0
    assert fusion.confidence([1.7, 0.2], "level") == 1.0  # clipped to [0, 1]
    normalized = {"dense": {1: 0.62, 2: 0.45, 3: 0.20}, "lexical": {1: 0.0, 2: 0.15, 3: 0.01}}
    raw = {"dense": normalized["dense"], "lexical": {1: 0.0, 2: 6.0, 3: 0.4}}
    ranked = {"dense": [1, 2, 3], "lexical": [2, 3]}
    gap = fusion.fuse(normalized, ranked, "convex", alpha=0.5, raw=raw, norm="minmax", adaptive="gap", conf_top=3)
    level = fusion.fuse(normalized, ranked, "convex", alpha=0.5, raw=raw, norm="minmax", adaptive="level")
    # raw gap: BM25 (6.0 -> 0.4) looks surer than dense (0.62 -> 0.20) and its chunk 2 wins; by level dense
    # (0.62) outweighs BM25 (0.15) and chunk 1 stays first
    assert gap.order[0] == 2 and gap.weights["lexical"] > gap.weights["dense"]
    assert level.order[0] == 1 and level.weights["dense"] == pytest.approx(0.62 / 0.77)


# --- rerank ----------------------------------------------------------------------------------------------------
class FakeTableReranker:
    """Fake (control flow only): scores each text by a table, so the expected order is known."""

    model_id = "fake-table"

    def __init__(self, table: dict[str, float]) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    def score(self, query, texts):
        self.calls.append(list(texts))
        return np.array([self.table[t] for t in texts], dtype=np.float32)


def test_rerank_head_reorders_by_the_reranker_and_ties_keep_the_fused_order():
    rr = FakeTableReranker({"a": 0.2, "b": 0.9, "c": 0.2, "d": 0.5})
    order, scores = rerank_head(rr, "q", [4, 1, 3, 2], {1: "a", 2: "b", 3: "c", 4: "d"})
    assert order == [2, 4, 1, 3]  # 1 and 3 tie at 0.2: fused order (1 before 3)
    assert scores == pytest.approx({1: 0.2, 2: 0.9, 3: 0.2, 4: 0.5})
    order, scores = rerank_head(rr, "q", [4, 1, 3], {1: "a", 3: "c"})  # 4 vanished from the store
    assert order == [1, 3] and set(scores) == {1, 3} and rr.calls[-1] == ["a", "c"]


# --- filters after ranking -------------------------------------------------------------------------------------
def test_apply_floor_keeps_the_order_drops_weak_hits_and_cuts_to_k():
    rel = {1: 0.9, 2: 0.1, 3: 0.5, 4: 0.3}
    assert apply_floor([1, 2, 3, 4], rel, 0.0, 3) == ([1, 2, 3], [])
    top, notes = apply_floor([1, 2, 3, 4], rel, 0.4, 3)
    assert top == [1, 3] and notes and "2 candidates fell below the relevance floor 0.4" in notes[0]
    assert apply_floor([1, 2, 3, 4], rel, 0.2, 2) == ([1, 3], [])  # k still reached: no note
    assert apply_floor([1, 2, 3, 4], rel, 0.5, 2)[0] == [1, 3]  # the floor itself passes
    assert apply_floor([4, 3], {}, 0.1, 2) == ([], ["2 candidates fell below the relevance floor 0.1 and were "
                                                    "dropped"])


# --- record ----------------------------------------------------------------------------------------------------
def _hits(*ids: int) -> list[Hit]:
    return [Hit(i, f"text {i}", f"/d/{i}.md", "markdown") for i in ids]


def test_record_scores_writes_each_stage_onto_the_hits():
    cands = Candidates(dense=[1, 2], lexical=[3, 1])
    scores = StageScores(ids=[1, 2, 3], dense={1: 0.8, 2: 0.6, 3: -0.1}, dense_norm={1: 0.8, 2: 0.6, 3: 0.0},
                    lexical={1: 2.0, 2: 0.0, 3: 4.0}, lexical_norm={1: 0.25, 2: 0.0, 3: 0.5})
    fused = fusion.fuse(scores.normalized(), {"dense": cands.dense, "lexical": cands.lexical}, "rrf", rrf_k=1.0)
    hits = _hits(*fused.order)
    record_scores(hits, cands, scores, fused)
    h1, h3 = next(h for h in hits if h.chunk_id == 1), next(h for h in hits if h.chunk_id == 3)
    assert h1.ranks == {"dense": 1, "lexical": 2, "fused": 1}
    assert h1.scores == pytest.approx({"dense": 0.8, "dense_norm": 0.8, "lexical": 2.0, "lexical_norm": 0.25,
                                       "fused": 1 / 2 + 1 / 3})
    assert "dense" not in h3.ranks and h3.ranks["lexical"] == 1 and h3.scores["dense"] == -0.1
    assert h1.score == pytest.approx(fused.scores[1]) and h1.relevance == pytest.approx(0.5 * 0.8 + 0.5 * 0.25)

    hits = _hits(3, 1)
    record_scores(hits, cands, scores, fused, reranked=([3, 1], {3: 0.7, 1: 0.4}))
    assert [h.ranks["rerank"] for h in hits] == [1, 2]
    assert [h.score for h in hits] == pytest.approx([0.7, 0.4]) and hits[0].relevance == pytest.approx(0.7)
    assert hits[0].ranks["fused"] == fused.order.index(3) + 1

    lex_only = StageScores(ids=[3, 1], lexical={1: 2.0, 3: 4.0}, lexical_norm={1: 0.25, 3: 0.5})
    fused = fusion.fuse(lex_only.normalized(), {"lexical": [3, 1]}, None)
    hits = _hits(3, 1)
    record_scores(hits, Candidates(lexical=[3, 1]), lex_only, fused)
    assert set(hits[0].scores) == {"lexical", "lexical_norm", "fused"} and hits[0].score == hits[0].relevance == 0.5


# --- expansion -------------------------------------------------------------------------------------------------
def test_attach_neighbours_follows_edges_both_ways_once_each():
    links = Links(
        edges=[("ex:ship", "ex:builtBy", "ex:yard"), ("ex:skipper", "ex:skipperOf", "ex:ship"),
               ("ex:ship", "ex:operated_by", "ex:yard"), ("ex:ship", "ex:homePort", "ex:port"),
               ("ex:other", "ex:near", "ex:port")],
        first_chunk={"ex:yard": (21, "Yard", "Yard text"), "ex:port": (1, "Port", "Port text"),
                     "ex:ship": (5, "Ship", "ship")},
        labels={"ex:yard": "Yard", "ex:skipper": "Skipper", "ex:port": "Port"},
    )
    ship = Hit(5, "ship", "/d/g.ttl", "rdf", kg_uri="ex:ship")
    port = Hit(1, "port", "/d/g.ttl", "rdf", kg_uri="ex:port")
    plain = Hit(7, "text", "/d/a.md", "markdown")
    attach_neighbours([ship, port, plain], links)
    got = [(n.uri, n.relation, n.direction, n.chunk_id, n.label) for n in ship.neighbours]
    # the yard once (first edge), the skipper (no chunk: label from the node table), not the port (a hit itself)
    assert got == [("ex:yard", "built by", "out", 21, "Yard"), ("ex:skipper", "skipper of", "in", None, "Skipper")]
    assert ship.neighbours[0].text == "Yard text" and ship.neighbours[1].text == "" and ship.neighbours[0].expansion
    assert [n.uri for n in port.neighbours] == ["ex:other"] and plain.neighbours == []  # the ship is a hit too
    capped = Hit(5, "ship", "/d/g.ttl", "rdf", kg_uri="ex:ship")
    attach_neighbours([capped], links, max_neighbours=1)
    assert [n.uri for n in capped.neighbours] == ["ex:yard"]


def test_load_links_reads_uri_edges_without_rdf_type(sample_rag):
    coll = sample_rag.store.collection("default")
    links = load_links(sample_rag.store, coll.id, {PW + "rvKittiwake"})
    assert (PW + "rvKittiwake", PW + "builtBy", PW + "halloranMarine") in links.edges
    assert (PW + "alunRees", PW + "skipperOf", PW + "rvKittiwake") in links.edges
    assert not any(p.endswith("#type") for _, p, _ in links.edges)
    assert links.labels[PW + "halloranMarine"] == "Halloran Marine"
    assert "Halloran Marine" in links.first_chunk[PW + "halloranMarine"][2]
    assert load_links(sample_rag.store, coll.id, set()) == Links()


# --- the stages composed, over the sample corpus ---------------------------------------------------------------
@pytest.mark.parametrize("fusion_name", ["convex", "rrf"])
def test_stages_composed_by_hand_give_what_rag_search_gives(sample_rag, fusion_name):
    rag = sample_rag
    query = "Who built the research vessel RV Kittiwake?"
    st = rag.settings.search
    idx = rag._open_indexes(rag.store.collection("default"))
    params = SearchParams(fusion=fusion_name, rrf_k=st.rrf_k, alpha=st.convex_alpha, candidates=st.candidates,
                          weights={"dense": st.rrf_weight_dense, "lexical": st.rrf_weight_lexical},
                          norm=st.fusion_norm, adaptive=st.fusion_adaptive, conf_top=st.fusion_conf_top)
    cands = candidates(query, params.legs, params.candidates, embedder=rag.embedder, vectors=idx.vectors,
                       lexical=idx.lexical)
    scores = score_candidates(cands, query, idx.vectors, idx.lexical)
    fused = fuse_scores(cands, scores, params)
    top, notes = apply_floor(fused.order, fused.relevance, 0.0, 5)

    res = rag.search(query, k=5, fusion=fusion_name, expand=True)
    assert [h.chunk_id for h in res] == top and notes == []
    assert [h.scores["fused"] for h in res] == pytest.approx([fused.scores[c] for c in top])
    assert [h.relevance for h in res] == pytest.approx([fused.relevance[c] for c in top])
    kittiwake = res[0]
    assert Path(kittiwake.source).name == "port-wren.ttl" and kittiwake.kg_uri == PW + "rvKittiwake"
    assert any(n.uri == PW + "halloranMarine" and n.relation == "built by" for n in kittiwake.neighbours)
    assert {"embed", "dense", "lexical", "fusion", "hydrate", "expand", "total"} <= set(res.timings)
