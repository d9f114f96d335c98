"""Retrieval quality on a labeled query set (data/eval/retrieval.jsonl), measured with ir-measures.

Relevance is at the evidence level: each query lists the pieces of evidence it needs ("specs": a source plus
a substring, PDF page or knowledge-graph URI). A ranked list of chunks becomes a ranked list of evidence units
(the first chunk that holds a unit stands for it; other chunks stay as themselves), so recall@5 is the share of
a query's evidence found in its top 5 chunks, whatever the chunking.

    python -m eval.retrieval_eval [--json] [--k 10]
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from localrag.index.store import ChunkRow, DocumentRow, Store

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "data" / "eval" / "retrieval.jsonl"
SAMPLE = ROOT / "data" / "sample"
METRICS = ("R@5", "R@10", "RR@10", "nDCG@10")


@dataclass
class LabeledQuery:
    id: str
    query: str
    type: str
    relevant: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.relevant)


def load_queries(path: Path = QUERIES) -> list[LabeledQuery]:
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            items.append(LabeledQuery(obj["id"], obj["query"], obj.get("type", ""), list(obj.get("relevant", []))))
        except (ValueError, KeyError) as exc:
            raise ValueError(f"{path}:{n}: not a labeled query ({exc})") from None
    return items


def spec_matches(spec: dict[str, Any], source: str, text: str, page: int | None, kg_uri: str | None) -> bool:
    if Path(source).name != spec["source"]:
        return False
    if "contains" in spec and spec["contains"].casefold() not in " ".join(text.split()).casefold():
        return False
    if "page" in spec and page != spec["page"]:
        return False
    return not ("uri" in spec and kg_uri != spec["uri"])


def resolve(store: Store, collection_id: int, queries: list[LabeledQuery]) -> dict[str, dict[int, list[str]]]:
    """For each query: chunk id -> the evidence units (`qid/n`) that chunk holds."""
    with store.session() as s:
        rows = s.execute(
            select(ChunkRow.id, DocumentRow.source, ChunkRow.text, ChunkRow.page, ChunkRow.kg_uri)
            .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .where(ChunkRow.collection_id == collection_id)
        ).all()
    out: dict[str, dict[int, list[str]]] = {}
    for q in queries:
        units: dict[int, list[str]] = {}
        for n, spec in enumerate(q.relevant):
            found = False
            for cid, source, text, page, uri in rows:
                if spec_matches(spec, source, text, page, uri):
                    units.setdefault(cid, []).append(f"{q.id}/{n}")
                    found = True
            if not found:
                raise ValueError(f"query {q.id}: evidence {spec} matches no chunk of the collection")
        out[q.id] = units
    return out


def unit_ranking(ranked_chunks: Iterable[int], units: dict[int, list[str]]) -> list[str]:
    """Chunk ids best first -> evidence units and other chunks best first (each unit once)."""
    seen: set[str] = set()
    out: list[str] = []
    for cid in ranked_chunks:
        mapped = units.get(cid)
        if not mapped:
            out.append(f"chunk:{cid}")
            continue
        for u in mapped:
            if u not in seen:
                seen.add(u)
                out.append(u)
    return out


def measure(
    queries: list[LabeledQuery], units: dict[str, dict[int, list[str]]], run: dict[str, list[int]],
    metrics: Iterable[str] = METRICS,
) -> dict[str, Any]:
    """ir-measures over the answerable queries: the mean of each metric, and per query type."""
    import ir_measures

    measures = [ir_measures.parse_measure(m) for m in metrics]
    answerable = [q for q in queries if q.answerable]
    qrels = [ir_measures.Qrel(q.id, f"{q.id}/{n}", 1) for q in answerable for n in range(len(q.relevant))]
    scored = []
    for q in answerable:
        ranked = unit_ranking(run.get(q.id, []), units[q.id])
        scored.extend(ir_measures.ScoredDoc(q.id, d, float(len(ranked) - r)) for r, d in enumerate(ranked))
    per_query: dict[str, dict[str, float]] = {q.id: {str(m): 0.0 for m in measures} for q in answerable}
    for m in ir_measures.iter_calc(measures, qrels, scored):
        per_query[m.query_id][str(m.measure)] = float(m.value)
    overall = {str(m): statistics.fmean(pq[str(m)] for pq in per_query.values()) for m in measures}
    by_type: dict[str, dict[str, float]] = {}
    for t in sorted({q.type for q in answerable}):
        ids = [q.id for q in answerable if q.type == t]
        by_type[t] = {str(m): statistics.fmean(per_query[i][str(m)] for i in ids) for m in measures}
        by_type[t]["n"] = len(ids)
    return {"overall": overall, "by_type": by_type, "per_query": per_query, "n": len(answerable)}


def best_floor(
    top_relevance: dict[str, float], queries: list[LabeledQuery], negatives: tuple[str, ...] = ("unanswerable",)
) -> dict[str, Any]:
    """The relevance floor that best separates answerable queries (top hit at or above it) from the queries of
    the `negatives` types (top hit below it), with its accuracy and the medians on each side."""
    pairs = [(top_relevance.get(q.id, 0.0), q.answerable) for q in queries if q.answerable or q.type in negatives]
    candidates = sorted({round(r, 3) for r, _ in pairs})
    best = (0.0, -1.0)
    for floor in candidates:
        acc = sum((r >= floor) == ans for r, ans in pairs) / len(pairs)
        if acc > best[1]:
            best = (floor, acc)
    ans = [r for r, a in pairs if a]
    un = [r for r, a in pairs if not a]
    return {
        "floor": best[0], "accuracy": best[1],
        "answerable_top1_median": statistics.median(ans) if ans else None,
        "unanswerable_top1_median": statistics.median(un) if un else None,
        "unanswerable_top1_max": max(un) if un else None,
        "answerable_below_floor": sum(r < best[0] for r in ans),
    }


def evaluate_system(
    search: Callable[[str], list[Any]], queries: list[LabeledQuery], units: dict[str, dict[int, list[str]]],
) -> dict[str, Any]:
    """Run `search(query) -> hits` (objects with chunk_id, optional relevance) over every query and measure."""
    run: dict[str, list[int]] = {}
    top_rel: dict[str, float] = {}
    for q in queries:
        hits = search(q.query)
        run[q.id] = [h.chunk_id for h in hits]
        if hits and hasattr(hits[0], "relevance"):
            top_rel[q.id] = float(hits[0].relevance)
    out = measure(queries, units, run)
    if top_rel:
        out["floor_unanswerable"] = best_floor(top_rel, queries, ("unanswerable",))
        out["floor_offtopic"] = best_floor(top_rel, queries, ("offtopic",))
    return out


SYSTEMS: dict[str, dict[str, Any]] = {
    "lexical": {"mode": "lexical"},
    "dense": {"mode": "dense"},
    "hybrid-rrf": {"mode": "hybrid", "fusion": "rrf"},
    "hybrid-rrf-k60": {"mode": "hybrid", "fusion": "rrf", "rrf_k": 60.0},
    "hybrid-convex": {"mode": "hybrid", "fusion": "convex"},
}


def run_quality(rag: Any, collection: str = "default", k: int = 10, queries_path: Path = QUERIES,
                systems: dict[str, dict[str, Any]] | None = None, rerank: bool = False) -> dict[str, Any]:
    """Evaluate our search modes (and the reranked hybrid when `rerank`) on the labeled set."""
    queries = load_queries(queries_path)
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
    ap.add_argument("--data-dir", type=Path, help="use this data dir (its collection must hold data/sample)")
    ap.add_argument("--reranker", help="also evaluate hybrid reranked by this CrossEncoder id or folder")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rag = Rag.open(args.data_dir or Path(tmp), reranker_model=args.reranker)
        if args.data_dir is None:
            rag.ingest([SAMPLE])
        report = run_quality(rag, k=args.k, rerank=bool(args.reranker))
        rag.close()
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_table(report))
        print("\nrelevance floor that best separates answerable queries from the others (top-1 relevance):")
        for name, r in report["systems"].items():
            for key in ("floor_offtopic", "floor_unanswerable"):
                f = r.get(key)
                if f:
                    print(f"  {name:<20} vs {key[6:]:<13} floor {f['floor']:.3f}  accuracy {f['accuracy']:.3f}  "
                          f"median top-1 answerable {f['answerable_top1_median']:.3f} / other "
                          f"{f['unanswerable_top1_median']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
