"""The leave-one-corpus-out study of how to choose the fusion default (bench.fusion_loco): its selection
procedures on hand-made scores where the right pick is known, and the learned fusion end to end on real candidates
of the sample corpus (dev questions only)."""

from __future__ import annotations

import pytest

from bench import fusion_loco as loco
from bench import fusion_study as fs
from localrag.retrieval.fusion import FusionConfig

PLAIN = (50, FusionConfig("convex", "fixed", 0.5))
ALPHA4 = (50, FusionConfig("convex", "fixed", 0.4))
ADAPTIVE = (50, FusionConfig("convex", "fixed", 0.4, "entropy", 5))
MINMAX = (50, FusionConfig("convex", "minmax", 0.5))
RRF = (50, FusionConfig("rrf", rrf_k=60.0, rrf_weights=(("dense", 1.0), ("lexical", 1.0))))


def test_simplicity_orders_plain_before_tuned_before_adaptive():
    ranked = sorted([ADAPTIVE, RRF, MINMAX, ALPHA4, PLAIN], key=lambda dc: loco.simplicity(*dc))
    assert ranked == [PLAIN, ALPHA4, RRF, MINMAX, ADAPTIVE]  # RRF normalises nothing: before a min-max mix


def _table(scores: dict[str, dict[str, list[float]]]) -> dict:
    """label -> corpus -> qid -> (R@5, RR@10, nDCG@10), all three set to the given per-question score."""
    return {lab: {c: {f"{c}{i}": (v, v, v) for i, v in enumerate(vals)} for c, vals in per.items()}
            for lab, per in scores.items()}


def test_procedures_pick_what_their_rule_says():
    configs = {fs.label(*PLAIN): PLAIN, fs.label(*ADAPTIVE): ADAPTIVE}
    noisy = {"a": [0.0, 0.0, 1.0, 0.0, 1.0, 0.0], "b": [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]}
    # the adaptive configuration wins two questions and loses one per corpus: ahead, inside one standard error
    ahead = {"a": [1.0, 1.0, 0.0, 0.0, 1.0, 0.0], "b": [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]}
    table = _table({fs.label(*PLAIN): noisy, fs.label(*ADAPTIVE): ahead})
    singles = {"dense": _table({"x": noisy})["x"], "lexical": _table({"x": noisy})["x"]}
    assert loco.choose("best-objective", table, configs, singles, ["a", "b"]) == fs.label(*ADAPTIVE)
    se = loco.paired_se(table[fs.label(*ADAPTIVE)], table[fs.label(*PLAIN)], ["a", "b"])
    gap = loco.objective(table[fs.label(*ADAPTIVE)], ["a", "b"]) - loco.objective(table[fs.label(*PLAIN)], ["a", "b"])
    assert gap == pytest.approx(1 / 6) and se == pytest.approx(0.198, abs=1e-3)
    assert loco.choose("one-se", table, configs, singles, ["a", "b"]) == fs.label(*PLAIN)
    assert loco.choose("plain", table, configs, singles, ["a"]) == loco.PLAIN
    # a clear lead (every question) is outside the standard error: one-se keeps the better configuration
    table = _table({fs.label(*PLAIN): {"a": [0.0] * 6, "b": [0.0] * 6}, fs.label(*ADAPTIVE): {"a": [1.0] * 6,
                                                                                            "b": [1.0] * 6}})
    assert loco.choose("one-se", table, configs, singles, ["a", "b"]) == fs.label(*ADAPTIVE)
    # best-floor: the configuration whose worst corpus is furthest above that corpus's best single leg
    table = _table({fs.label(*PLAIN): {"a": [1.0] * 6, "b": [0.3] * 6}, fs.label(*ADAPTIVE): {"a": [0.6] * 6,
                                                                                            "b": [0.6] * 6}})
    singles = {"dense": _table({"x": {"a": [0.5] * 6, "b": [0.5] * 6}})["x"],
               "lexical": _table({"x": {"a": [0.5] * 6, "b": [0.5] * 6}})["x"]}
    assert loco.choose("best-objective", table, configs, singles, ["a", "b"]) == fs.label(*PLAIN)  # 0.65 > 0.6
    assert loco.choose("best-floor", table, configs, singles, ["a", "b"]) == fs.label(*ADAPTIVE)  # +0.1 > -0.2
    assert loco.floor(table[fs.label(*PLAIN)], singles, ["a", "b"]) == pytest.approx(-0.2)
    with pytest.raises(ValueError, match="unknown procedure"):
        loco.choose("oracle", table, configs, singles, ["a"])


def test_learned_fusion_trains_on_one_part_and_ranks_another(sample_rag):
    from bench.retrieval_quality import load_split

    queries = [q for q in load_split("sample", "dev") if q.answerable][:16]
    data = {}
    for name, part in (("first", queries[:8]), ("second", queries[8:])):
        units, per_depth = fs.prepare(sample_rag, part)
        data[name] = (part, units, per_depth, 0)
    cands, scores = data["first"][2][loco.DEPTH][queries[0].id]
    ids, x = loco.candidate_features(cands, scores)
    assert x.shape == (len(ids), len(loco.FEATURES)) and len(ids) == len(set(ids)) >= 10
    assert ((x >= 0) & (x <= 1.0 + 1e-9)).all()  # every feature is a [0, 1] score, rank or product of them
    model = loco.learned_train(data, ["first"])
    got = loco.learned_scores(model, data, "second")
    assert set(got) == {q.id for q in queries[8:]}
    assert all(0.0 <= v <= 1.0 for t in got.values() for v in t)
    assert loco.corpus_score(got) > 0.3  # it finds evidence: a model that learned nothing would rank at random
