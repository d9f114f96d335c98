"""Retrieval quality of our search modes on the labeled query set (data/eval/retrieval.jsonl): recall@5/10, MRR@10
and nDCG@10 through ir-measures, and the relevance floor that best separates answerable questions from the others.

    python -m bench.retrieval_quality [--corpus sample|articles|python-docs|python-howto]
        [--split dev|test] [--json] [--k 10] [--data-dir DIR] [--reranker MODEL]
    (or: localrag bench quality)

The measures themselves (evidence specs, unit rankings, ir-measures) are pure functions in
localrag.eval.retrieval_metrics and are re-exported here; this module drives a `Rag`'s search over the set.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from localrag.eval.retrieval_metrics import (
    METRICS,
    QUERIES,
    LabeledQuery,
    best_floor,
    chunk_rows,
    evaluate_system,
    evidence_units,
    load_queries,
    measure,
    resolve,
    spec_matches,
    unit_ranking,
)

__all__ = [
    "METRICS", "QUERIES", "SAMPLE", "SYSTEMS", "LabeledQuery", "best_floor", "chunk_rows", "corpora",
    "evaluate_system", "evidence_units", "format_table", "load_queries", "load_split", "main", "measure",
    "open_corpus", "resolve", "run_quality", "spec_matches", "unit_ranking",
]

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
EVAL = ROOT / "data" / "eval"
SPLITS = ("dev", "test")


def corpora() -> list[str]:
    """The labelled corpora usable here (bench.corpora): those whose question file exists, and for
    python-docs and python-howto only where Debian's python3-doc is installed."""
    from bench import corpora as cs

    out = []
    for name in cs.CORPORA:
        if not all(p.is_file() for p, _ in cs.QUESTION_SETS[name]):
            continue
        try:
            if name in cs.PYTHON_DOCS_CORPORA:  # python-docs, python-howto
                cs.find_python_docs()
            elif name == "articles" and not cs.ARTICLES.is_dir():
                continue
        except cs.CorpusError:
            continue
        out.append(name)
    return out


def load_split(name: str, split: str) -> list[LabeledQuery]:
    """The labelled questions of one split ("dev" or "test") of a corpus, as LabeledQuery."""
    from bench import corpora as cs

    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}: use dev or test")
    return [LabeledQuery(q["id"], q["query"], q["type"], q["relevant"]) for q in cs.load_question_set(name, split)]


def open_corpus(name: str, work: Path, embedder: Any = None, max_files: int | None = None,
                **settings: Any) -> Any:
    """A Rag over `work/data` with the corpus ingested into its default collection (unchanged files are skipped, so
    a kept `work` folder makes the next run fast). python-docs is prepared into `work/src` first."""
    from bench import corpora as cs
    from localrag.app.rag import Rag

    folder = cs.corpus_folder(name, dest=work / "src", max_files=max_files)
    rag = Rag.open(work / "data", embedder=embedder, **settings)
    report = rag.ingest([folder])
    if report.failed:
        raise RuntimeError(f"corpus {name}: {len(report.failed)} file(s) failed to ingest")
    return rag

SYSTEMS: dict[str, dict[str, Any]] = {
    "lexical": {"mode": "lexical"},
    "dense": {"mode": "dense"},
    "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid-rrf-k60": {"mode": "hybrid", "fusion": "rrf", "rrf_k": 60.0},
    "hybrid-convex": {"mode": "hybrid", "fusion": "convex"},  # the default: adaptive leg weights (Settings)
    "hybrid-convex-plain": {"mode": "hybrid", "fusion": "convex", "adaptive": "none"},  # fixed alpha weights
    # other candidates for the default, to compare on a test half (issue 14): stop 18's, the best dev objective of
    # the second pass, and the plain 0.5 mix before issue 14
    "hybrid-a0.5-gap5": {"mode": "hybrid", "fusion": "convex", "alpha": 0.5, "adaptive": "gap", "conf_top": 5},
    "hybrid-a0.4-ent5": {"mode": "hybrid", "fusion": "convex", "alpha": 0.4, "adaptive": "entropy", "conf_top": 5},
    "hybrid-a0.5-plain": {"mode": "hybrid", "fusion": "convex", "alpha": 0.5, "adaptive": "none"},
}


def run_quality(rag: Any, collection: str = "default", k: int = 10, queries_path: Path = QUERIES,
                systems: dict[str, dict[str, Any]] | None = None, rerank: bool = False,
                queries: list[LabeledQuery] | None = None) -> dict[str, Any]:
    """Evaluate our search modes (and the reranked hybrid when `rerank`) on the labeled set (`queries`, else the
    file `queries_path`)."""
    queries = load_queries(queries_path) if queries is None else queries
    coll = rag.store.collection(collection)
    if coll is None:
        raise ValueError(f"no collection {collection!r}: ingest data/sample first")
    units = resolve(rag.store, coll.id, queries)
    systems = dict(systems or SYSTEMS)
    if rerank:
        systems["hybrid-convex+rerank"] = {"mode": "hybrid", "fusion": "convex", "rerank": True}
    results = {}
    for name, kw in systems.items():
        kw = {"rerank": False, **kw}
        results[name] = evaluate_system(
            lambda q, kw=kw: rag.search(q, k=k, collection=collection, **kw), queries, units
        )
    return {"queries": len(queries), "answerable": sum(q.answerable for q in queries), "k": k, "systems": results}


def format_table(report: dict[str, Any]) -> str:
    lines = [f"{'system':<22}" + "".join(f"{m:>9}" for m in METRICS)]
    for name, r in report["systems"].items():
        lines.append(f"{name:<22}" + "".join(f"{r['overall'][m]:>9.3f}" for m in METRICS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    from localrag.app.rag import Rag

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--corpus", default="sample", help="sample (default), articles, python-docs or python-howto")
    ap.add_argument("--split", default="dev", choices=SPLITS, help="dev (tune here) or test (report only)")
    ap.add_argument("--data-dir", type=Path, help="use this data dir (its default collection must hold the corpus)")
    ap.add_argument("--reranker", help="also evaluate hybrid reranked by this CrossEncoder id or folder")
    args = ap.parse_args(argv)
    if args.corpus not in corpora():
        ap.error(f"--corpus {args.corpus!r} is not available here (available: {', '.join(corpora())})")
    queries = load_split(args.corpus, args.split)
    with tempfile.TemporaryDirectory() as tmp:
        if args.data_dir is None:
            rag = open_corpus(args.corpus, Path(tmp), reranker_model=args.reranker)
        else:
            rag = Rag.open(args.data_dir, reranker_model=args.reranker)
        report = run_quality(rag, k=args.k, rerank=bool(args.reranker), queries=queries)
        report.update(corpus=args.corpus, split=args.split)
        rag.close()
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_table(report))
        print("\nrelevance floor that best separates answerable queries from the others (top-1 relevance):")
        for name, r in report["systems"].items():
            for key in ("floor_offtopic", "floor_unanswerable"):
                f = r.get(key)
                if f and f["unanswerable_top1_median"] is not None:  # the set has questions of that type
                    print(f"  {name:<20} vs {key[6:]:<13} floor {f['floor']:.3f}  accuracy {f['accuracy']:.3f}  "
                          f"median top-1 answerable {f['answerable_top1_median']:.3f} / other "
                          f"{f['unanswerable_top1_median']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
