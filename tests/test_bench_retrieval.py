"""The retrieval benchmark (bench.retrieval) at its smoke size, end to end: ours, txtai's hybrid and
LangChain's EnsembleRetriever side by side over the session's sample corpus (a few questions per split), and the
stage split on a small synthetic collection. Numbers are checked for sanity, never for speed; the goals (issue 14's
acceptance) are checked on hand-made numbers, where the answer is known."""

from __future__ import annotations

import json
import math

import pytest

from bench import retrieval as rb

SIZE = 300


def _finite_positive(x: float) -> bool:
    return isinstance(x, float | int) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def smoke(embedder, sample_rag):
    return rb.run(sizes=(SIZE,), n_queries=4, corpora=["sample"], max_questions=rb.SMOKE["max_questions"],
                     embedder=embedder, rags={"sample": sample_rag})


def test_side_by_side_on_the_sample(smoke):
    c = smoke["corpora"]["sample"]
    assert c["chunks"] > 100 and c["questions"] == {"dev": 6, "test": 6}
    available = [p for p, why in rb.peers_available().items() if why is None]
    systems = [*rb.OURS, *available]
    assert list(c["latency"]) == systems and set(c["quality"]) == set(systems)
    assert set(c["skipped"]) == {p for p, why in rb.peers_available().items() if why}
    for name in systems:
        for split in ("dev", "test"):
            assert set(c["quality"][name][split]) == set(rb.METRICS)
            assert all(0.0 <= v <= 1.0 for v in c["quality"][name][split].values()), (name, split)
        lat = c["latency"][name]
        assert _finite_positive(lat["p50"]) and lat["p95"] >= lat["p50"]
    assert c["latency"]["ours hybrid"]["p50_vs_ours"] == 1.0
    assert c["quality"]["ours hybrid"]["test"]["R@5"] > 0  # it finds something on the held-out half
    assert _finite_positive(c["ours_embed_ms"]["p50"])
    d = c["paired"]["ours dense"]["test"]["R@5"]
    assert d["lo"] <= d["diff"] <= d["hi"] and d["ours_better"] + d["other_better"] <= d["n"]


def test_paired_difference_on_hand_made_numbers():
    ours = {f"q{i}": {"R@5": 1.0, "RR@10": 1.0, "nDCG@10": 1.0} for i in range(10)}
    other = {q: dict(v) for q, v in ours.items()}
    other["q0"] = {"R@5": 0.0, "RR@10": 0.5, "nDCG@10": 0.5}  # ours wins one question, the rest tie
    other["q1"]["RR@10"] = 1.0
    d = rb.paired_difference(ours, other)
    assert d["R@5"]["diff"] == pytest.approx(0.1) and d["R@5"]["ours_better"] == 1 and d["R@5"]["other_better"] == 0
    assert d["R@5"]["lo"] == pytest.approx(0.0) and d["R@5"]["hi"] == pytest.approx(0.3)  # 0..3 picks of q0 of 10
    assert d["RR@10"]["diff"] == pytest.approx(0.05) and d["RR@10"]["n"] == 10
    same = rb.paired_difference(ours, ours)
    assert all(v["diff"] == v["lo"] == v["hi"] == 0.0 and v["ours_better"] == 0 for v in same.values())


def test_stage_split_on_a_synthetic_collection(smoke):
    s = smoke["sizes"][str(SIZE)]
    assert s["corpus"]["chunks"] == SIZE and s["cold"]["index"]["chunks"] == SIZE
    assert set(s["modes"]) == set(rb.MODES)
    expected = {
        "hybrid": {"embed", "dense", "lexical", "fusion", "hydrate", "total"},
        "hybrid-rrf": {"embed", "dense", "lexical", "fusion", "hydrate", "total"},
        "dense": {"embed", "dense", "fusion", "hydrate", "total"},
        "lexical": {"lexical", "fusion", "hydrate", "total"},
        "hybrid+filter": {"filter", "embed", "dense", "lexical", "fusion", "hydrate", "total"},
    }
    for mode, stages in expected.items():
        r = s["modes"][mode]
        assert r["queries"] == 4 and r["mean_hits"] > 0, mode
        for stage in stages | {"call", "not_embed", "overhead"}:
            assert _finite_positive(r[stage]["p50"]) and r[stage]["p95"] >= r[stage]["p50"], (mode, stage)
        assert r["total"]["p50"] <= r["call"]["p50"]
    b = s["bm25"]
    assert b["bm25s"]["queries"] == 4 and 0.0 <= b["top10_overlap"] <= 1.0


def test_report_renders_and_json_round_trips(smoke):
    text = rb.format_report(smoke)
    assert "== sample:" in text and "ours hybrid" in text and "not_embed" in text and f"{SIZE:,} synthetic" in text
    assert "hybrid_vs_best_leg_every_corpus" in text
    assert json.loads(json.dumps(rb._round(smoke)))["corpora"]["sample"]["questions"]["dev"] == 6


def _corpus(q: dict[str, dict[str, float]]) -> dict:
    return {"quality": {name: {"test": {m: v for m in rb.METRICS}} for name, v in q.items()}}


def test_acceptance_on_hand_made_numbers():
    corpora = {"a": _corpus({"ours hybrid": 0.9, "ours dense": 0.85, "ours lexical": 0.5, "txtai hybrid": 0.88}),
               "b": _corpus({"ours hybrid": 0.8, "ours dense": 0.6, "ours lexical": 0.8, "txtai hybrid": 0.8})}
    acc = rb.acceptance(corpora)
    r = acc["R@5"]
    assert r["every_corpus"] and r["ahead_on_average"] and r["vs_txtai_on_average"]
    assert r["mean_hybrid"] == pytest.approx(0.85) and r["mean_best_leg"] == pytest.approx(0.825)
    corpora["b"]["quality"]["ours lexical"]["test"]["R@5"] = 0.81  # one corpus where BM25 alone is better
    corpora["a"]["quality"]["txtai hybrid"]["test"]["R@5"] = 0.95
    r = rb.acceptance(corpora)["R@5"]
    assert not r["every_corpus"] and r["ahead_on_average"] and not r["vs_txtai_on_average"]
    g = rb.goals({"sizes": {}, "corpora": corpora})
    assert g["hybrid_vs_best_leg_every_corpus"]["met"] is False and g["hybrid_vs_txtai_on_average"]["met"] is False
    assert g["hybrid_ahead_on_average"]["met"] is True


def test_main_parses_arguments(monkeypatch, capsys, smoke):
    seen = {}

    def fake_run(**kw):
        seen.update(kw)
        return smoke

    monkeypatch.setattr(rb, "run", fake_run)
    assert rb.main(["--json", "--smoke"]) == 0
    assert seen["corpora"] == ["sample"] and seen["sizes"] == rb.SMOKE["sizes"] and seen["max_questions"] == 6
    assert json.loads(capsys.readouterr().out)["config"]["queries"] == 4
    assert rb.main(["--json", "--sizes", "0", "--corpora", "sample", "--no-peers", "--max-questions", "3"]) == 0
    assert seen["sizes"] == [] and seen["peers"] is False and seen["max_questions"] == 3
    with pytest.raises(SystemExit):
        rb.main(["--sizes", "ten"])
    with pytest.raises(SystemExit):
        rb.main(["--corpora", "no-such-corpus"])


def test_peers_not_installed_are_reported_as_skipped(monkeypatch, sample_rag):
    monkeypatch.setattr(rb, "peers_available", lambda: {"txtai hybrid": "txtai not importable: test",
                                                           "langchain ensemble": "langchain not importable: test"})
    out = rb.peers_on_corpus("sample", sample_rag, lambda m: None, max_questions=2)
    assert set(out["latency"]) == set(rb.OURS) and out["skipped"]["txtai hybrid"] == "txtai not importable: test"


def test_synthetic_corpus_is_deterministic():
    import numpy as np

    vocab, p = rb.make_vocabulary(n_rare=500)
    assert len(set(vocab.tolist())) == len(vocab) and abs(p.sum() - 1) < 1e-9 and p[0] > p[-1]
    a = rb.make_texts(np.random.default_rng(3), vocab, p, 5)
    b = rb.make_texts(np.random.default_rng(3), vocab, p, 5)
    assert a == b and all(120 <= len(t.split()) <= 180 for t in a)
    qs = rb.make_queries(np.random.default_rng(3), vocab, p, 20)
    assert all(2 <= len(q.split()) <= 6 for q in qs)
