"""Semantic answer cache on a labeled pair set (data/eval/cache_pairs.jsonl): false hits and paraphrase hit rate.

For every pair, the cache starts empty, question `a` is answered (and cached), then `b` is asked. A hit on a
`near_duplicate` pair is a false hit (the cached answer would be wrong); a hit on a `paraphrase` pair is a useful
one, counted over the pairs whose `a` was answered (an "I don't know" is never cached).

Two runs:
- `--rules` (the question rules alone, `verify_equivalent`, at each of `--thresholds`, also scored as "cosine
  only" to show that the rules, not the threshold, keep false hits at zero), on the sample corpus;
- the default: the real route through `Rag.ask` on the pairs of `--split` (each pair's own corpus), the answer
  verified as well (same evidence, its quotes support the new question), over a grid of `--thresholds` ×
  `--margins` (lookups only), then at the settings' values through `Rag.ask` with timings. `--generative N` also
  answers the `a` of N paraphrase pairs with the LLM and asks `b`: a hit's time against a generated answer's,
  measured in the same run.

    python -m bench.cache [--split dev|test|all] [--thresholds ...] [--margins ...] [--generative N] [--json]
    python -m bench.cache --rules [--thresholds 0.95 0.90 0.85] [--verbose]
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from localrag.app.cache import SemanticCache, verify_equivalent
from localrag.index.embedder import Embedder
from localrag.index.jsonl import read_jsonl
from localrag.index.store import Store

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "data" / "eval" / "cache_pairs.jsonl"
SAMPLE = ROOT / "data" / "sample"
ARTICLES = ROOT.parent / "shared" / "corpora" / "articles"
CORPUS_FOLDERS = {"sample": SAMPLE, "articles": ARTICLES}
MARGINS = (0.03, 0.05, 0.07, 0.10, 0.15)
GRID_THRESHOLDS = (0.70, 0.75, 0.80, 0.85, 0.90)
TYPES = ("paraphrase", "near_duplicate")
THRESHOLDS = (0.95, 0.90, 0.85)


def load_pairs(path: Path = PAIRS) -> list[dict[str, Any]]:
    """The pair set, checked: unique ids, a known type, two different questions; errors name the file and line."""
    pairs: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, obj in read_jsonl(path):
        try:
            pid, kind, a, b = obj["id"], obj["type"], obj["a"], obj["b"]
        except KeyError as exc:
            raise ValueError(f"{path}:{n}: not a cache pair (missing {exc})") from None
        if (kind not in TYPES or pid in seen or not isinstance(a, str) or not isinstance(b, str) or not a.strip()
                or not b.strip() or a == b):
            raise ValueError(f"{path}:{n}: bad pair {pid!r} (type must be one of {TYPES}, ids unique, a != b)")
        seen.add(pid)
        pairs.append(obj)
    return pairs


def evaluate_pairs(store: Store, embedder: Embedder, collection_id: int, pairs: Sequence[dict[str, Any]],
                   thresholds: Sequence[float] = THRESHOLDS) -> dict[str, Any]:
    """Per threshold: false hits on near-duplicates and the paraphrase hit rate, with and without verification.

    Runs the real cache (put a, lookup b) in the given collection and clears that collection's cache entries
    before every pair: use a scratch copy of the store, never one whose cache you want to keep.
    """
    corpus_version = store.corpus_version(collection_id)
    vec_a = embedder.encode([p["a"] for p in pairs])
    vec_b = embedder.encode([p["b"] for p in pairs])
    terms = SemanticCache(store, embedder).rare_terms(collection_id, corpus_version)
    rows = []
    for p, va, vb in zip(pairs, vec_a, vec_b, strict=True):
        rows.append({"id": p["id"], "type": p["type"], "a": p["a"], "b": p["b"], "cosine": round(float(va @ vb), 4),
                     "reason": verify_equivalent(p["b"], p["a"], terms), "hit": {}})
    n_para = sum(r["type"] == "paraphrase" for r in rows)
    n_near = len(rows) - n_para
    report: dict[str, Any] = {"pairs": rows, "paraphrases": n_para, "near_duplicates": n_near, "thresholds": {}}
    for t in thresholds:
        cache = SemanticCache(store, embedder, threshold=t, ttl_s=None)
        for r, va, vb in zip(rows, vec_a, vec_b, strict=True):
            cache.clear(collection_id)
            cache.put(collection_id, corpus_version, "cache-eval", "cache-eval", r["a"], {"id": r["id"]}, embedding=va)
            hit = cache.lookup(collection_id, corpus_version, "cache-eval", "cache-eval", r["b"], embedding=vb)
            r["hit"][str(t)] = hit is not None
        cache.clear(collection_id)
        false_hits = [r["id"] for r in rows if r["type"] == "near_duplicate" and r["hit"][str(t)]]
        para_hits = [r["id"] for r in rows if r["type"] == "paraphrase" and r["hit"][str(t)]]
        cos_false = [r["id"] for r in rows if r["type"] == "near_duplicate" and r["cosine"] >= t]
        cos_para = [r["id"] for r in rows if r["type"] == "paraphrase" and r["cosine"] >= t]
        report["thresholds"][str(t)] = {
            "threshold": t,
            "false_hits": len(false_hits),
            "false_hit_ids": false_hits,
            "paraphrase_hits": len(para_hits),
            "paraphrase_hit_rate": round(len(para_hits) / n_para, 4) if n_para else None,
            "cosine_only_false_hits": len(cos_false),
            "cosine_only_false_hit_ids": cos_false,
            "cosine_only_paraphrase_hit_rate": round(len(cos_para) / n_para, 4) if n_para else None,
        }
    return report


def format_table(report: dict[str, Any]) -> str:
    n_near, n_para = report["near_duplicates"], report["paraphrases"]
    lines = [
        f"{n_para} paraphrase pairs, {n_near} near-duplicate pairs (data/eval/cache_pairs.jsonl)",
        "",
        "threshold | false hits | paraphrase hits | hit rate | cosine only: false hits | cosine only: hit rate",
        "---|---|---|---|---|---",
    ]
    for r in report["thresholds"].values():
        lines.append(
            f"{r['threshold']:.2f} | {r['false_hits']}/{n_near} | {r['paraphrase_hits']}/{n_para} | "
            f"{r['paraphrase_hit_rate']:.3f} | {r['cosine_only_false_hits']}/{n_near} | "
            f"{r['cosine_only_paraphrase_hit_rate']:.3f}"
        )
    return "\n".join(lines)


def format_pairs(report: dict[str, Any]) -> str:
    lines = ["id | type | cosine | verification"]
    for r in sorted(report["pairs"], key=lambda r: -r["cosine"]):
        lines.append(f"{r['id']} | {r['type']} | {r['cosine']:.4f} | {r['reason'] or 'equivalent'}")
    return "\n".join(lines)


def _lookup_only(rag: Any, question: str, collection: str, mode: str, threshold: float, margin: float,
                 fetched: list[Any]) -> Any:
    """The cache stage alone (app.ask.cached) at one threshold and margin: a hit or None; nothing is written.
    `fetched` holds the question's retrieval once made (shared by the grid's lookups)."""
    from localrag.app import ask

    opts = dataclasses.replace(rag.ask_options(question, collection, answer_mode=mode), cache_margin=margin)

    def fetch() -> Any:
        if not fetched:
            fetched.append(ask.retrieve(rag, opts, question, ask.Clock()))
        return fetched[0]

    old = rag.cache.threshold
    rag.cache.threshold = threshold
    try:
        return ask.cached(rag, opts, question, ask.model_id(rag, opts), ask.Clock(), fetch)
    finally:
        rag.cache.threshold = old


def evaluate_asks(rag: Any, pairs: Sequence[dict[str, Any]], mode: str = "extractive",
                  grid: Sequence[tuple[float, float]] = ()) -> dict[str, Any]:
    """Each pair through the real route: clear the collection's cache, ask `a`, then look `b` up at every (threshold,
    margin) of `grid` (lookups only) and ask `b` through `Rag.ask` at the settings' values, timed."""
    rows: list[dict[str, Any]] = []
    for p in pairs:
        coll = p["corpus"]
        rag.clear_cache(coll)
        t = time.perf_counter()
        a = rag.ask(p["a"], collection=coll, answer_mode=mode)
        row: dict[str, Any] = {"id": p["id"], "type": p["type"], "kind": p.get("kind", "general"), "corpus": coll,
                               "answered": not a.abstained, "a_s": round(time.perf_counter() - t, 4), "grid": {}}
        if row["answered"]:
            fetched: list[Any] = []
            for th, m in grid:
                row["grid"][f"{th}/{m}"] = _lookup_only(rag, p["b"], coll, mode, th, m, fetched) is not None
        coll_id = rag.store.collection(coll).id
        before = Counter(rag.cache.stats(coll_id)["refused_reasons"])
        t = time.perf_counter()
        b = rag.ask(p["b"], collection=coll, answer_mode=mode)
        row["b_s"] = round(time.perf_counter() - t, 4)
        row["hit"] = bool(b.cached)
        row["why"] = (b.cache or {}).get("why")
        row["refused"] = dict(Counter(rag.cache.stats(coll_id)["refused_reasons"]) - before)
        rows.append(row)
    return {"mode": mode, "pairs": rows, "grid": _grid_summary(rows, grid), "at_settings": _summary(rows, "hit")}


def _summary(rows: Sequence[dict[str, Any]], hit_of: Any) -> dict[str, Any]:
    get = (lambda r: r[hit_of]) if isinstance(hit_of, str) else hit_of
    near = [r for r in rows if r["type"] == "near_duplicate"]
    para = [r for r in rows if r["type"] == "paraphrase" and r["answered"]]
    false = [r["id"] for r in near if r["answered"] and get(r)]
    hits = [r for r in para if get(r)]
    by_kind: dict[str, list[int]] = {}
    for r in para:
        by_kind.setdefault(r["kind"], [0, 0])
        by_kind[r["kind"]][0] += bool(get(r))
        by_kind[r["kind"]][1] += 1
    return {"near_duplicates": len(near), "false_hits": len(false), "false_hit_ids": false,
            "paraphrases_answered": len(para), "paraphrase_hits": len(hits),
            "paraphrase_hit_rate": round(len(hits) / len(para), 4) if para else None,
            "missed_ids": [r["id"] for r in para if not get(r)],
            "by_kind": {k: f"{v[0]}/{v[1]}" for k, v in sorted(by_kind.items())}}


def _grid_summary(rows: Sequence[dict[str, Any]], grid: Sequence[tuple[float, float]]) -> dict[str, Any]:
    out = {}
    for th, m in grid:
        key = f"{th}/{m}"
        s = _summary(rows, lambda r, key=key: r["grid"].get(key, False))
        out[key] = {k: s[k] for k in ("false_hits", "false_hit_ids", "paraphrase_hits", "paraphrase_hit_rate")}
    return out


def timing_summary(report: dict[str, Any]) -> dict[str, Any]:
    """p50 seconds of a hit (b served from the cache) against a fresh answer (a) in the same run."""
    rows = report["pairs"]
    hit_s = [r["b_s"] for r in rows if r.get("hit")]
    fresh_s = [r["a_s"] for r in rows if r["answered"]]
    if not hit_s or not fresh_s:
        return {"hits": len(hit_s)}
    p50_hit, p50_fresh = statistics.median(hit_s), statistics.median(fresh_s)
    return {"hits": len(hit_s), "answers": len(fresh_s), "hit_p50_s": round(p50_hit, 4),
            "answer_p50_s": round(p50_fresh, 4), "hit_share": round(p50_hit / p50_fresh, 4)}


def format_asks(report: dict[str, Any]) -> str:
    s = report["at_settings"]
    lines = [f"mode {report['mode']}: {s['paraphrase_hits']}/{s['paraphrases_answered']} paraphrase hits "
             f"({s['paraphrase_hit_rate']}), {s['false_hits']}/{s['near_duplicates']} false hits "
             f"{s['false_hit_ids'] or ''} at the settings; by kind {s['by_kind']}; missed {s['missed_ids']}"]
    t = timing_summary(report)
    if "hit_share" in t:
        lines.append(f"time: hit p50 {t['hit_p50_s'] * 1000:.0f} ms vs answer p50 {t['answer_p50_s'] * 1000:.0f} ms "
                     f"= {t['hit_share'] * 100:.1f} % ({t['hits']} hits, {t['answers']} answers)")
    reasons: Counter[str] = Counter()
    for r in report["pairs"]:
        reasons.update(r["refused"])
    lines.append(f"refused by reason: {dict(reasons.most_common())}")
    if report["grid"]:
        lines += ["", "threshold/margin | false hits | paraphrase hits | rate", "---|---|---|---"]
        for key, g in report["grid"].items():
            lines.append(f"{key} | {g['false_hits']} {g['false_hit_ids'] or ''} | {g['paraphrase_hits']} | "
                         f"{g['paraphrase_hit_rate']}")
    return "\n".join(lines)


def _open_corpora(tmp: Path, names: set[str]) -> Any:
    from localrag.app.rag import Rag

    rag = Rag.open(tmp)
    for name in sorted(names):
        rag.ingest([CORPUS_FOLDERS[name]], collection=name)
    return rag


def _run_asks(args: Any, pairs: list[dict[str, Any]]) -> dict[str, Any]:
    import tempfile

    chosen = [p for p in pairs if args.split == "all" or p.get("split") == args.split]
    grid = [(t, m) for t in args.thresholds for m in args.margins]
    with tempfile.TemporaryDirectory() as tmp:
        rag = _open_corpora(Path(tmp), {p["corpus"] for p in chosen})
        try:
            out = {"split": args.split, "extractive": evaluate_asks(rag, chosen, "extractive", grid)}
            if args.generative:
                para = [p for p in chosen if p["type"] == "paraphrase"][: args.generative]
                out["generative"] = evaluate_asks(rag, para, "generative")
                out["generative"]["timing"] = timing_summary(out["generative"])
            out["extractive"]["timing"] = timing_summary(out["extractive"])
        finally:
            rag.close()
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    from localrag.app.rag import Rag

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--pairs", type=Path, default=PAIRS)
    ap.add_argument("--rules", action="store_true", help="the question rules alone, on the sample corpus")
    ap.add_argument("--split", choices=("dev", "test", "all"), default="test")
    ap.add_argument("--thresholds", type=float, nargs="+", default=None)
    ap.add_argument("--margins", type=float, nargs="+", default=list(MARGINS))
    ap.add_argument("--generative", type=int, default=0, metavar="N",
                    help="also time N paraphrase pairs with generated answers (the LLM)")
    ap.add_argument("--verbose", action="store_true", help="also list every pair with its cosine and verdict")
    args = ap.parse_args(argv)
    pairs = load_pairs(args.pairs)
    if not args.rules:
        args.thresholds = args.thresholds or list(GRID_THRESHOLDS)
        res = _run_asks(args, pairs)
        if args.json:
            print(json.dumps(res, indent=1))
        else:
            for mode in ("extractive", "generative"):
                if mode in res:
                    print(format_asks(res[mode]) + "\n")
        return 0
    args.thresholds = args.thresholds or list(THRESHOLDS)
    with tempfile.TemporaryDirectory() as tmp:
        rag = Rag.open(Path(tmp))
        try:
            rag.ingest([SAMPLE])
            coll = rag.store.collection("default")
            assert coll is not None
            report = evaluate_pairs(rag.store, rag.embedder, coll.id, pairs, args.thresholds)
        finally:
            rag.close()
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_table(report))
        if args.verbose:
            print()
            print(format_pairs(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
