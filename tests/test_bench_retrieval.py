"""The retrieval benchmark runs end to end on a small synthetic collection and reports sane numbers."""

from __future__ import annotations

import json
import math

import pytest

from localrag.eval import bench_retrieval as bench


def _finite_positive(x: float) -> bool:
    return isinstance(x, float | int) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def small(embedder):
    return bench.run(sizes=(2000,), n_queries=10, peers=False, embedder=embedder)


def test_run_structure_and_numbers(small):
    res = small
    assert set(res["sizes"]) == {"2000"}
    s = res["sizes"]["2000"]
    assert s["corpus"]["chunks"] == 2000 and s["corpus"]["documents"] == 200
    for key in ("open_s", "first_search_s", "reopen_s", "reopen_first_search_s"):
        assert _finite_positive(s["cold"][key]), key
    assert s["cold"]["index"]["in_step"] and s["cold"]["index"]["chunks"] == 2000
    assert set(s["modes"]) == set(bench.MODES)
    expected = {
        "hybrid-rrf": {"embed", "dense", "lexical", "fusion", "hydrate", "total", "call"},
        "hybrid-convex": {"embed", "dense", "lexical", "fusion", "hydrate", "total", "call"},
        "dense": {"embed", "dense", "fusion", "hydrate", "total", "call"},
        "lexical": {"lexical", "fusion", "hydrate", "total", "call"},
    }
    for mode, stages in expected.items():
        r = s["modes"][mode]
        assert r["queries"] == 10
        assert r["mean_hits"] > 0, mode  # queries are drawn from the corpus vocabulary: something must match
        assert stages <= set(r), (mode, set(r))
        for stage in stages:
            assert _finite_positive(r[stage]["p50"]) and r[stage]["p95"] >= r[stage]["p50"], (mode, stage)
        assert r["total"]["p50"] <= r["call"]["p50"]
    b = s["bm25"]
    for backend in ("bm25s", "rank-bm25"):
        assert b[backend]["queries"] == 10
        assert _finite_positive(b[backend]["build_s"]) and _finite_positive(b[backend]["qps"])
    assert _finite_positive(b["qps_ratio"])
    assert 0.0 <= b["top10_overlap"] <= 1.0
    assert res["peers"] == {"skipped": "peers not requested (--no-peers)"}
    assert set(res["goals"]) == {"bm25s_vs_rank_bm25"}
    assert _finite_positive(res["wall_s"]) and _finite_positive(res["peak_rss_mb"])


def test_report_renders_and_json_round_trips(small):
    text = bench.format_report(small)
    assert "2,000 chunks" in text and "hybrid-rrf" in text and "bm25s / rank-bm25" in text
    assert "peers not requested" in text
    assert json.loads(json.dumps(bench._round(small)))["sizes"]["2000"]["corpus"]["chunks"] == 2000


def test_main_parses_arguments_and_prints_json(monkeypatch, capsys, small):
    seen = {}

    def fake_run(**kw):
        seen.update(kw)
        return small

    monkeypatch.setattr(bench, "run", fake_run)
    assert bench.main(["--json", "--sizes", "2000,500", "--queries", "7", "--no-peers"]) == 0
    assert seen["sizes"] == [2000, 500] and seen["n_queries"] == 7 and seen["peers"] is False
    assert json.loads(capsys.readouterr().out)["config"]["queries"] == 10
    with pytest.raises(SystemExit):
        bench.main(["--sizes", "ten"])


def test_synthetic_corpus_is_deterministic():
    import numpy as np

    vocab, p = bench.make_vocabulary(n_rare=500)
    assert len(set(vocab.tolist())) == len(vocab) and abs(p.sum() - 1) < 1e-9 and p[0] > p[-1]
    a = bench.make_texts(np.random.default_rng(3), vocab, p, 5)
    b = bench.make_texts(np.random.default_rng(3), vocab, p, 5)
    assert a == b and all(120 <= len(t.split()) <= 180 for t in a)
    qs = bench.make_queries(np.random.default_rng(3), vocab, p, 20)
    assert all(2 <= len(q.split()) <= 6 for q in qs)


@pytest.mark.slow
def test_peers_tiny_run(embedder):
    """LangChain's EnsembleRetriever against ours: data/sample quality and latency, tiny synthetic latency."""
    if bench.langchain_available() is not None:
        pytest.skip("langchain is not installed (pip install -e '.[bench]')")
    res = bench.run(sizes=(500,), n_queries=5, peers=True, embedder=embedder)
    p = res["peers"]
    assert p["ingest_failed"] == 0 and p["chunks"] > 0
    for lat in (p["latency"], p["synthetic_latency"]):
        assert _finite_positive(lat["ours"]["p50"]) and _finite_positive(lat["langchain"]["p50"])
        assert _finite_positive(lat["ratio_p50"])
    assert p["synthetic_latency"]["chunks"] == 500 and p["synthetic_latency"]["queries"] == 5
    q = p["quality"]
    if "skipped" not in q:  # the labeled set exists
        for name in ("ours hybrid-rrf", "ours hybrid-convex", "langchain ensemble"):
            assert 0.0 < q["systems"][name]["R@5"] <= 1.0, name
        assert set(res["goals"]) == {"bm25s_vs_rank_bm25", "latency_vs_langchain", "recall_vs_langchain"}
    assert "LangChain EnsembleRetriever" in bench.format_report(res)
