"""Retrieval quality with the real embedder, asserted on held-out TEST halves only (issue 14): the sample corpus's test
file, the test half of the four articles (data/eval/qa_articles.jsonl, `split` per line) and the test half of the Python
FAQ/HOWTO pages (python-howto, 780 chunks, ~40 s of embedding; needs python3-doc). The Python docs corpus (2,584 chunks,
minutes of embedding) is left to `localrag bench retrieval`. The sample's two files:

* dev  (data/eval/retrieval.jsonl): the set the search defaults (convex fusion, alpha, rrf_k, candidates) were
  tuned on. Only structural checks here: every evidence spec resolves, the set has what it claims.
* test (data/eval/retrieval_test.jsonl): held out, never tuned on. The quality thresholds are asserted here only,
  a margin below what was measured (see data/eval/README.md for the figures).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.retrieval_quality import (
    LabeledQuery,
    best_floor,
    evaluate_system,
    load_queries,
    load_split,
    measure,
    open_corpus,
    resolve,
    run_quality,
    unit_ranking,
)

EVAL = Path(__file__).resolve().parent.parent / "data" / "eval"
DEV = EVAL / "retrieval.jsonl"  # defaults were tuned here: never assert quality on it
TEST = EVAL / "retrieval_test.jsonl"  # held out: quality is asserted here only
_WORD = re.compile(r"\w+")


@pytest.mark.parametrize(("path", "min_answerable", "min_types"), [
    (DEV, 50, {"unanswerable": 5, "offtopic": 5, "paraphrase": 15}),
    (TEST, 40, {"unanswerable": 5, "offtopic": 5, "paraphrase": 30}),
], ids=["dev", "test"])
def test_every_evidence_spec_resolves_and_the_set_has_what_it_claims(sample_rag, path, min_answerable, min_types):
    queries = load_queries(path)
    assert len({q.id for q in queries}) == len(queries)
    types = {t: sum(q.type == t for q in queries) for t in {q.type for q in queries}}
    assert len([q for q in queries if q.answerable]) >= min_answerable
    assert all(types.get(t, 0) >= n for t, n in min_types.items()), types
    coll = sample_rag.store.collection("default")
    units = resolve(sample_rag.store, coll.id, queries)  # raises when a spec matches no chunk
    for q in queries:
        if q.answerable:  # each spec matches a chunk, and 1 or 2 only (chunks overlap): the specs are specific
            for n in range(len(q.relevant)):
                matched = [c for c, us in units[q.id].items() if f"{q.id}/{n}" in us]
                assert 1 <= len(matched) <= 2, (q.id, q.relevant[n], matched)


def _longest_shared_run(a: list[str], b: list[str]) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            if x == y:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def test_the_test_split_is_new_and_paraphrased(sample_rag):
    """Held out means: no question of the dev split again, and the questions do not copy the evidence's wording
    (no run of more than 3 words in common with the chunk that holds the answer)."""
    dev, test = load_queries(DEV), load_queries(TEST)
    norm = {" ".join(_WORD.findall(q.query.casefold())) for q in dev}
    assert not {q.id for q in dev} & {q.id for q in test}
    assert not [q.id for q in test if " ".join(_WORD.findall(q.query.casefold())) in norm]
    store = sample_rag.store
    units = resolve(store, store.collection("default").id, test)
    texts = {c: t for c, t in _chunk_texts(sample_rag)}
    copied = {}
    for q in test:
        if not q.answerable:
            continue
        words = _WORD.findall(q.query.casefold())
        run = max(_longest_shared_run(words, _WORD.findall(texts[c].casefold())) for c in units[q.id])
        if run > 3:
            copied[q.id] = run
    assert not copied, copied


def _chunk_texts(rag) -> list[tuple[int, str]]:
    from sqlalchemy import select

    from localrag.index.store import ChunkRow

    with rag.store.session() as s:
        return [tuple(r) for r in s.execute(select(ChunkRow.id, ChunkRow.text)).all()]


def test_unit_ranking_and_measure_on_a_hand_made_run():
    qs = [LabeledQuery("a", "x", "exact", [{"source": "f"}, {"source": "g"}]), LabeledQuery("b", "y", "exact",
          [{"source": "f"}])]
    units = {"a": {10: ["a/0"], 11: ["a/0"], 12: ["a/1"]}, "b": {20: ["b/0"]}}
    assert unit_ranking([1, 10, 11, 2, 12], units["a"]) == ["chunk:1", "a/0", "chunk:2", "a/1"]
    run = {"a": [1, 10, 11, 2, 12], "b": [5, 6, 7, 8, 9, 20]}
    m = measure(qs, units, run)
    assert m["per_query"]["a"]["R@5"] == 1.0 and m["per_query"]["b"]["R@5"] == 0.0
    assert m["per_query"]["a"]["RR@10"] == pytest.approx(0.5) and m["per_query"]["b"]["RR@10"] == pytest.approx(1 / 6)
    assert m["overall"]["R@5"] == pytest.approx(0.5)


def test_best_floor_separates():
    qs = [LabeledQuery("a", "", "x", [{}]), LabeledQuery("b", "", "x", [{}]), LabeledQuery("c", "", "offtopic")]
    f = best_floor({"a": 0.5, "b": 0.6, "c": 0.2}, qs, ("offtopic",))
    assert f["accuracy"] == 1.0 and 0.2 < f["floor"] <= 0.5


# Measured on the test split (46 answerable questions; one question is 0.022 of recall@5) with the default settings
# chosen on the dev halves of four corpora (convex, alpha 0.5, entropy@5 query-adaptive weights, picked by the
# one-standard-error procedure that leave-one-corpus-out preferred; BENCHMARKS.md):
#                 R@5    RR@10
#   dense        0.935   0.758
#   hybrid-conv  0.913   0.713   (the default; 0.891 / 0.662 with the stop-18 default, alpha 0.5 gap@5)
#   hybrid-rrf   0.848   0.600
#   lexical      0.457   0.327
# The thresholds sit about two questions below. On this held-out, paraphrased set the default hybrid does NOT
# beat its dense leg (it is one question behind); that is asserted as it is, not tuned away (issue 14).
FLOORS = {
    "dense": {"R@5": 0.88, "RR@10": 0.70},
    "hybrid-convex": {"R@5": 0.84, "RR@10": 0.64},
    "hybrid-rrf": {"R@5": 0.79, "RR@10": 0.55},
    "lexical": {"R@5": 0.41, "RR@10": 0.28},
}


@pytest.mark.slow
def test_quality_on_the_held_out_split(sample_rag):
    report = run_quality(sample_rag, k=10, queries_path=TEST)
    got = {name: r["overall"] for name, r in report["systems"].items()}
    for name, floors in FLOORS.items():
        for metric, floor in floors.items():
            assert got[name][metric] >= floor, (name, metric, got[name][metric], floor)
    r5 = {name: m["R@5"] for name, m in got.items()}
    # what holds on held-out data: the default hybrid stays within two questions of the best single leg, far
    # ahead of BM25 alone, and convex fusion (the default) ranks better than RRF
    assert r5["hybrid-convex"] >= max(r5["dense"], r5["lexical"]) - 0.05, r5
    assert r5["hybrid-convex"] >= r5["lexical"] + 0.3, r5
    assert got["hybrid-convex"]["RR@10"] > got["hybrid-rrf"]["RR@10"], got
    # off-topic questions fall below a relevance floor that keeps almost every answerable one
    assert report["systems"]["hybrid-convex"]["floor_offtopic"]["accuracy"] >= 0.9


# --- the articles corpus: its test half ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def articles_rag(tmp_path_factory, embedder):
    from bench import corpora

    if not corpora.ARTICLES.is_dir():
        pytest.skip(f"the articles corpus is not at {corpora.ARTICLES} (../shared/corpora/articles)")
    rag = open_corpus("articles", tmp_path_factory.mktemp("articles"), embedder=embedder)
    yield rag
    rag.close()


MODES = {"hybrid": {}, "dense": {"mode": "dense"}, "lexical": {"mode": "lexical"}}
# Measured on the articles' test half (19 answerable questions; one is 0.053 of recall@5) with the default settings
# (localrag bench retrieval, BENCHMARKS.md); the floors sit about one question below.
#             R@5    RR@10  nDCG@10
#   hybrid   1.000   0.930  0.947   (the default)
#   dense    0.895   0.796  0.846
#   lexical  1.000   1.000  1.000
ARTICLE_FLOORS = {
    "hybrid": {"R@5": 0.94, "RR@10": 0.88, "nDCG@10": 0.90},
    "dense": {"R@5": 0.84, "RR@10": 0.74},
    "lexical": {"R@5": 0.94, "RR@10": 0.94},
}


@pytest.mark.slow
def test_quality_on_the_articles_test_half(articles_rag):
    rag = articles_rag
    test = load_split("articles", "test")
    assert len(test) >= 20 and sum(q.answerable for q in test) >= 15
    units = resolve(rag.store, rag.store.collection("default").id, test)
    got = {name: evaluate_system(lambda q, kw=kw: rag.search(q, k=10, rerank=False, **kw), test, units)["overall"]
           for name, kw in MODES.items()}
    for name, floors in ARTICLE_FLOORS.items():
        for metric, floor in floors.items():
            assert got[name][metric] >= floor, (name, metric, got[name][metric], floor)
    # what holds here (issue 14's acceptance, honestly): the default hybrid finds everything BM25 finds in the top
    # 5 and is far ahead of dense, but ranks it a little lower than BM25 alone (MRR 0.94 vs 1.0)
    assert got["hybrid"]["R@5"] >= max(got["dense"]["R@5"], got["lexical"]["R@5"]) - 1e-9, got
    assert got["hybrid"]["RR@10"] >= got["dense"]["RR@10"] + 0.08, got


# --- python-howto (780 chunks of the Python FAQ and HOWTOs): its test half ------------------------------------------
# Written after the stop-18 defaults, never searched while written; a default chosen on the dev halves of all four
# corpora was measured on it (20 answerable questions; one is 0.05 of recall@5), and the current one (one-SE pick):
#             R@5    RR@10  nDCG@10
#   hybrid   0.900   0.743  0.793   (the default; 0.900 / 0.742 / 0.803 with alpha 0.4)
#   dense    0.800   0.682  0.722
#   lexical  0.700   0.528  0.593
# Here the default hybrid is ahead of both legs: asserted, with floors about one question below.
HOWTO_FLOORS = {
    "hybrid": {"R@5": 0.85, "RR@10": 0.69, "nDCG@10": 0.75},
    "dense": {"R@5": 0.75, "RR@10": 0.63},
    "lexical": {"R@5": 0.65, "RR@10": 0.48},
}


@pytest.mark.slow
def test_quality_on_the_python_howto_test_half(tmp_path_factory, embedder):
    from bench import corpora

    try:
        corpora.find_python_docs()
    except corpora.CorpusError as exc:
        pytest.skip(str(exc))
    rag = open_corpus("python-howto", tmp_path_factory.mktemp("pyhowto"), embedder=embedder)  # ~40 s of embedding
    try:
        test = load_split("python-howto", "test")
        units = resolve(rag.store, rag.store.collection("default").id, test)
        got = {name: evaluate_system(lambda q, kw=kw: rag.search(q, k=10, rerank=False, **kw), test, units)["overall"]
               for name, kw in MODES.items()}
    finally:
        rag.close()
    for name, floors in HOWTO_FLOORS.items():
        for metric, floor in floors.items():
            assert got[name][metric] >= floor, (name, metric, got[name][metric], floor)
    for metric in ("R@5", "RR@10", "nDCG@10"):
        assert got["hybrid"][metric] >= max(got["dense"][metric], got["lexical"][metric]), (metric, got)


def test_the_fusion_study_ranks_exactly_as_the_search_does(sample_rag):
    """The study re-runs only the score and fusion stages on stored candidates; for the default configuration its
    top 10 must be what rag.search returns, or its choice would be about another pipeline."""
    from bench import fusion_study
    from localrag.retrieval.fusion import FusionConfig

    st = sample_rag.settings.search
    cfg = FusionConfig("convex", st.fusion_norm, st.convex_alpha, st.fusion_adaptive, st.fusion_conf_top)
    queries = load_split("sample", "dev")[:8]
    _, per_depth = fusion_study.prepare(sample_rag, queries)
    assert st.candidates in per_depth
    for q in queries:
        cands, scores = per_depth[st.candidates][q.id]
        got = fusion_study.order_of(cands, scores, cfg)
        assert got == [h.chunk_id for h in sample_rag.search(q.query, k=10, rerank=False)], q.id
    assert fusion_study.label(50, cfg) == "convex fixed a=0.5 entropy@5 N=50"
    assert fusion_study.label(50, cfg) == fusion_study.BASELINES[0]  # the study marks the default
    assert len(fusion_study.grid()) == 1209
