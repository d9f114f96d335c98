"""The retrieval benchmark (localrag.app.bench.retrieval) runs end to end on a small synthetic collection without
the LangChain peer and reports sane numbers; the peer section's goals and report are checked on hand-made numbers.
The peer comparison itself (LangChain installed) runs in `make bench`, not here."""

from __future__ import annotations

import json
import math

import pytest

from localrag.app.bench import retrieval as bench


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


def _latency(ours_p50: float, theirs_p50: float, chunks: int) -> dict:
    ours = {"p50": ours_p50, "p95": 2 * ours_p50, "mean": ours_p50}
    theirs = {"p50": theirs_p50, "p95": 2 * theirs_p50, "mean": theirs_p50}
    return {"chunks": chunks, "queries": 5, "langchain_build_s": 0.5, "ours": ours, "langchain": theirs,
            "ratio_p50": ours_p50 / theirs_p50, "ratio_p95": ours_p50 / theirs_p50, "ours_without_embed": ours,
            "langchain_without_embed": theirs, "ratio_p50_without_embed": ours_p50 / theirs_p50}


def test_peer_goals_and_report_on_hand_made_numbers(small):
    """What `make bench` reports about LangChain, from given numbers: the goals are met or missed as the numbers say."""
    r5 = {"ours hybrid-rrf": 0.8, "ours hybrid-convex": 0.9, "langchain ensemble": 0.85}
    res = {**small, "peers": {
        "chunks": 120, "ingest_s": 1.0, "ingest_failed": 0,
        "quality": {"queries": 3, "answerable": 2, "metrics": ["R@5"],
                    "systems": {name: {"R@5": v} for name, v in r5.items()}},
        "latency": _latency(2.0, 10.0, 120), "synthetic_latency": _latency(3.0, 4.0, 2000),
    }}
    g = bench.goals(res)
    assert set(g) == {"bm25s_vs_rank_bm25", "latency_vs_langchain", "recall_vs_langchain"}
    assert g["latency_vs_langchain"]["ratio_p50"] == {"sample": 0.2, "synthetic": 0.75}
    assert g["latency_vs_langchain"]["met"] is False  # 0.75 > 0.5 on the synthetic collection
    assert g["recall_vs_langchain"]["met"] is False  # hybrid-rrf 0.80 < LangChain 0.85
    res["peers"]["quality"]["systems"]["ours hybrid-rrf"]["R@5"] = 0.85
    res["peers"]["synthetic_latency"] = _latency(1.0, 4.0, 2000)
    g = bench.goals(res)
    assert g["recall_vs_langchain"]["met"] is True and g["latency_vs_langchain"]["met"] is True
    res["goals"] = g
    text = bench.format_report(res)
    assert "LangChain EnsembleRetriever" in text and "peers not requested" not in text
    assert "latency_vs_langchain" in text and "recall_vs_langchain" in text
    assert "ours/theirs p50 0.200" in text and "ours/theirs p50 0.250" in text


def test_peers_requested_without_langchain_are_reported_as_skipped(monkeypatch, embedder):
    monkeypatch.setattr(bench, "langchain_available", lambda: "langchain peer skipped: not installed")
    res = bench.run(sizes=(200,), n_queries=2, peers=True, embedder=embedder)
    assert res["peers"] == {"skipped": "langchain peer skipped: not installed"}
    assert set(res["goals"]) == {"bm25s_vs_rank_bm25"}
    assert "peers: langchain peer skipped: not installed" in bench.format_report(res)
