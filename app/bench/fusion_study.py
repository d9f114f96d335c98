"""The fusion study: which hybrid default ranks best on the DEV halves of every labelled corpus together.

    python -m localrag.app.bench.fusion_study [--corpora sample,articles,python-docs] [--work DIR] [--top 20] [--json]

For each corpus (localrag.app.bench.retrieval_quality.corpora) the files are ingested with the default settings and
every dev question's candidates are taken once at the deepest depth studied: the dense leg from FAISS, the lexical
leg from BM25, exactly as retrieval.search does. Each configuration then re-runs only the cheap stages on them, with
the search pipeline's own functions (search.score_candidates, fusion.fuse): candidate depth, score normalisation
(fixed / min-max / z-score / rank / txtai-style), the prior weight of dense, query-adaptive weights (gap / z-gap /
entropy of each leg's top scores) and RRF's k and leg weights. Metrics are ir-measures' R@5, RR@10 (MRR@10) and
nDCG@10 over evidence units (localrag.eval.retrieval_metrics). The objective is the mean over corpora of the mean of
those three, so a small corpus counts as much as a large one. Test halves are never read here.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from localrag.eval.retrieval_metrics import measure, resolve
from localrag.retrieval import fusion as fu
from localrag.retrieval.search import Candidates, dense_leg, lexical_leg, score_candidates

SCORED = ("R@5", "RR@10", "nDCG@10")
DEPTHS = (20, 50, 100)
ALPHAS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
CONF_TOPS = (5, 10)
RRF_KS = (1.0, 2.0, 5.0, 10.0, 20.0, 60.0)
RRF_WEIGHTS = ((1.0, 1.0), (1.0, 2.0), (2.0, 1.0))
K = 10


def grid() -> list[tuple[int, fu.FusionConfig]]:
    """(candidate depth, fusion config) pairs studied."""
    out: list[tuple[int, fu.FusionConfig]] = []
    for depth in DEPTHS:
        for norm, alpha in itertools.product(fu.NORMS, ALPHAS):
            out.append((depth, fu.FusionConfig("convex", norm, alpha)))
            for adaptive, top in itertools.product(fu.ADAPTIVE[1:], CONF_TOPS):
                out.append((depth, fu.FusionConfig("convex", norm, alpha, adaptive, top)))
        for k, (wd, wl) in itertools.product(RRF_KS, RRF_WEIGHTS):
            out.append((depth, fu.FusionConfig("rrf", rrf_k=k, rrf_weights=(("dense", wd), ("lexical", wl)))))
    return out


def label(depth: int, c: fu.FusionConfig) -> str:
    if c.method == "rrf":
        w = dict(c.rrf_weights)
        return f"rrf k={c.rrf_k:g} w={w['dense']:g}/{w['lexical']:g} N={depth}"
    ad = "" if c.adaptive == "none" else f" {c.adaptive}@{c.conf_top}"
    return f"convex {c.norm} a={c.alpha:g}{ad} N={depth}"


def prepare(rag: Any, queries: list[Any]) -> tuple[dict[str, Any], dict[int, dict[str, tuple[Candidates, Any]]]]:
    """Evidence units of the questions, and per depth per question the candidates and their exact scores."""
    coll = rag.store.collection("default")
    units = resolve(rag.store, coll.id, queries)
    idx = rag._open_indexes(coll)
    vecs = rag.embedder.encode([q.query for q in queries])
    deepest = max(DEPTHS)
    per_depth: dict[int, dict[str, tuple[Candidates, Any]]] = {d: {} for d in DEPTHS}
    for q, v in zip(queries, vecs, strict=True):
        dense, dense_scores = dense_leg(idx.vectors, v, deepest)
        lexical, every = lexical_leg(idx.lexical, q.query, deepest)
        for d in DEPTHS:
            c = Candidates(dense=dense[:d], lexical=lexical[:d], dense_scores=dense_scores, query_vector=v,
                           lexical_all=every)
            per_depth[d][q.id] = (c, score_candidates(c, q.query, idx.vectors, idx.lexical))
    return units, per_depth


def order_of(cands: Candidates, scores: Any, cfg: fu.FusionConfig) -> list[int]:
    f = fu.fuse(scores.normalized(), {"dense": cands.dense, "lexical": cands.lexical}, method=cfg.method,
                alpha=cfg.alpha, rrf_k=cfg.rrf_k, weights=dict(cfg.rrf_weights) or None,
                raw={"dense": scores.dense, "lexical": scores.lexical}, norm=cfg.norm, adaptive=cfg.adaptive,
                conf_top=cfg.conf_top)
    return f.order[:K]


def evaluate(queries: list[Any], units: dict[str, Any], run: dict[str, list[int]]) -> dict[str, float]:
    m = measure(queries, units, run, SCORED)["overall"]
    return {x: m[x] for x in SCORED}


def objective(per_corpus: dict[str, dict[str, float]]) -> float:
    return statistics.fmean(statistics.fmean(m[x] for x in SCORED) for m in per_corpus.values())


def study(names: list[str], work: Path, embedder: Any = None, log: Any = None) -> dict[str, Any]:
    from localrag.app.bench.retrieval_quality import load_split, open_corpus

    log = log or (lambda msg: None)
    data: dict[str, Any] = {}
    for name in names:
        t = time.perf_counter()
        rag = open_corpus(name, work / name, embedder=embedder)
        embedder = rag.embedder
        queries = load_split(name, "dev")
        units, per_depth = prepare(rag, queries)
        n_chunks = len(rag.store.chunk_ids(rag.store.collection("default").id))
        rag.close()
        data[name] = (queries, units, per_depth)
        log(f"[{name}] {n_chunks} chunks, {len(queries)} dev questions ({sum(q.answerable for q in queries)} "
            f"answerable), prepared in {time.perf_counter() - t:.1f} s")
    rows = []
    singles: dict[str, dict[str, dict[str, float]]] = {"dense": {}, "lexical": {}}
    for name, (queries, units, per_depth) in data.items():
        d = per_depth[max(DEPTHS)]
        singles["dense"][name] = evaluate(queries, units, {q: c.dense[:K] for q, (c, _) in d.items()})
        singles["lexical"][name] = evaluate(queries, units, {q: c.lexical[:K] for q, (c, _) in d.items()})
    configs = grid()
    log(f"{len(configs)} configurations ...")
    t = time.perf_counter()
    for depth, cfg in configs:
        per = {}
        for name, (queries, units, per_depth) in data.items():
            run = {qid: order_of(c, s, cfg) for qid, (c, s) in per_depth[depth].items()}
            per[name] = evaluate(queries, units, run)
        rows.append({"label": label(depth, cfg), "depth": depth, "config": asdict(cfg), "corpora": per,
                     "objective": objective(per)})
    log(f"... in {time.perf_counter() - t:.0f} s")
    rows.sort(key=lambda r: -r["objective"])
    return {"corpora": {n: {"dev_questions": len(v[0]), "answerable": sum(q.answerable for q in v[0])}
                        for n, v in data.items()},
            "singles": {leg: {"corpora": per, "objective": objective(per)} for leg, per in singles.items()},
            "rows": rows}


def format_rows(res: dict[str, Any], top: int = 20, extra: tuple[str, ...] = ()) -> str:
    names = list(res["corpora"])
    head = f"{'configuration (dev halves)':<40}{'objective':>10}" + "".join(
        f"{n + ' R@5/MRR/nDCG':>28}" for n in names)
    lines = [head]

    def line(lab: str, obj: float, per: dict[str, dict[str, float]]) -> str:
        return f"{lab:<40}{obj:>10.3f}" + "".join(
            f"{per[n]['R@5']:>10.3f}{per[n]['RR@10']:>9.3f}{per[n]['nDCG@10']:>9.3f}" for n in names)

    for leg, r in res["singles"].items():
        lines.append(line(f"{leg} only", r["objective"], r["corpora"]))
    shown = res["rows"][:top] + [r for r in res["rows"][top:] if r["label"] in extra]
    for r in shown:
        rank = res["rows"].index(r) + 1
        lines.append(line(f"{rank:>3}. {r['label']}", r["objective"], r["corpora"]))
    return "\n".join(lines)


BASELINES = ("convex fixed a=0.5 N=50", "rrf k=5 w=1/1 N=50", "rrf k=60 w=1/1 N=50")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default=None, help="comma-separated corpus names (default: every one available)")
    ap.add_argument("--work", type=Path, help="keep the ingested corpora here (reused by the next run)")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from localrag.app.bench.retrieval_quality import corpora

    names = args.corpora.split(",") if args.corpora else corpora()
    with tempfile.TemporaryDirectory() as tmp:
        res = study(names, args.work or Path(tmp), log=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        print(format_rows(res, args.top, BASELINES))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
