"""Tuning the embedder on the corpus's own text (issue 23), measured on the TEST halves of labelled corpora.

Per corpus: ours (hybrid = the default search, dense, lexical) and txtai's hybrid over the same stored base vectors,
on the test questions; then `Rag.tune` (questions written by the configured instruct LLM from the chunk texts only,
never from the labelled questions) with the switch forced so that the tuned model is always measured; then ours
again with the collection's model. What `localrag tune` itself would have done is read from the tune's own report
(held-out recall@5 rose by more than the default `min_gain`): "after tune" is the tuned model where it would have
switched and the base model where it would not. Paired bootstrap intervals (tuned − base, and after-tune hybrid −
each leg) come from the per-question scores; the time of each stage, per 1,000 chunks.

    python -m bench.tune [--corpora sample,articles,python-howto,python-docs] [--max-chunks 400] [--epochs 3]
        [--work bench-out/tune] [--reuse] [--keep] [--json]

`--work/<corpus>` is kept between runs: the stored questions are reused (a run resumes where a killed one stopped)
and `--reuse` skips a corpus whose result.json is there. The collection goes back to its base model at the end
unless `--keep`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.retrieval import METRICS, make_txtai, paired_difference, peers_available
from bench.retrieval_quality import corpora, load_split, open_corpus

__all__ = ["acceptance", "main", "run_corpus"]

K = 10
LEGS = ("dense", "lexical")
OURS = {"hybrid": {"mode": "hybrid"}, "dense": {"mode": "dense"}, "lexical": {"mode": "lexical"}}
DEFAULT_CORPORA = ("sample", "articles", "python-howto", "python-docs")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _measure(rag: Any, queries: list[Any], units: Any, extra: dict[str, Callable[[str], list[int]]] | None = None
             ) -> dict[str, Any]:
    """Every system over every question: the overall means and the per-question scores (for the paired
    intervals)."""
    from localrag.eval.retrieval_metrics import measure

    systems: dict[str, Callable[[str], list[int]]] = {
        name: (lambda q, kw=kw: [h.chunk_id for h in rag.search(q, k=K, collection="default", rerank=False, **kw)])
        for name, kw in OURS.items()
    }
    systems.update(extra or {})
    out: dict[str, Any] = {}
    for name, fn in systems.items():
        run = {q.id: fn(q.query) for q in queries}
        m = measure(queries, units, run, METRICS)
        out[name] = {"overall": {x: m["overall"][x] for x in METRICS}, "per_query": m["per_query"]}
    return out


def run_corpus(corpus: str, work: Path, max_chunks: int | None, epochs: int, keep: bool,
               txtai: bool = True) -> dict[str, Any]:
    from localrag.app.tune import TrainSettings, TuneOptions
    from localrag.eval.retrieval_metrics import resolve

    queries = load_split(corpus, "test")
    t0 = time.perf_counter()
    rag = open_corpus(corpus, work)
    ingest_s = time.perf_counter() - t0
    try:
        coll = rag.store.collection("default")
        units = resolve(rag.store, coll.id, queries)
        extra: dict[str, Callable[[str], list[int]]] = {}
        skipped = peers_available().get("txtai hybrid") if txtai else "not requested"
        if not skipped:
            ids, texts = rag.store.chunk_texts(coll.id)
            emb = make_txtai(ids, texts, rag.store.embeddings(ids, coll.embedding_dim), rag.embedder)
            extra["txtai hybrid"] = lambda q: [int(r["id"]) for r in emb.search(q, K)]
        _log(f"[{corpus}] base model: {len(queries)} test questions")
        base = _measure(rag, queries, units, extra)
        last = {"stage": ""}

        def progress(stage: str, done: int, total: int) -> None:
            if stage != last["stage"] or done == total or done % 25 == 0:
                _log(f"[{corpus}]  {stage} {done}/{total}")
                last["stage"] = stage

        product_min_gain = TuneOptions().min_gain
        opts = TuneOptions(min_gain=-1.0, train=TrainSettings(epochs=epochs))  # always switch: measure it
        report = rag.tune(max_chunks=max_chunks, options=opts, progress=progress)
        _log(f"[{corpus}] tuned model: {len(queries)} test questions")
        tuned = _measure(rag, queries, units)
        if not keep:
            rag.tune(undo=True)
    finally:
        rag.close()
    gain = report["after"]["recall@5"] - report["before"]["recall@5"]
    switches = gain > product_min_gain
    after = {name: (tuned if switches else base)[name] for name in OURS}
    n_answerable = sum(q.answerable for q in queries)
    secs = report["seconds"]
    per_k = {
        "questions_min_per_1000_chunks": secs.get("questions", 0.0) / max(report["sampled"], 1) * 1000 / 60,
        "training_min_per_1000_questions": secs.get("training", 0.0) / max(report["trained_on"], 1) * 1000 / 60,
        "reembedding_min_per_1000_chunks": secs.get("re-embedding", 0.0) / max(report["chunks"], 1) * 1000 / 60,
    }
    return {
        "corpus": corpus, "split": "test", "queries": len(queries), "answerable": n_answerable,
        "ingest_s": round(ingest_s, 1), "txtai_skipped": skipped,
        "quality": {
            "base": {n: r["overall"] for n, r in base.items()},
            "tuned": {n: r["overall"] for n, r in tuned.items()},
            "after_tune": {n: r["overall"] for n, r in after.items()},
        },
        "tune_switches": switches,
        "paired": {
            "tuned_minus_base": {n: paired_difference(tuned[n]["per_query"], base[n]["per_query"])
                                 for n in ("hybrid", "dense")},
            "after_hybrid_minus_leg": {leg: paired_difference(after["hybrid"]["per_query"], after[leg]["per_query"])
                                       for leg in LEGS},
        },
        "cost": per_k,
        "tune": {k: v for k, v in report.items() if k not in ("model_dir",)},
    }


def acceptance(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Issue 23's acceptance on the test halves: after `localrag tune` (the product's own switch decision), the
    default hybrid >= the best single leg on every corpus; mean R@5 at least 3 points above the untuned hybrid; no
    corpus worse than untuned by more than one question on any metric."""
    out: dict[str, Any] = {"per_metric": {}}
    for m in METRICS:
        after = {c: r["quality"]["after_tune"]["hybrid"][m] for c, r in results.items()}
        best = {c: max(r["quality"]["after_tune"][leg][m] for leg in LEGS) for c, r in results.items()}
        untuned = {c: r["quality"]["base"]["hybrid"][m] for c, r in results.items()}
        out["per_metric"][m] = {
            "hybrid_after": after, "best_leg_after": best, "hybrid_untuned": untuned,
            "hybrid_ge_best_leg_every_corpus": all(after[c] >= best[c] - 1e-9 for c in results),
            "mean_after": statistics.fmean(after.values()), "mean_untuned": statistics.fmean(untuned.values()),
            "worse_by_more_than_one_question": [c for c, r in results.items()
                                                if untuned[c] - after[c] > 1.0 / r["answerable"] + 1e-9],
        }
        if all("txtai hybrid" in r["quality"]["base"] for r in results.values()):
            out["per_metric"][m]["mean_txtai"] = statistics.fmean(
                r["quality"]["base"]["txtai hybrid"][m] for r in results.values())
    r5 = out["per_metric"]["R@5"]
    out["mean_r5_gain_points"] = 100 * (r5["mean_after"] - r5["mean_untuned"])
    out["met"] = (all(v["hybrid_ge_best_leg_every_corpus"] for v in out["per_metric"].values())
                  and out["mean_r5_gain_points"] >= 3.0
                  and not any(v["worse_by_more_than_one_question"] for v in out["per_metric"].values()))
    return out


def format_report(results: dict[str, dict[str, Any]], acc: dict[str, Any]) -> str:
    lines = ["| corpus | system | base R@5 / MRR@10 / nDCG@10 | tuned | after `localrag tune` |",
             "|---|---|---|---|---|"]

    def fmt(q: dict[str, float] | None) -> str:
        return " / ".join(f"{q[m]:.3f}" for m in METRICS) if q else "–"

    for c, r in results.items():
        q = r["quality"]
        for n in ("hybrid", "dense", "lexical", "txtai hybrid"):
            if n in q["base"]:
                lines.append(f"| {c} | {n} | {fmt(q['base'][n])} | {fmt(q['tuned'].get(n))} | "
                             f"{fmt(q['after_tune'].get(n))} |")
        decision = "switches" if r["tune_switches"] else "keeps base"
        lines.append(f"| {c} | switch | held-out R@5 {r['tune']['before']['recall@5']:.3f} -> "
                     f"{r['tune']['after']['recall@5']:.3f}: {decision} | | |")
    lines.append("")
    for c, r in results.items():
        for n, d in r["paired"]["tuned_minus_base"].items():
            cells = ", ".join(f"{m} {v['diff']:+.3f} [{v['lo']:+.3f}, {v['hi']:+.3f}] ({v['ours_better']}/"
                              f"{v['other_better']})" for m, v in d.items())
            lines.append(f"{c} {n} tuned - base: {cells}")
    lines.append(f"mean R@5 gain (after tune - untuned hybrid): {acc['mean_r5_gain_points']:+.1f} points; "
                 f"acceptance met: {acc['met']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpora", default=",".join(DEFAULT_CORPORA), help="comma-separated corpus names")
    ap.add_argument("--corpus", help="one corpus (same as --corpora NAME)")
    ap.add_argument("--max-chunks", type=int, default=400, help="chunks asked per corpus, sampled by document")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("bench-out/tune"))
    ap.add_argument("--reuse", action="store_true", help="skip a corpus whose result.json is in --work/<corpus>")
    ap.add_argument("--no-txtai", action="store_true")
    ap.add_argument("--keep", action="store_true", help="leave the collections on the tuned model")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    names = [args.corpus] if args.corpus else [c for c in args.corpora.split(",") if c]
    missing = [c for c in names if c not in corpora()]
    if missing:
        ap.error(f"not available here: {', '.join(missing)} (available: {', '.join(corpora())})")
    results: dict[str, dict[str, Any]] = {}
    for c in names:
        out = args.work / c / "result.json"
        if args.reuse and out.exists():
            results[c] = json.loads(out.read_text(encoding="utf-8"))
            continue
        results[c] = run_corpus(c, args.work / c, args.max_chunks, args.epochs, args.keep, txtai=not args.no_txtai)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results[c], indent=1), encoding="utf-8")
    acc = acceptance(results)
    summary = {"corpora": {c: {k: v for k, v in r.items()} for c, r in results.items()}, "acceptance": acc,
               "max_chunks": args.max_chunks, "epochs": args.epochs}
    (args.work / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary, indent=1) if args.json else format_report(results, acc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
