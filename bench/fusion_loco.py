"""Leave-one-corpus-out (LOCO): which way of CHOOSING the fusion default carries over to a corpus it was not chosen on.

    python -m bench.fusion_loco [--corpora sample,articles,python-docs,python-howto] [--work DIR] [--json]

The fusion study (bench.fusion_study) picks the configuration with the best objective on the dev halves
of every corpus together; twice that pick did worse on the test halves than a plain mix. This asks the question on
dev data only. For each corpus in turn, a selection procedure chooses on the dev halves of the OTHER corpora, and its
choice is scored on the held-out corpus's dev half (per answerable question: the mean of R@5, RR@10 and nDCG@10, then
the mean over questions). A procedure's LOCO score is the mean of that over the folds. Procedures:

    best-objective  the study's rule: the best mean over corpora of mean(R@5, MRR@10, nDCG@10)
    best-floor      the best worst-corpus margin over that corpus's best single leg (the acceptance's shape)
    one-se          the simplest configuration whose objective is within one standard error of the best one's (the
                    paired difference per question, corpora weighted equally); simplicity: no adaptive weights, then
                    the fixed normalisation, then convex before RRF, then alpha nearest 0.5 / equal RRF weights and
                    k nearest 60, then depth 50
    plain           no choice at all: convex, fixed normalisation, alpha 0.5 (the default before issue 14)
    learned         a logistic regression over per-candidate features (each leg's fixed and min-max scores,
                    reciprocal ranks, entropy@5 confidence and its products with the scores), trained on the
                    candidates of the other corpora's answerable dev questions (evidence chunk = 1)

Each procedure is then also applied to all the corpora together: what it would set as the default. Test halves are
never read here. The protocol and the rule for using the result were written down before the first run
(docs/BENCHMARKS.md, "Choosing how to choose").
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench import fusion_study as fs
from localrag.eval.retrieval_metrics import measure
from localrag.retrieval import fusion as fu

PROCEDURES = ("best-objective", "best-floor", "one-se", "plain", "learned")
PLAIN = "convex fixed a=0.5 N=50"
DEPTH = 50  # the learned fusion's candidates (depth makes no difference on these corpora: the study)

Table = dict[str, dict[str, dict[str, tuple[float, float, float]]]]  # label -> corpus -> qid -> (R@5, RR@10, nDCG)


def per_question(queries: list[Any], units: dict[str, Any], run: dict[str, list[int]]) -> dict[str, tuple]:
    """Each answerable question's (R@5, RR@10, nDCG@10)."""
    pq = measure(queries, units, run, fs.SCORED)["per_query"]
    return {q: tuple(float(m[x]) for x in fs.SCORED) for q, m in pq.items()}


def score_table(data: dict[str, Any]) -> tuple[Table, dict[str, Any], dict[str, dict[str, dict[str, tuple]]]]:
    """Every grid configuration's per-question scores on every corpus; the configs by label; the single legs'."""
    table: Table = {}
    configs: dict[str, Any] = {}
    for depth, cfg in fs.grid():
        lab = fs.label(depth, cfg)
        configs[lab] = (depth, cfg)
        table[lab] = {name: per_question(queries, units, {qid: fs.order_of(c, s, cfg)
                                                          for qid, (c, s) in per_depth[depth].items()})
                      for name, (queries, units, per_depth, _) in data.items()}
    singles = {}
    for leg in ("dense", "lexical"):
        singles[leg] = {name: per_question(queries, units, {qid: getattr(c, leg)[:fs.K]
                                                           for qid, (c, _) in per_depth[max(fs.DEPTHS)].items()})
                        for name, (queries, units, per_depth, _) in data.items()}
    return table, configs, singles


def corpus_score(pq: dict[str, tuple]) -> float:
    """Mean over questions of the mean of the three metrics (= the mean of the three metric means)."""
    return statistics.fmean(statistics.fmean(v) for v in pq.values())


def means(per: dict[str, dict[str, tuple]], corpora: list[str]) -> dict[str, dict[str, float]]:
    """Per corpus, each metric's mean over its questions: the shape fusion_study's objective and floor read."""
    return {c: {x: statistics.fmean(v[i] for v in per[c].values()) for i, x in enumerate(fs.SCORED)}
            for c in corpora}


def objective(per: dict[str, dict[str, tuple]], corpora: list[str]) -> float:
    return fs.objective(means(per, corpora))


def floor(per: dict[str, dict[str, tuple]], singles: dict[str, Any], corpora: list[str]) -> float:
    return fs.floor_margin(means(per, corpora), {leg: means(v, corpora) for leg, v in singles.items()})


def simplicity(depth: int, cfg: fu.FusionConfig) -> tuple:
    """Smaller is simpler (see the module doc)."""
    if cfg.method == "convex":
        return (cfg.adaptive != "none", cfg.norm != "fixed", 0, abs(cfg.alpha - 0.5), 0.0, depth != DEPTH,
                cfg.conf_top != 5, cfg.alpha)
    w = dict(cfg.rrf_weights)
    return (False, False, 1, float(w.get("dense", 1.0) != w.get("lexical", 1.0)), abs(cfg.rrf_k - 60.0),
            depth != DEPTH, False, cfg.rrf_k)


def paired_se(a: dict[str, dict[str, tuple]], b: dict[str, dict[str, tuple]], corpora: list[str]) -> float:
    """Standard error of objective(a) - objective(b): per corpus the paired per-question differences, corpora
    weighted equally."""
    var = 0.0
    for c in corpora:
        d = [statistics.fmean(a[c][q]) - statistics.fmean(b[c][q]) for q in a[c]]
        var += (statistics.pvariance(d) / len(d)) if len(d) > 1 else 0.0
    return math.sqrt(var) / len(corpora)


def choose(procedure: str, table: Table, configs: dict[str, Any], singles: dict[str, Any],
           corpora: list[str]) -> str:
    """The label a procedure picks from the grid, looking only at `corpora`."""
    if procedure == "plain":
        return PLAIN
    objs = {lab: objective(per, corpora) for lab, per in table.items()}
    best = max(objs, key=lambda lab: (objs[lab], -simplicity(*configs[lab])[0]))
    if procedure == "best-objective":
        return best
    if procedure == "best-floor":
        legs = {leg: means(v, corpora) for leg, v in singles.items()}  # once, not per configuration
        return max(table, key=lambda lab: (fs.floor_margin(means(table[lab], corpora), legs), objs[lab]))
    if procedure == "one-se":
        within = [lab for lab in table
                  if objs[best] - objs[lab] <= paired_se(table[best], table[lab], corpora) + 1e-12]
        return min(within, key=lambda lab: (simplicity(*configs[lab]), -objs[lab]))
    raise ValueError(f"unknown procedure {procedure!r}")


# --- the learned fusion ---------------------------------------------------------------------------------------
FEATURES = ("dense_fixed", "lexical_fixed", "dense_minmax", "lexical_minmax", "dense_rr", "lexical_rr",
            "dense_conf", "lexical_conf", "dense_conf_x_minmax", "lexical_conf_x_minmax")


def candidate_features(cands: Any, scores: Any) -> tuple[list[int], np.ndarray]:
    """One row per candidate of one question (FEATURES)."""
    fixed = scores.normalized()
    raw = {"dense": scores.dense, "lexical": scores.lexical}
    ids = list(raw["dense"]) if raw["dense"] else list(raw["lexical"])
    mm = {leg: fu.normalize(raw[leg], "minmax") for leg in raw}
    ranks = {leg: {cid: r for r, cid in enumerate(getattr(cands, leg))} for leg in raw}
    conf = {leg: fu.confidence([raw[leg][c] for c in getattr(cands, leg) if c in raw[leg]], "entropy", 5)
            for leg in raw}
    rows = []
    for cid in ids:
        rr = {leg: (1.0 / (1 + ranks[leg][cid]) if cid in ranks[leg] else 0.0) for leg in raw}
        rows.append([fixed["dense"].get(cid, 0.0), fixed["lexical"].get(cid, 0.0), mm["dense"].get(cid, 0.0),
                     mm["lexical"].get(cid, 0.0), rr["dense"], rr["lexical"], conf["dense"], conf["lexical"],
                     conf["dense"] * mm["dense"].get(cid, 0.0), conf["lexical"] * mm["lexical"].get(cid, 0.0)])
    return ids, np.asarray(rows, dtype=np.float64)


def learned_train(data: dict[str, Any], corpora: list[str]) -> Any:
    """A standardised logistic regression on the candidates of the answerable dev questions of `corpora`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xs, ys = [], []
    for c in corpora:
        queries, units, per_depth, _ = data[c]
        for q in queries:
            if not q.answerable:
                continue
            cands, scores = per_depth[DEPTH][q.id]
            ids, x = candidate_features(cands, scores)
            xs.append(x)
            ys.append(np.array([1 if cid in units[q.id] else 0 for cid in ids]))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced"))
    model.fit(np.vstack(xs), np.concatenate(ys))
    return model


def learned_scores(model: Any, data: dict[str, Any], corpus: str) -> dict[str, tuple]:
    queries, units, per_depth, _ = data[corpus]
    run = {}
    for qid, (cands, scores) in per_depth[DEPTH].items():
        ids, x = candidate_features(cands, scores)
        z = model.decision_function(x)
        run[qid] = [ids[i] for i in sorted(range(len(ids)), key=lambda i: (-z[i], ids[i]))][:fs.K]
    return per_question(queries, units, run)


def loco(data: dict[str, Any], log: Any = None) -> dict[str, Any]:
    log = log or (lambda msg: None)
    names = list(data)
    log(f"scoring {len(fs.grid())} configurations per question ...")
    table, configs, singles = score_table(data)
    out: dict[str, Any] = {"corpora": names, "folds": {}, "loco": {}, "on_all": {}}
    for proc in PROCEDURES:
        per_fold = {}
        for held in names:
            train = [c for c in names if c != held]
            if proc == "learned":
                score = corpus_score(learned_scores(learned_train(data, train), data, held))
                per_fold[held] = {"choice": "learned", "score": score}
            else:
                lab = choose(proc, table, configs, singles, train)
                per_fold[held] = {"choice": lab, "score": corpus_score(table[lab][held])}
        out["folds"][proc] = per_fold
        out["loco"][proc] = statistics.fmean(f["score"] for f in per_fold.values())
        if proc == "learned":
            model = learned_train(data, names)
            coef = model[-1].coef_[0]
            out["on_all"][proc] = {"coefficients (standardised)": dict(zip(FEATURES, map(float, coef), strict=True))}
        else:
            lab = choose(proc, table, configs, singles, names)
            out["on_all"][proc] = {"choice": lab, "objective": objective(table[lab], names)}
        log(f"  {proc}: LOCO {out['loco'][proc]:.4f}")
    out["single_legs"] = {leg: {c: corpus_score(singles[leg][c]) for c in names} for leg in singles}
    return out


def format_report(res: dict[str, Any]) -> str:
    names = res["corpora"]
    lines = [f"{'procedure':<16}{'LOCO':>8}" + "".join(f"{'held out: ' + n:>44}" for n in names)]
    for proc in PROCEDURES:
        folds = res["folds"][proc]
        lines.append(f"{proc:<16}{res['loco'][proc]:>8.4f}" + "".join(
            f"{folds[n]['score']:>8.4f} {folds[n]['choice'][:34]:>35}" for n in names))
    for leg, per in res["single_legs"].items():
        lines.append(f"{leg + ' only':<16}{statistics.fmean(per.values()):>8.4f}" + "".join(
            f"{per[n]:>8.4f} {'':>35}" for n in names))
    lines.append("applied to every corpus together:")
    for proc, r in res["on_all"].items():
        lines.append(f"  {proc:<16}" + (f"{r['choice']}  (objective {r['objective']:.4f})" if "choice" in r else
                                        json.dumps({k: round(v, 3) for k, v in
                                                    r["coefficients (standardised)"].items()})))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default=None, help="comma-separated corpus names (default: every one available)")
    ap.add_argument("--work", type=Path, help="keep the ingested corpora here (reused by the next run)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from bench.retrieval_quality import corpora
    from localrag.index.embedder import Embedder

    names = args.corpora.split(",") if args.corpora else corpora()
    if len(names) < 2:
        ap.error("leave-one-corpus-out needs at least two corpora")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        data = fs.collect(names, args.work or Path(tmp), embedder=Embedder(), log=log)
        res = loco(data, log=log)
    print(json.dumps(res, indent=1) if args.json else format_report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
