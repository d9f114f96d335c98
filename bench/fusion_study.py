"""The fusion study: which hybrid default ranks best on the DEV halves of every labelled corpus together.

    python -m bench.fusion_study [--corpora sample,articles,python-docs,python-howto]
        [--work DIR] [--top 20] [--chunk-tokens 200[,100,150,250]] [--json]

For each corpus (bench.retrieval_quality.corpora) the files are ingested with the default settings and
every dev question's candidates are taken once at the deepest depth studied: the dense leg from FAISS, the lexical
leg from BM25, exactly as retrieval.search does. Each configuration then re-runs only the cheap stages on them, with
the search pipeline's own functions (search.score_candidates, fusion.fuse): candidate depth, score normalisation
(fixed / min-max / z-score / rank / txtai-style), the prior weight of dense, query-adaptive weights (gap / z-gap /
entropy of each leg's top scores) and RRF's k and leg weights. Metrics are ir-measures' R@5, RR@10 (MRR@10) and
nDCG@10 over evidence units (localrag.eval.retrieval_metrics). The objective is the mean over corpora of the mean of
those three, so a small corpus counts as much as a large one. Test halves are never read here.

Chunk size: `--chunk-tokens 100,150,200,250` re-ingests (re-chunks and re-embeds) every corpus once per size, each
into its own folder under --work (overlap 16 % of the size), and runs the whole grid on each. An evidence string that
a smaller chunking cuts in two is matched by either half (`resolve_lenient`); one found nowhere counts as a miss.
Besides the objective at k = 5 chunks, each size reports R@k at the same token budget as 5 chunks of 200 tokens
(`budget_recall`), because smaller chunks put less text into the answer's context at the same k.
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

from localrag.eval.retrieval_metrics import chunk_rows, measure, spec_matches
from localrag.retrieval import fusion as fu
from localrag.retrieval.search import Candidates, dense_leg, lexical_leg, score_candidates

SCORED = ("R@5", "RR@10", "nDCG@10")
DEPTHS = (20, 50, 100)
ALPHAS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
CONF_TOPS = (5, 10)
RRF_KS = (1.0, 2.0, 5.0, 10.0, 20.0, 60.0)
RRF_WEIGHTS = ((1.0, 1.0), (1.0, 2.0), (2.0, 1.0))
K = 10
DEFAULT_CHUNK = 200
BUDGET_CHUNKS = 5  # the token budget of budget_recall: this many chunks of DEFAULT_CHUNK tokens


def overlap_for(chunk_tokens: int) -> int:
    """The overlap studied with a chunk size: 16 % of it (32 for the default 200)."""
    return round(chunk_tokens * 0.16)


def budget_k(chunk_tokens: int) -> int:
    """How many chunks of `chunk_tokens` make the same token budget as BUDGET_CHUNKS default chunks (at most K)."""
    return max(1, min(K, round(BUDGET_CHUNKS * DEFAULT_CHUNK / chunk_tokens)))


def resolve_lenient(store: Any, collection_id: int, queries: list[Any]) -> tuple[dict[str, Any], int]:
    """Evidence units as eval.retrieval_metrics.resolve, except that a `contains` string no chunk holds whole (a
    chunking cut it) is matched by a chunk holding its first or its second half (3+ words each). Returns the units
    and how many specs no chunk holds even so (they stay in the qrels: misses)."""
    rows = chunk_rows(store, collection_id)
    out: dict[str, Any] = {}
    lost = 0
    for q in queries:
        units: dict[int, list[str]] = {}
        for n, spec in enumerate(q.relevant):
            hits = [r[0] for r in rows if spec_matches(spec, *r[1:])]
            words = str(spec.get("contains", "")).split()
            if not hits and len(words) >= 6:
                halves = (" ".join(words[: len(words) // 2]), " ".join(words[len(words) // 2:]))
                hits = [r[0] for r in rows if any(spec_matches({**spec, "contains": h}, *r[1:]) for h in halves)]
            lost += not hits
            for cid in hits:
                units.setdefault(cid, []).append(f"{q.id}/{n}")
        out[q.id] = units
    return out, lost


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
    units, lost = resolve_lenient(rag.store, coll.id, queries)
    if lost:
        print(f"  {lost} evidence spec(s) in no chunk at this chunk size (counted as misses)", file=sys.stderr)
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


def floor_margin(per_corpus: dict[str, dict[str, float]], singles: dict[str, dict[str, dict[str, float]]]) -> float:
    """The acceptance's shape on the dev halves: per metric, the worst corpus's margin over its best single leg
    (negative: behind that leg somewhere), averaged over the metrics."""
    return statistics.fmean(
        min(m[x] - max(leg[name][x] for leg in singles.values()) for name, m in per_corpus.items())
        for x in SCORED)


def collect(names: list[str], work: Path, embedder: Any = None, log: Any = None,
            chunk_tokens: int = DEFAULT_CHUNK) -> dict[str, Any]:
    """Per corpus (ingested under `work`, chunked at `chunk_tokens`): its dev questions, their evidence units, the
    candidates and exact scores per depth and question, and its chunk count."""
    from bench.retrieval_quality import load_split, open_corpus

    log = log or (lambda msg: None)
    data: dict[str, Any] = {}
    for name in names:
        t = time.perf_counter()
        folder = work / name if chunk_tokens == DEFAULT_CHUNK else work / f"{name}-c{chunk_tokens}"
        rag = open_corpus(name, folder, embedder=embedder, chunk_tokens=chunk_tokens,
                          chunk_overlap=overlap_for(chunk_tokens))
        embedder = rag.embedder
        queries = load_split(name, "dev")
        units, per_depth = prepare(rag, queries)
        n_chunks = len(rag.store.chunk_ids(rag.store.collection("default").id))
        rag.close()
        data[name] = (queries, units, per_depth, n_chunks)
        log(f"[{name} @{chunk_tokens} tokens] {n_chunks} chunks, {len(queries)} dev questions "
            f"({sum(q.answerable for q in queries)} answerable), prepared in {time.perf_counter() - t:.1f} s")
    return data


def study(names: list[str], work: Path, embedder: Any = None, log: Any = None,
          chunk_tokens: int = DEFAULT_CHUNK) -> dict[str, Any]:
    """The whole grid on the dev halves of `names`, chunked at `chunk_tokens` (ingested under `work`)."""
    log = log or (lambda msg: None)
    data = collect(names, work, embedder, log, chunk_tokens)
    rows = []
    singles: dict[str, dict[str, dict[str, float]]] = {"dense": {}, "lexical": {}}
    for name, (queries, units, per_depth, _) in data.items():
        d = per_depth[max(DEPTHS)]
        singles["dense"][name] = evaluate(queries, units, {q: c.dense[:K] for q, (c, _) in d.items()})
        singles["lexical"][name] = evaluate(queries, units, {q: c.lexical[:K] for q, (c, _) in d.items()})
    configs = grid()
    log(f"{len(configs)} configurations ...")
    t = time.perf_counter()
    for depth, cfg in configs:
        per = {}
        for name, (queries, units, per_depth, _) in data.items():
            run = {qid: order_of(c, s, cfg) for qid, (c, s) in per_depth[depth].items()}
            per[name] = evaluate(queries, units, run)
        rows.append({"label": label(depth, cfg), "depth": depth, "config": asdict(cfg), "corpora": per,
                     "objective": objective(per), "floor": floor_margin(per, singles)})
    log(f"... in {time.perf_counter() - t:.0f} s")
    rows.sort(key=lambda r: -r["objective"])
    bk = budget_k(chunk_tokens)
    for r in rows[:1] + [r for r in rows if r["label"] in BASELINES]:
        depth, cfg = r["depth"], fu.FusionConfig(**{**r["config"], "rrf_weights": tuple(
            tuple(w) for w in r["config"]["rrf_weights"])})
        r["budget_recall"] = statistics.fmean(
            measure(queries, units, {qid: order_of(c, s, cfg) for qid, (c, s) in per_depth[depth].items()},
                    (f"R@{bk}",))["overall"][f"R@{bk}"]
            for queries, units, per_depth, _ in data.values())
    return {"chunk_tokens": chunk_tokens, "budget_k": bk,
            "n_chunks": {n: v[3] for n, v in data.items()},
            "corpora": {n: {"dev_questions": len(v[0]), "answerable": sum(q.answerable for q in v[0])}
                        for n, v in data.items()},
            "singles": {leg: {"corpora": per, "objective": objective(per)} for leg, per in singles.items()},
            "rows": rows}


def format_rows(res: dict[str, Any], top: int = 20, extra: tuple[str, ...] = ()) -> str:
    names = list(res["corpora"])
    head = f"{'configuration (dev halves)':<40}{'objective':>10}{'floor':>8}" + "".join(
        f"{n + ' R@5/MRR/nDCG':>28}" for n in names)
    lines = [head]

    def line(lab: str, obj: float, per: dict[str, dict[str, float]], floor: float | None = None) -> str:
        fl = "" if floor is None else f"{floor:+.3f}"
        return f"{lab:<40}{obj:>10.3f}{fl:>8}" + "".join(
            f"{per[n]['R@5']:>10.3f}{per[n]['RR@10']:>9.3f}{per[n]['nDCG@10']:>9.3f}" for n in names)

    for leg, r in res["singles"].items():
        lines.append(line(f"{leg} only", r["objective"], r["corpora"]))
    shown = res["rows"][:top] + [r for r in res["rows"][top:] if r["label"] in extra]
    for r in shown:
        rank = res["rows"].index(r) + 1
        lines.append(line(f"{rank:>3}. {r['label']}", r["objective"], r["corpora"], r["floor"]))
    by_floor = sorted(res["rows"], key=lambda r: -r["floor"])[:top // 2]
    lines.append("best by floor (the worst corpus's margin over its best single leg, mean of the three metrics):")
    for r in by_floor:
        rank = res["rows"].index(r) + 1
        lines.append(line(f"{rank:>3}. {r['label']}", r["objective"], r["corpora"], r["floor"]))
    return "\n".join(lines)


# the default (first: the chunk-size summary compares it; chosen by fusion_loco's one-se procedure), the best
# objective, stop 18's default, the plain convex mix, two RRFs
BASELINES = ("convex fixed a=0.5 entropy@5 N=50", "convex fixed a=0.4 entropy@5 N=50", "convex fixed a=0.5 gap@5 N=50",
             "convex fixed a=0.5 N=50", "rrf k=5 w=1/1 N=50", "rrf k=60 w=1/1 N=50")


def format_chunk_summary(results: list[dict[str, Any]]) -> str:
    """One line per chunk size: chunks per corpus, the best configuration's objective and the current default's, and
    recall at the same token budget (budget_recall)."""
    lines = [f"{'chunk tokens':<14}{'chunks per corpus':<34}{'best configuration':<40}{'objective':>10}"
             f"{'budget R':>10}{'default obj':>12}{'default budget R':>17}"]
    for res in results:
        best = res["rows"][0]
        default = next((r for r in res["rows"] if r["label"] == BASELINES[0]), best)
        chunks = "/".join(str(n) for n in res["n_chunks"].values())
        lines.append(f"{res['chunk_tokens']:<14}{chunks:<34}{best['label']:<40}{best['objective']:>10.3f}"
                     f"{best['budget_recall']:>10.3f}{default['objective']:>12.3f}{default['budget_recall']:>17.3f}")
    return "\n".join(lines) + f"\n(budget R: R@k with k chunks = the tokens of {BUDGET_CHUNKS} x {DEFAULT_CHUNK})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default=None, help="comma-separated corpus names (default: every one available)")
    ap.add_argument("--work", type=Path, help="keep the ingested corpora here (reused by the next run)")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--chunk-tokens", default=str(DEFAULT_CHUNK),
                    help="comma-separated chunk sizes in tokens to study (each re-ingests every corpus)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from bench.retrieval_quality import corpora

    names = args.corpora.split(",") if args.corpora else corpora()
    sizes = [int(x) for x in args.chunk_tokens.split(",")]
    from localrag.index.embedder import Embedder

    results = []
    embedder = Embedder()  # one model for every size and corpus
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            res = study(names, args.work or Path(tmp), embedder=embedder, chunk_tokens=size,
                        log=lambda m: print(m, file=sys.stderr, flush=True))
            results.append(res)
            if not args.json:
                print(f"== chunks of {size} tokens (overlap {overlap_for(size)}) ==")
                print(format_rows(res, args.top, BASELINES), flush=True)
    if args.json:
        print(json.dumps(results if len(results) > 1 else results[0], indent=1))
    elif len(results) > 1:
        print(format_chunk_summary(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
