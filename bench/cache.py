"""Semantic answer cache on a labeled pair set (data/eval/cache_pairs.jsonl): false hits and paraphrase hit rate.

For every pair, the cache starts empty, stores question `a`, then looks up question `b`. A hit on a
`near_duplicate` pair is a false hit (the cached answer would be wrong); a hit on a `paraphrase` pair is a
useful one. Each threshold is also scored as if the cache had no verification ("cosine only"), to show that the
verification, not the threshold, keeps false hits at zero.

    python -m bench.cache [--json] [--pairs FILE] [--thresholds 0.95 0.90 0.85] [--verbose]
"""

from __future__ import annotations

import json
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


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    from localrag.app.rag import Rag

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--pairs", type=Path, default=PAIRS)
    ap.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    ap.add_argument("--verbose", action="store_true", help="also list every pair with its cosine and verdict")
    args = ap.parse_args(argv)
    pairs = load_pairs(args.pairs)
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
