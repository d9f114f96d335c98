"""The search pipeline over one collection's indexes.

query -> dense top-N (FAISS) and lexical top-N (BM25), both pre-filtered by chunk id -> exact scores of both
kinds for every candidate -> fusion (RRF or convex) -> optional cross-encoder rerank of the top M ->
relevance floor -> top k -> optional knowledge-graph neighbour expansion.

Relevance: every hit carries `relevance` in [0, 1], comparable across queries (RRF values are not): the cosine
similarity (clipped at 0) for dense, BM25 divided by the query's maximum attainable BM25 for lexical, their
convex combination (weight `alpha` on dense) for hybrid, and the cross-encoder's probability when reranked.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from dataclasses import dataclass, field
from pathlib import PurePath

import numpy as np
from sqlalchemy import select

from localrag.index.embedder import Embedder
from localrag.index.indexes import CollectionIndexes
from localrag.index.store import ChunkRow, DocumentRow, Store
from localrag.retrieval import fusion as fuse
from localrag.retrieval.kg import expand
from localrag.retrieval.rerank import Reranker
from localrag.retrieval.types import Filters, Hit, SearchResults

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "lexical")
FUSIONS = ("rrf", "convex")


class SearchError(ValueError):
    """A search that cannot run as asked; the message says what to change."""


@dataclass
class SearchParams:
    k: int = 5
    mode: str = "hybrid"
    fusion: str = "convex"
    candidates: int = 50  # N per leg
    rrf_k: float = 5.0
    weights: dict[str, float] = field(default_factory=lambda: {"dense": 1.0, "lexical": 1.0})
    alpha: float = 0.5  # convex weight of dense, and the dense share of hybrid relevance
    min_relevance: float = 0.0
    rerank_top: int = 20  # M fused candidates handed to the cross-encoder
    expand: bool = False
    max_neighbours: int = 8

    def check(self) -> None:
        if self.mode not in MODES:
            raise SearchError(f"unknown mode {self.mode!r}: use {', '.join(MODES)}")
        if self.fusion not in FUSIONS:
            raise SearchError(f"unknown fusion {self.fusion!r}: use {', '.join(FUSIONS)}")
        if self.k < 1:
            raise SearchError("k must be at least 1")
        if self.candidates < 1:
            raise SearchError("candidates must be at least 1")
        if not 0.0 <= self.alpha <= 1.0:
            raise SearchError("alpha must be between 0 and 1")
        if not 0.0 <= self.min_relevance <= 1.0:
            raise SearchError("min_relevance must be between 0 and 1")


def source_matches(source: str, patterns: list[str]) -> bool:
    name = PurePath(source).name
    return any(
        fnmatch.fnmatchcase(source, p) or fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(source, "*/" + p)
        for p in patterns
    )


def allowed_chunk_ids(store: Store, collection_id: int, filters: Filters) -> np.ndarray:
    """Chunk ids that pass the filters (sorted); computed before ranking so that k hits still come back."""
    with store.session() as s:
        q = select(DocumentRow.id, DocumentRow.source).where(
            DocumentRow.collection_id == collection_id, DocumentRow.status == "ok"
        )
        if filters.kinds:
            q = q.where(DocumentRow.kind.in_(filters.kinds))
        docs = s.execute(q).all()
        doc_ids = [d for d, src in docs if not filters.sources or source_matches(src, filters.sources)]
        ids: list[int] = []
        for start in range(0, len(doc_ids), 500):
            part = doc_ids[start : start + 500]
            ids.extend(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(part))))
    return np.array(sorted(ids), dtype=np.int64)


class Searcher:
    """Runs one search against indexes that reflect one corpus_version."""

    def __init__(self, store: Store, embedder: Embedder, indexes: CollectionIndexes,
                 reranker: Reranker | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.idx = indexes
        self.reranker = reranker

    def search(self, query: str, params: SearchParams, filters: Filters | None = None) -> SearchResults:
        t_start = time.perf_counter()
        params.check()
        filters = filters or Filters()
        notes: list[str] = []
        timings: dict[str, float] = {}
        res = SearchResults(
            query=query, mode=params.mode, fusion=params.fusion if params.mode == "hybrid" else None,
            reranker=self.reranker.model_id if self.reranker else None, expanded=params.expand,
            corpus_version=self.idx.version,
        )
        vectors, lexical = self.idx.vectors, self.idx.lexical
        if vectors.ntotal == 0:
            res.notes.append("the collection has no chunks yet: ingest some documents first")
            return res

        allowed: np.ndarray | None = None
        if filters.active:
            t = time.perf_counter()
            allowed = allowed_chunk_ids(self.store, self.idx.collection_id, filters)
            timings["filter"] = time.perf_counter() - t
            if len(allowed) == 0:
                res.notes.append("no documents match the filters")
                res.timings = {**timings, "total": time.perf_counter() - t_start}
                return res

        use_dense = params.mode in ("hybrid", "dense")
        use_lexical = params.mode in ("hybrid", "lexical")
        n = max(params.candidates, params.k)  # k hits come back whenever k chunks pass the filters

        # --- dense leg ---------------------------------------------------------------------------------------
        dense_rank: list[int] = []
        dense_score: dict[int, float] = {}
        qv = None
        if use_dense:
            t = time.perf_counter()
            n_tokens = self.embedder.token_counts([query])[0]
            limit = self.embedder.max_tokens - 2
            if n_tokens > limit:
                msg = (f"the query is {n_tokens} tokens long; the embedding model reads the first {limit}, so the "
                       "dense search used a truncated query (BM25 used all of it)")
                notes.append(msg)
                log.warning(msg)
            qv = self.embedder.encode([query])
            timings["embed"] = time.perf_counter() - t
            t = time.perf_counter()
            scores, ids = vectors.search(qv, n, allowed_ids=allowed)
            for s_, i in zip(scores[0], ids[0], strict=True):
                if i >= 0:
                    dense_rank.append(int(i))
                    dense_score[int(i)] = float(s_)
            timings["dense"] = time.perf_counter() - t

        # --- lexical leg -------------------------------------------------------------------------------------
        lex_rank: list[int] = []
        lex_all: np.ndarray | None = None
        lex_max = 0.0
        if use_lexical:
            t = time.perf_counter()
            lex_all = lexical.scores(query)
            lex_max = lexical.max_score(query)
            mask = None if allowed is None else np.isin(lexical.ids, allowed, assume_unique=True)
            s_top, i_top = lexical.search(query, n, allowed=mask, scores=lex_all)
            lex_rank = [int(i) for i in i_top]
            timings["lexical"] = time.perf_counter() - t
            if not lex_rank:
                notes.append(
                    "no query word occurs in the collection (after dropping stopwords)"
                    + ("; lexical search found nothing" if params.mode == "lexical" else "")
                )

        # --- exact scores of both kinds for every candidate, then fusion ----------------------------------------
        t = time.perf_counter()
        cand = list(dict.fromkeys(dense_rank + lex_rank))
        if not cand:
            res.notes.extend(notes)
            res.timings = {**timings, "total": time.perf_counter() - t_start}
            return res
        cand_arr = np.array(cand, dtype=np.int64)
        dense_norm: dict[int, float] = {}
        if use_dense:
            missing = [c for c in cand if c not in dense_score]
            if missing:
                try:
                    sims = vectors.vectors(np.array(missing, dtype=np.int64)) @ qv[0]
                except RuntimeError as exc:  # BM25 named a chunk FAISS lacks: the pair is out of step
                    raise StaleIndex(missing) from exc
                dense_score.update({c: float(v) for c, v in zip(missing, sims, strict=True)})
            dense_norm = {c: min(1.0, max(0.0, dense_score[c])) for c in cand}
        lex_score: dict[int, float] = {}
        lex_norm: dict[int, float] = {}
        if use_lexical and lex_all is not None:
            pos = lexical.positions(cand_arr)
            raw = np.where(pos >= 0, lex_all[np.maximum(pos, 0)], 0.0)
            lex_score = {c: float(v) for c, v in zip(cand, raw, strict=True)}
            norm = lexical.normalized(query, raw) if lex_max > 0 else np.zeros(len(cand), np.float32)
            lex_norm = {c: float(v) for c, v in zip(cand, norm, strict=True)}
        normalized = {}
        if use_dense:
            normalized["dense"] = dense_norm
        if use_lexical:
            normalized["lexical"] = lex_norm
        relevance = fuse.convex(normalized, params.alpha)
        if params.mode == "hybrid" and params.fusion == "rrf":
            fused = fuse.rrf({"dense": dense_rank, "lexical": lex_rank}, k=params.rrf_k, weights=params.weights)
        else:
            fused = relevance
        order = fuse.ranking(fused)
        timings["fusion"] = time.perf_counter() - t

        # --- rerank ------------------------------------------------------------------------------------------------
        rerank_score: dict[int, float] = {}
        texts: dict[int, str] = {}
        if self.reranker is not None:
            t = time.perf_counter()
            head = order[: max(params.k, params.rerank_top)]
            texts = self._texts(head)
            head = [c for c in head if c in texts]
            scores = self.reranker.score(query, [texts[c] for c in head])
            rerank_score = {c: float(v) for c, v in zip(head, scores, strict=True)}
            order = sorted(head, key=lambda c: (-rerank_score[c], order.index(c)))
            timings["rerank"] = time.perf_counter() - t

        # --- floor, top k, hydrate -----------------------------------------------------------------------------
        final_rel = rerank_score if rerank_score else relevance
        kept = [c for c in order if final_rel.get(c, 0.0) >= params.min_relevance]
        if len(kept) < len(order) and params.min_relevance > 0 and len(kept) < params.k:
            notes.append(f"{len(order) - len(kept)} candidates fell below the relevance floor "
                         f"{params.min_relevance:g} and were dropped")
        top = kept[: params.k]
        t = time.perf_counter()
        hits = self._hydrate(top)
        timings["hydrate"] = time.perf_counter() - t
        fused_rank = {c: r for r, c in enumerate(fuse.ranking(fused), start=1)}
        dense_pos = {c: r for r, c in enumerate(dense_rank, start=1)}
        lex_pos = {c: r for r, c in enumerate(lex_rank, start=1)}
        rerank_pos = {c: r for r, c in enumerate(order, start=1)} if rerank_score else {}
        for h in hits:
            c = h.chunk_id
            if use_dense:
                h.scores["dense"] = dense_score[c]
                h.scores["dense_norm"] = dense_norm[c]
                if c in dense_pos:
                    h.ranks["dense"] = dense_pos[c]
            if use_lexical:
                h.scores["lexical"] = lex_score.get(c, 0.0)
                h.scores["lexical_norm"] = lex_norm.get(c, 0.0)
                if c in lex_pos:
                    h.ranks["lexical"] = lex_pos[c]
            h.scores["fused"] = fused[c]
            h.ranks["fused"] = fused_rank[c]
            if rerank_score:
                h.scores["rerank"] = rerank_score[c]
                h.ranks["rerank"] = rerank_pos[c]
            h.score = rerank_score.get(c, fused[c])
            h.relevance = final_rel.get(c, 0.0)
        if params.expand:
            t = time.perf_counter()
            expand(self.store, self.idx.collection_id, hits, params.max_neighbours)
            timings["expand"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - t_start
        for h in hits:
            h.timings = timings
        res.extend(hits)
        res.notes.extend(notes)
        res.timings = timings
        return res

    def _texts(self, ids: list[int]) -> dict[int, str]:
        with self.store.session() as s:
            return dict(s.execute(select(ChunkRow.id, ChunkRow.text).where(ChunkRow.id.in_(ids))).all())

    def _hydrate(self, ids: list[int]) -> list[Hit]:
        if not ids:
            return []
        with self.store.session() as s:  # plain columns: no ORM objects, and the embedding blobs stay on disk
            rows = s.execute(
                select(ChunkRow.id, ChunkRow.text, DocumentRow.source, DocumentRow.kind, ChunkRow.page,
                       ChunkRow.kg_uri, ChunkRow.label)
                .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
                .where(ChunkRow.id.in_(ids))
            ).all()
        by_id = {r[0]: Hit(r[0], r[1], r[2], r[3], page=r[4], kg_uri=r[5], label=r[6]) for r in rows}
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise StaleIndex(missing)
        return [by_id[i] for i in ids]


class StaleIndex(RuntimeError):
    """The indexes named chunks the store no longer has (a concurrent ingest committed): search again."""

    def __init__(self, missing: list[int]) -> None:
        super().__init__(f"{len(missing)} chunk(s) vanished during the search")
        self.missing = missing
