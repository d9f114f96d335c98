"""The search pipeline over one collection's indexes, as named stages that can each be run and tested alone.

    scope       scope_ids           the kind / source-glob filters, resolved to chunk ids *before* ranking (so
                                    that k hits still come back when few chunks pass)
    candidates  candidates          dense top-N (FAISS) and lexical top-N (BM25), both restricted to the scope
                  embed_query, dense_leg, lexical_leg
    scores      score_candidates    exact scores of both kinds for every candidate, and their [0, 1] forms
    fusion      fuse_scores         RRF or the convex mix (normalisation, query-adaptive weights: fusion.fuse)
                                    -> one order, and the relevance of each candidate
    rerank      rerank.rerank_head  optional: the cross-encoder re-orders the fused top M
    filters     apply_floor         the relevance floor, then the cut to k
    (hydrate)                       chunk text and document fields from the store
    record      record_scores       per-stage scores and ranks written onto each Hit
    expansion   kg.expand           optional: knowledge-graph neighbours of RDF hits

`Searcher.search` only runs the stages in that order and times them (`SearchResults.timings`: filter, embed,
dense, lexical, fusion (scores + fusion), rerank, hydrate, expand, total).

Relevance: every hit carries `relevance` in [0, 1], comparable across queries (RRF values are not): the cosine
similarity (clipped at 0) for dense, BM25 divided by the query's maximum attainable BM25 for lexical, their
convex combination (weight `alpha` on dense) for hybrid, and the cross-encoder's probability when reranked.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import PurePath
from typing import Any

import numpy as np
from sqlalchemy import select

from localrag.index.embedder import Embedder
from localrag.index.indexes import CollectionIndexes
from localrag.index.lexical import LexicalIndex, QueryScores
from localrag.index.store import ChunkRow, DocumentRow, Store
from localrag.index.vector_index import VectorIndex
from localrag.retrieval import fusion as fuse
from localrag.retrieval.kg import expand
from localrag.retrieval.rerank import Reranker, rerank_head
from localrag.retrieval.types import Filters, Hit, SearchResults

log = logging.getLogger(__name__)



class Mode(StrEnum):
    """Which retrieval legs a search runs (`search_mode` setting)."""

    HYBRID = "hybrid"
    DENSE = "dense"
    LEXICAL = "lexical"


# the legs each mode runs; two are fused, one is ordered by its own fixed score (SearchParams.fusion_method)
_LEGS: dict[Mode, tuple[str, ...]] = {
    Mode.HYBRID: ("dense", "lexical"), Mode.DENSE: ("dense",), Mode.LEXICAL: ("lexical",),
}
MODES = tuple(Mode)
FUSIONS = fuse.METHODS


class SearchError(ValueError):
    """A search that cannot run as asked; the message says what to change."""


class StaleIndex(RuntimeError):
    """The indexes named chunks the store no longer has (a concurrent ingest committed): search again."""

    def __init__(self, missing: list[int]) -> None:
        super().__init__(f"{len(missing)} chunk(s) vanished during the search")
        self.missing = missing


@dataclass
class SearchParams:
    k: int = 5
    mode: str = "hybrid"  # Mode
    fusion: str = "convex"  # fusion.Fusion
    candidates: int = 50  # N per leg
    rrf_k: float = 5.0
    weights: dict[str, float] = field(default_factory=lambda: {"dense": 1.0, "lexical": 1.0})
    alpha: float = 0.5  # convex: the prior weight of dense in the order (fusion.FusionConfig)
    norm: str = "fixed"  # convex: how each leg's scores are normalised before mixing (fusion.NORMS)
    adaptive: str = "none"  # convex: query-adaptive leg weights (fusion.ADAPTIVE)
    conf_top: int = 10  # convex: the top scores each leg's confidence looks at
    relevance_alpha: float = 0.5  # the dense share of hybrid relevance (what relevance floors compare)
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
        try:
            self.fusion_config.check()  # the fusion settings' own rules (norm, adaptive, alpha, conf_top)
        except ValueError as exc:
            raise SearchError(str(exc)) from None
        if not 0.0 <= self.min_relevance <= 1.0:
            raise SearchError("min_relevance must be between 0 and 1")

    @property
    def fusion_config(self) -> fuse.FusionConfig:
        """The fusion part of these parameters, as retrieval.fusion describes it."""
        return fuse.FusionConfig(self.fusion, self.norm, self.alpha, self.adaptive, self.conf_top, self.rrf_k,
                                 tuple(self.weights.items()), self.relevance_alpha)

    @property
    def legs(self) -> tuple[str, ...]:
        """The retrieval legs the mode runs: ("dense", "lexical") for hybrid."""
        return _LEGS[Mode(self.mode)]

    @property
    def fusion_method(self) -> str | None:
        """The fusion that orders the candidates: the configured one when the mode runs two legs, none for one."""
        return self.fusion if len(self.legs) > 1 else None


# --- stage: scope (kind and source filters, before ranking) -------------------------------------------------------
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


_SCOPES: OrderedDict[tuple[Any, ...], np.ndarray] = OrderedDict()
_SCOPES_LOCK = threading.Lock()
SCOPE_CACHE_SIZE = 64


def scope_ids(store: Store, collection_id: int, version: int, filters: Filters) -> np.ndarray:
    """`allowed_chunk_ids`, remembered per (database, collection, corpus_version, filters): the same filters on the
    same corpus version always give the same ids, and resolving them reads every document row (38 ms at 10k chunks
    on busy cores). An ingest bumps the version, so the next search resolves them again."""
    key = (str(store.engine.url), collection_id, version, tuple(filters.kinds or ()), tuple(filters.sources or ()))
    with _SCOPES_LOCK:
        hit = _SCOPES.get(key)
        if hit is not None:
            _SCOPES.move_to_end(key)
            return hit
    ids = allowed_chunk_ids(store, collection_id, filters)
    ids.setflags(write=False)
    with _SCOPES_LOCK:
        _SCOPES[key] = ids
        while len(_SCOPES) > SCOPE_CACHE_SIZE:
            _SCOPES.popitem(last=False)
    return ids


# --- stage: candidates ------------------------------------------------------------------------------------------
@dataclass
class Candidates:
    """What the retrieval legs found: each leg's chunk ids best first, and what scoring them needs."""

    dense: list[int] = field(default_factory=list)  # dense leg, best first
    lexical: list[int] = field(default_factory=list)  # lexical leg, best first
    dense_scores: dict[int, float] = field(default_factory=dict)  # cosine of the dense leg's chunks
    query_vector: np.ndarray | None = None  # the embedded query (dim,), when the dense leg ran
    lexical_all: QueryScores | None = None  # the query's BM25 of any chunk (computed on demand), when run
    notes: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        """Every candidate once: the dense leg's order, then the lexical leg's new ones."""
        return list(dict.fromkeys(self.dense + self.lexical))


def embed_query(embedder: Embedder, query: str) -> tuple[np.ndarray, str | None]:
    """The query's unit vector (dim,), and a note when the model reads only the start of the query."""
    n_tokens = embedder.token_counts([query])[0]
    limit = embedder.max_tokens - 2
    note = None
    if n_tokens > limit:
        note = (f"the query is {n_tokens} tokens long; the embedding model reads the first {limit}, so the "
                "dense search used a truncated query (BM25 used all of it)")
        log.warning(note)
    return embedder.encode([query])[0], note


def dense_leg(
    vectors: VectorIndex, query_vector: np.ndarray, n: int, allowed: np.ndarray | None = None
) -> tuple[list[int], dict[int, float]]:
    """The top-n chunks by cosine similarity (ids best first, and their scores), within `allowed` ids. One query
    is searched on one OpenMP thread: FAISS gains nothing from more for a single query, and waking a team of
    threads costs several milliseconds on a busy machine (8 ms against 1.4 ms at 10k chunks on 2 shared cores)."""
    with one_faiss_thread():
        scores, ids = vectors.search(np.atleast_2d(query_vector), n, allowed_ids=allowed)
    ranked: list[int] = []
    by_id: dict[int, float] = {}
    for s_, i in zip(scores[0], ids[0], strict=True):
        if i >= 0:
            ranked.append(int(i))
            by_id[int(i)] = float(s_)
    return ranked, by_id


@contextmanager
def one_faiss_thread() -> Iterator[None]:
    """FAISS on one OpenMP thread for the block (the setting is per calling thread; restored after)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def lexical_leg(
    lexical: LexicalIndex, query: str, n: int, allowed: np.ndarray | None = None
) -> tuple[list[int], QueryScores]:
    """The top-n chunks by BM25 with a score above 0 (ids best first) within `allowed` ids, and the query's BM25 of
    any chunk on demand (for the scores stage). Reads the query terms' postings, not every chunk."""
    _, top = lexical.top(query, n, allowed)
    return [int(i) for i in top], lexical.query_scores(query)


def candidates(
    query: str, legs: Sequence[str], n: int, *, embedder: Embedder | None, vectors: VectorIndex,
    lexical: LexicalIndex, allowed: np.ndarray | None = None, timings: dict[str, float] | None = None,
) -> Candidates:
    """Run the legs named in `legs` ("dense", "lexical"), each taking its top n within `allowed`; stage times go
    into `timings` (embed, dense, lexical)."""
    timings = {} if timings is None else timings
    out = Candidates()
    if "dense" in legs:
        if embedder is None:
            raise ValueError("the dense leg needs an embedder")
        with timed(timings, "embed"):
            out.query_vector, note = embed_query(embedder, query)
        if note:
            out.notes.append(note)
        with timed(timings, "dense"):
            out.dense, out.dense_scores = dense_leg(vectors, out.query_vector, n, allowed)
    if "lexical" in legs:
        with timed(timings, "lexical"):
            out.lexical, out.lexical_all = lexical_leg(lexical, query, n, allowed)
        if not out.lexical:
            out.notes.append(
                "no query word occurs in the collection (after dropping stopwords)"
                + ("; lexical search found nothing" if tuple(legs) == ("lexical",) else "")
            )
    return out


# --- stage: scores ----------------------------------------------------------------------------------------------
@dataclass
class StageScores:
    """The scores stage's output: raw and [0, 1] scores of every candidate for each leg that ran (None: the leg did
    not run). Not eval.metrics.Scores, which holds an answer's metric scores."""

    ids: list[int]
    dense: dict[int, float] | None = None  # cosine similarity
    dense_norm: dict[int, float] | None = None  # cosine clipped to [0, 1]
    lexical: dict[int, float] | None = None  # BM25 (0 where the chunk has no query word)
    lexical_norm: dict[int, float] | None = None  # BM25 / the query's maximum attainable BM25, in [0, 1]

    def normalized(self) -> dict[str, dict[int, float]]:
        """The [0, 1] scores per leg that ran, as fusion takes them."""
        out = {}
        if self.dense_norm is not None:
            out["dense"] = self.dense_norm
        if self.lexical_norm is not None:
            out["lexical"] = self.lexical_norm
        return out


def normalize_dense(cosine: Mapping[int, float]) -> dict[int, float]:
    """Cosine similarity as relevance: clipped to [0, 1]."""
    return {c: min(1.0, max(0.0, s)) for c, s in cosine.items()}


def score_candidates(cands: Candidates, query: str, vectors: VectorIndex, lexical: LexicalIndex) -> StageScores:
    """Exact scores of both kinds for every candidate, also for those only the other leg found: a chunk BM25 found
    gets its cosine from its stored vector, a chunk FAISS found gets its BM25 (0 without a query word)."""
    ids = cands.ids
    out = StageScores(ids=ids)
    if cands.query_vector is not None:
        dense = {c: cands.dense_scores[c] for c in ids if c in cands.dense_scores}
        missing = [c for c in ids if c not in dense]
        if missing:
            try:
                sims = vectors.vectors(np.array(missing, dtype=np.int64)) @ cands.query_vector
            except RuntimeError as exc:  # BM25 named a chunk FAISS lacks: the pair is out of step
                raise StaleIndex(missing) from exc
            dense.update({c: float(v) for c, v in zip(missing, sims, strict=True)})
        out.dense = {c: dense[c] for c in ids}
        out.dense_norm = normalize_dense(out.dense)
    if cands.lexical_all is not None:
        raw = cands.lexical_all.of(np.array(ids, dtype=np.int64))
        out.lexical = {c: float(v) for c, v in zip(ids, raw, strict=True)}
        norm = lexical.normalized(query, raw)
        out.lexical_norm = {c: float(v) for c, v in zip(ids, norm, strict=True)}
    return out


# --- stage: fusion ----------------------------------------------------------------------------------------------
def fuse_scores(cands: Candidates, scores: StageScores, params: SearchParams) -> fuse.Fused:
    """The fusion stage with the search's parameters: RRF of the legs' rankings, or the convex mix of their
    `params.norm`-normalised scores weighted by `params.alpha` and, with `params.adaptive`, by each leg's
    confidence for this query."""
    raw = {name: v for name, v in (("dense", scores.dense), ("lexical", scores.lexical)) if v is not None}
    return fuse.fuse(scores.normalized(), {"dense": cands.dense, "lexical": cands.lexical},
                     method=params.fusion_method, alpha=params.alpha, rrf_k=params.rrf_k, weights=params.weights,
                     raw=raw, norm=params.norm, adaptive=params.adaptive, conf_top=params.conf_top,
                     relevance_alpha=params.relevance_alpha)


# --- stage: filters after ranking -------------------------------------------------------------------------------
def apply_floor(
    order: Sequence[int], relevance: Mapping[int, float], min_relevance: float, k: int
) -> tuple[list[int], list[str]]:
    """The first k ids of `order` whose relevance reaches `min_relevance`, and a note when the floor left fewer
    than k."""
    kept = [c for c in order if relevance.get(c, 0.0) >= min_relevance]
    notes = []
    if len(kept) < len(order) and min_relevance > 0 and len(kept) < k:
        notes.append(f"{len(order) - len(kept)} candidates fell below the relevance floor "
                     f"{min_relevance:g} and were dropped")
    return kept[:k], notes


# --- stage: record ----------------------------------------------------------------------------------------------
def record_scores(
    hits: Sequence[Hit], cands: Candidates, scores: StageScores, fused: fuse.Fused,
    reranked: tuple[list[int], dict[int, float]] | None = None,
) -> None:
    """Write each stage's score and 1-based rank onto the hits, then `score` (what the order is by: rerank, else
    fused) and `relevance` (rerank probability, else the convex relevance)."""
    rerank_order, rerank_score = reranked if reranked else ([], {})
    final_rel = rerank_score if rerank_score else fused.relevance
    fused_rank = {c: r for r, c in enumerate(fused.order, start=1)}
    dense_pos = {c: r for r, c in enumerate(cands.dense, start=1)}
    lex_pos = {c: r for r, c in enumerate(cands.lexical, start=1)}
    rerank_pos = {c: r for r, c in enumerate(rerank_order, start=1)} if rerank_score else {}
    for h in hits:
        c = h.chunk_id
        if scores.dense is not None and scores.dense_norm is not None:
            h.scores["dense"] = scores.dense[c]
            h.scores["dense_norm"] = scores.dense_norm[c]
            if c in dense_pos:
                h.ranks["dense"] = dense_pos[c]
        if scores.lexical is not None and scores.lexical_norm is not None:
            h.scores["lexical"] = scores.lexical.get(c, 0.0)
            h.scores["lexical_norm"] = scores.lexical_norm.get(c, 0.0)
            if c in lex_pos:
                h.ranks["lexical"] = lex_pos[c]
        h.scores["fused"] = fused.scores[c]
        h.ranks["fused"] = fused_rank[c]
        if rerank_score:
            h.scores["rerank"] = rerank_score[c]
            h.ranks["rerank"] = rerank_pos[c]
        h.score = rerank_score.get(c, fused.scores[c])
        h.relevance = final_rel.get(c, 0.0)


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Record the seconds the block took as `timings[stage]`."""
    t = time.perf_counter()
    yield
    timings[stage] = time.perf_counter() - t


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
        timings: dict[str, float] = {}
        res = SearchResults(
            query=query, mode=params.mode, fusion=params.fusion_method,
            reranker=self.reranker.model_id if self.reranker else None, expanded=params.expand,
            corpus_version=self.idx.version,
        )
        if self.idx.vectors.ntotal == 0:
            res.notes.append("the collection has no chunks yet: ingest some documents first")
            return res

        def done(notes: Sequence[str] = ()) -> SearchResults:
            res.notes.extend(notes)
            timings["total"] = time.perf_counter() - t_start
            res.timings = timings
            return res

        allowed: np.ndarray | None = None
        if filters.active:
            with timed(timings, "filter"):
                allowed = scope_ids(self.store, self.idx.collection_id, self.idx.version, filters)
            if len(allowed) == 0:
                return done(["no documents match the filters"])

        n = max(params.candidates, params.k)  # k hits come back whenever k chunks pass the filters
        cands = candidates(query, params.legs, n, embedder=self.embedder, vectors=self.idx.vectors,
                           lexical=self.idx.lexical, allowed=allowed, timings=timings)
        notes = list(cands.notes)
        if not cands.ids:
            return done(notes)

        with timed(timings, "fusion"):
            scores = score_candidates(cands, query, self.idx.vectors, self.idx.lexical)
            fused = fuse_scores(cands, scores, params)

        order = fused.order
        reranked: tuple[list[int], dict[int, float]] | None = None
        if self.reranker is not None:
            with timed(timings, "rerank"):
                head = order[: max(params.k, params.rerank_top)]
                reranked = rerank_head(self.reranker, query, head, self._texts(head))
            order = reranked[0]

        final_rel = reranked[1] if reranked and reranked[1] else fused.relevance
        top, floor_notes = apply_floor(order, final_rel, params.min_relevance, params.k)
        notes.extend(floor_notes)
        with timed(timings, "hydrate"):
            hits = self._hydrate(top)
        record_scores(hits, cands, scores, fused, reranked)
        if params.expand:
            with timed(timings, "expand"):
                expand(self.store, self.idx.collection_id, hits, params.max_neighbours)
        for h in hits:
            h.timings = timings
        res.extend(hits)
        return done(notes)

    def _texts(self, ids: list[int]) -> dict[int, str]:
        with self.store.session() as s:
            return dict(s.execute(select(ChunkRow.id, ChunkRow.text).where(ChunkRow.id.in_(ids))).all())

    def _hydrate(self, ids: list[int]) -> list[Hit]:
        if not ids:
            return []
        rows = self.store.hit_rows(ids)  # plain columns: no ORM objects, and the embedding blobs stay on disk
        by_id: dict[int, Hit] = {}
        for r in rows:
            # pages read by OCR are in the document's meta (ocr_pages "2,5"); a chunk never spans two pages
            # (only PDFs are OCR'd, so only their meta is parsed)
            ocr = False
            if r[3] == "pdf" and r[8] and r[4] is not None:
                ocr = str(r[4]) in str(json.loads(r[8]).get("ocr_pages", "")).split(",")
            by_id[r[0]] = Hit(r[0], r[1], r[2], r[3], page=r[4], kg_uri=r[5], label=r[6], section=r[7], ocr=ocr)
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise StaleIndex(missing)
        return [by_id[i] for i in ids]
