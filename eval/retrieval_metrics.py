"""Evidence-level retrieval metrics on a labeled query set (data/eval/retrieval.jsonl), through ir-measures.

Relevance is at the evidence level: each query lists the pieces of evidence it needs ("specs": a source plus
a substring, PDF page or knowledge-graph URI). A ranked list of chunks becomes a ranked list of evidence units
(the first chunk that holds a unit stands for it; other chunks stay as themselves), so recall@5 is the share of
a query's evidence found in its top 5 chunks, whatever the chunking.

Pure functions of (labels, store rows, rankings): nothing here searches. What drives a `Rag` over the set (the
search modes compared, the `localrag bench quality` entry point) is bench.retrieval_quality.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from localrag.index.jsonl import read_jsonl
from localrag.index.store import ChunkRow, DocumentRow, Store

ROOT = Path(__file__).resolve().parent.parent
QUERIES = ROOT / "data" / "eval" / "retrieval.jsonl"
METRICS = ("R@5", "R@10", "RR@10", "nDCG@10")
ChunkFacts = tuple[int, str, str, int | None, str | None]  # chunk id, source, text, page, kg_uri

__all__ = [
    "METRICS", "QUERIES", "ChunkFacts", "LabeledQuery", "best_floor", "chunk_rows", "evaluate_system",
    "evidence_units", "load_queries", "measure", "resolve", "spec_matches", "unit_ranking",
]


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
    """The labeled queries; a malformed line is a ValueError naming the file and line (index.jsonl.JsonlError
    for one that is not a JSON object)."""
    items = []
    for n, obj in read_jsonl(path):
        try:
            items.append(LabeledQuery(obj["id"], obj["query"], obj.get("type", ""), list(obj.get("relevant", []))))
        except (TypeError, KeyError) as exc:
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


def chunk_rows(store: Store, collection_id: int) -> list[ChunkFacts]:
    """(chunk id, source, text, page, kg_uri) of every chunk of a collection, read once to resolve all specs."""
    with store.session() as s:
        return [(cid, source, text, page, kg_uri) for cid, source, text, page, kg_uri in s.execute(
            select(ChunkRow.id, DocumentRow.source, ChunkRow.text, ChunkRow.page, ChunkRow.kg_uri)
            .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .where(ChunkRow.collection_id == collection_id)
        ).all()]


def evidence_units(query_id: str, specs: list[dict[str, Any]], rows: list[ChunkFacts]) -> dict[int, list[str]]:
    """chunk id -> the evidence units (`query_id/n`, n the spec's index) that chunk holds. A spec that matches no
    chunk is a labelling error (ValueError), not a miss to be counted."""
    units: dict[int, list[str]] = {}
    for n, spec in enumerate(specs):
        hits = [cid for cid, source, text, page, uri in rows if spec_matches(spec, source, text, page, uri)]
        if not hits:
            raise ValueError(f"evidence {json.dumps(spec, ensure_ascii=False)} matches no chunk of the collection")
        for cid in hits:
            units.setdefault(cid, []).append(f"{query_id}/{n}")
    return units


def resolve(store: Store, collection_id: int, queries: list[LabeledQuery]) -> dict[str, dict[int, list[str]]]:
    """For each query: chunk id -> the evidence units (`qid/n`) that chunk holds."""
    rows = chunk_rows(store, collection_id)
    out: dict[str, dict[int, list[str]]] = {}
    for q in queries:
        try:
            out[q.id] = evidence_units(q.id, q.relevant, rows)
        except ValueError as exc:
            raise ValueError(f"query {q.id}: {exc}") from None
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
    scored: list[ir_measures.ScoredDoc] = []
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
