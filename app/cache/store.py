"""The semantic answer cache's storage: answers in the answers_cache table, found by question.

Lookup order: exact match on the normalized question (kind "exact"); then the most similar stored questions (cosine
over the embedder's vectors) at or above `threshold`, each checked by `verify_equivalent` (equivalence.py) and,
when the caller gives one, by an answer verifier: does the stored answer answer *this* question (same evidence,
its quoted sentences support this question)? A candidate that passes is a hit of kind "paraphrase". With a
verifier the rules that only compare words (a rare word in one question only) are left to it: paraphrases are made
of different words. Entries are scoped, expire and are capped as invalidation.py says. Every lookup's outcome (a
hit by kind, each refused candidate with its reason, a miss) is one row of cache_events, so statistics hold across
processes. The vectors of a scope are kept in memory while the scope's (count, max id) is unchanged, so a lookup
costs one matrix product; document frequencies for the rare-term rule are computed once per corpus version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import numpy as np
from sqlalchemy import CursorResult, and_, delete, func, select, update

from localrag.app.cache.equivalence import CorpusTerms, expand_acronyms, normalize_question, verify_equivalent
from localrag.app.cache.invalidation import evict_over_cap, fresh, prune_stale, scope, ttl_cutoff
from localrag.index.embedder import Embedder
from localrag.index.store import AnswerCacheRow, CacheEventRow, ChunkRow, Store, utcnow

__all__ = ["MAX_CANDIDATES", "MAX_DF_CHUNKS", "MAX_EVENTS", "CacheHit", "SemanticCache", "Verifier"]

log = logging.getLogger(__name__)

MAX_DF_CHUNKS = 20_000  # document frequencies are estimated on at most this many chunks
MAX_CANDIDATES = 5  # semantic candidates checked per lookup, best first
MAX_EVENTS = 100_000  # lookup outcomes kept for the statistics (the oldest go first)

# (the stored answer as put() stored it, the looked-up question's vector as the cache embeds it) -> None when the
# answer answers that question, else why not
Verifier = Callable[[dict[str, Any], np.ndarray], str | None]


def _question_key(normalized: str) -> str:
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


@dataclass
class CacheHit:
    """A stored answer found for a question."""

    payload: dict  # what put() stored, unchanged (JSON round-trip)
    kind: str  # "exact" or "paraphrase"
    similarity: float  # 1.0 for exact
    matched_question: str  # the stored question that matched
    entry_id: int
    age_s: float


@dataclass
class _ScopeVectors:
    """The stored vectors of one scope, kept in memory while the scope's (count, max id) is unchanged."""

    signature: tuple[int, int]
    ids: np.ndarray
    created: np.ndarray  # seconds since the epoch (naive UTC)
    questions: list[str]
    matrix: np.ndarray  # float32 (n, dim)


def _epoch(dt: datetime) -> float:
    return (dt - datetime(1970, 1, 1)).total_seconds()


class SemanticCache:
    """Answers keyed by question: exact, then similar-and-verified; scoped, expiring, capped; thread-safe."""

    def __init__(self, store: Store, embedder: Embedder, *, threshold: float = 0.95,
                 ttl_s: float | None = 7 * 24 * 3600, max_entries: int = 10_000) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.store = store
        self.embedder = embedder
        self.threshold = threshold
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.RLock()
        self._terms: dict[int, tuple[int, CorpusTerms]] = {}
        self._terms_lock = threading.Lock()
        self._vectors: dict[tuple, _ScopeVectors] = {}

    # --- helpers --------------------------------------------------------------------------------------------
    def _record(self, collection_id: int, events: list[tuple[str, str | None]]) -> None:
        """Append lookup outcomes to cache_events (statistics only: a failure is logged, never raised)."""
        try:
            with self.store.session() as s:
                s.add_all([CacheEventRow(collection_id=collection_id, event=e, reason=r and r[:200], created=utcnow())
                           for e, r in events])
        except Exception as exc:  # noqa: BLE001 - statistics must never break an answer
            log.warning("semantic cache: could not record lookup statistics: %s", exc)

    def _vector(self, question: str, embedding: np.ndarray | None) -> np.ndarray:
        if embedding is None:
            vec = self.embedder.encode([question])[0]
        else:
            vec = np.asarray(embedding, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError("question embedding is zero or not finite")
        return (vec / norm).astype(np.float32)

    def key_text(self, collection_id: int, corpus_version: int, question: str) -> str:
        """The text whose embedding finds similar questions: the question with the acronyms the collection defines
        spelled out (MiniLM puts "PWMRS" far from "Port Wren Marine Research Station")."""
        return expand_acronyms(question, self.rare_terms(collection_id, corpus_version).acronyms)

    def rare_terms(self, collection_id: int, corpus_version: int) -> CorpusTerms:
        """Document frequencies for one collection, computed once per corpus_version."""
        with self._terms_lock:
            cached = self._terms.get(collection_id)
            if cached and cached[0] == corpus_version:
                return cached[1]
            with self.store.session() as s:
                n = int(s.scalar(select(func.count()).where(ChunkRow.collection_id == collection_id)) or 0)
                if n > MAX_DF_CHUNKS:  # a stride sample estimates document frequencies well enough
                    step = -(-n // MAX_DF_CHUNKS)
                    texts = list(s.scalars(select(ChunkRow.text).where(
                        ChunkRow.collection_id == collection_id, ChunkRow.id % step == 0)))
                else:
                    texts = None
            if texts is None:
                texts = self.store.chunk_texts(collection_id)[1]
            terms = CorpusTerms(texts)
            self._terms[collection_id] = (corpus_version, terms)
            return terms

    def _scope_vectors(self, collection_id: int, corpus_version: int, model_id: str,
                       prompt_version: str) -> _ScopeVectors | None:
        key = (collection_id, corpus_version, model_id, prompt_version, self.embedder.model_id)
        where = and_(scope(collection_id, corpus_version, model_id, prompt_version),
                     AnswerCacheRow.embedding_model == self.embedder.model_id)
        with self.store.session() as s:
            count, max_id = s.execute(
                select(func.count(AnswerCacheRow.id), func.max(AnswerCacheRow.id)).where(where)).one()
            signature = (int(count or 0), int(max_id or 0))
            if not count:
                return None
            with self._lock:
                cached = self._vectors.get(key)
            if cached is not None and cached.signature == signature:
                return cached
            rows = s.execute(
                select(AnswerCacheRow.id, AnswerCacheRow.created, AnswerCacheRow.question, AnswerCacheRow.embedding)
                .where(where).order_by(AnswerCacheRow.id)
            ).all()
        dims = {len(r[3]) for r in rows}
        if len(dims) != 1:  # mixed dimensions: keep the most common one
            dim = Counter(len(r[3]) for r in rows).most_common(1)[0][0]
            rows = [r for r in rows if len(r[3]) == dim]
        vecs = _ScopeVectors(
            signature=signature,
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            created=np.array([_epoch(r[1]) for r in rows], dtype=np.float64),
            questions=[r[2] for r in rows],
            matrix=np.stack([np.frombuffer(r[3], dtype=np.float16) for r in rows]).astype(np.float32),
        )
        with self._lock:
            self._vectors = {k: v for k, v in self._vectors.items() if k[0] != key[0] or k == key}
            self._vectors[key] = vecs
        return vecs

    def _take(self, entry_id: int, question: str, now: datetime) -> tuple[dict, datetime] | None:
        """Count a hit on an entry and return its payload, or None if it vanished (or changed) meanwhile."""
        with self.store.session() as s:
            # an UPDATE's result is a CursorResult (rowcount); Session.execute is typed as returning a plain Result
            done = cast(CursorResult[Any], s.execute(
                update(AnswerCacheRow)
                .where(AnswerCacheRow.id == entry_id, AnswerCacheRow.question == question)
                .values(hits=AnswerCacheRow.hits + 1, last_hit=now)))
            if not done.rowcount:
                return None
            payload, created = s.execute(select(AnswerCacheRow.payload, AnswerCacheRow.created)
                                         .where(AnswerCacheRow.id == entry_id)).one()
        return json.loads(payload), created

    # --- API ------------------------------------------------------------------------------------------------
    def lookup(self, collection_id: int, corpus_version: int, model_id: str, prompt_version: str, question: str,
               embedding: np.ndarray | None = None, verify: Verifier | None = None) -> CacheHit | None:
        """A stored answer for this question in this scope, or None. An exact repeat is served as is; a similar
        stored question must pass `verify_equivalent` and, when given, `verify` (the stored answer answers this
        question). Each outcome is recorded for `stats`."""
        events: list[tuple[str, str | None]] = []
        try:
            hit = self._lookup(collection_id, corpus_version, model_id, prompt_version, question, embedding, verify,
                               events)
        finally:
            self._record(collection_id, events or [("miss", None)])
        return hit

    def _lookup(self, collection_id: int, corpus_version: int, model_id: str, prompt_version: str, question: str,
                embedding: np.ndarray | None, verify: Verifier | None,
                events: list[tuple[str, str | None]]) -> CacheHit | None:
        norm = normalize_question(question)
        if not norm:
            return None
        now = utcnow()
        cutoff = ttl_cutoff(now, self.ttl_s)
        with self.store.session() as s:
            row = s.execute(
                select(AnswerCacheRow.id, AnswerCacheRow.question).where(
                    scope(collection_id, corpus_version, model_id, prompt_version), fresh(cutoff),
                    AnswerCacheRow.question_key == _question_key(norm))
                .order_by(AnswerCacheRow.id.desc()).limit(1)
            ).first()
        if row is not None and normalize_question(row[1]) == norm:
            taken = self._take(row[0], row[1], now)
            if taken is not None:
                events.append(("exact", None))
                return CacheHit(taken[0], "exact", 1.0, row[1], int(row[0]), (now - taken[1]).total_seconds())
        vecs = self._scope_vectors(collection_id, corpus_version, model_id, prompt_version)
        if vecs is None:
            return None
        q = self._vector(self.key_text(collection_id, corpus_version, question), embedding)
        if q.shape[0] != vecs.matrix.shape[1]:
            log.warning("semantic cache: question embedding has %d dimensions, stored ones %d; skipped",
                        q.shape[0], vecs.matrix.shape[1])
            return None
        sims = vecs.matrix @ q
        if cutoff is not None:
            sims = np.where(vecs.created >= _epoch(cutoff), sims, -1.0)
        # with an answer verifier, words that differ are its business; without one, every rule applies
        terms: Any = set() if verify is not None else self.rare_terms(collection_id, corpus_version)
        for n in np.argsort(-sims)[:MAX_CANDIDATES]:
            sim, stored = float(sims[n]), vecs.questions[n]
            if sim < self.threshold:
                break
            reason = verify_equivalent(question, stored, terms)
            if reason is None and verify is not None:
                payload = self._payload(int(vecs.ids[n]))
                reason = "the entry vanished" if payload is None else verify(payload, q)
            if reason is not None:
                log.debug("semantic cache: refused %r for %r (cosine %.4f): %s", stored, question, sim, reason)
                events.append(("refused", reason.split(" (")[0].split(":")[0]))
                continue
            taken = self._take(int(vecs.ids[n]), stored, now)
            if taken is None:
                continue
            events.append(("paraphrase", None))
            return CacheHit(taken[0], "paraphrase", min(sim, 1.0), stored, int(vecs.ids[n]),
                            (now - taken[1]).total_seconds())
        events.append(("miss", None))
        return None

    def _payload(self, entry_id: int) -> dict[str, Any] | None:
        with self.store.session() as s:
            data = s.scalar(select(AnswerCacheRow.payload).where(AnswerCacheRow.id == entry_id))
        return None if data is None else cast(dict[str, Any], json.loads(data))

    def put(self, collection_id: int, corpus_version: int, model_id: str, prompt_version: str, question: str,
            payload: dict, embedding: np.ndarray | None = None) -> int:
        """Store an answer; replaces the same question's entry, prunes stale scopes, and keeps the size cap."""
        norm = normalize_question(question)
        if not norm:
            raise ValueError("cannot cache an answer for an empty question")
        try:
            data = json.dumps(payload, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cache payload must be JSON-serializable: {exc}") from exc
        vec = self._vector(self.key_text(collection_id, corpus_version, question), embedding)
        now = utcnow()
        cutoff = ttl_cutoff(now, self.ttl_s)
        with self.store.session() as s:
            prune_stale(s, collection_id, corpus_version, model_id, prompt_version, cutoff)
            s.execute(delete(AnswerCacheRow).where(
                scope(collection_id, corpus_version, model_id, prompt_version),
                AnswerCacheRow.question_key == _question_key(norm)))
            row = AnswerCacheRow(
                collection_id=collection_id, corpus_version=corpus_version, model_id=model_id,
                prompt_version=prompt_version, embedding_model=self.embedder.model_id, question=question,
                question_key=_question_key(norm), embedding=vec.astype(np.float16).tobytes(), payload=data,
                created=now, hits=0,
            )
            s.add(row)
            s.flush()
            entry_id = int(row.id)
            evict_over_cap(s, self.max_entries, entry_id)
            s.execute(delete(CacheEventRow).where(CacheEventRow.id <= entry_events_floor(s)))
        return entry_id

    def clear(self, collection_id: int | None = None) -> int:
        """Remove all entries, or one collection's, and their lookup statistics; returns how many entries were
        removed."""
        with self.store.session() as s:
            stmt = delete(AnswerCacheRow)
            events = delete(CacheEventRow)
            if collection_id is not None:
                stmt = stmt.where(AnswerCacheRow.collection_id == collection_id)
                events = events.where(CacheEventRow.collection_id == collection_id)
            removed = int(cast(CursorResult[Any], s.execute(stmt)).rowcount or 0)
            s.execute(events)
        with self._lock:
            self._vectors = {k: v for k, v in self._vectors.items()
                             if collection_id is not None and k[0] != collection_id}
        return removed

    def stats(self, collection_id: int | None = None) -> dict[str, Any]:
        """Stored entries (count, hits, oldest/newest), and the recorded lookups (every process, the last
        MAX_EVENTS): hits by kind, misses, and refused candidates by reason."""
        with self.store.session() as s:
            q = select(func.count(AnswerCacheRow.id), func.coalesce(func.sum(AnswerCacheRow.hits), 0),
                       func.min(AnswerCacheRow.created), func.max(AnswerCacheRow.created))
            e = select(CacheEventRow.event, CacheEventRow.reason, func.count(CacheEventRow.id))
            if collection_id is not None:
                q = q.where(AnswerCacheRow.collection_id == collection_id)
                e = e.where(CacheEventRow.collection_id == collection_id)
            count, hits, oldest, newest = s.execute(q).one()
            events = s.execute(e.group_by(CacheEventRow.event, CacheEventRow.reason)).all()
        by_event: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for event, reason, n in events:
            by_event[event] += int(n)
            if event == "refused":
                reasons[reason or "?"] += int(n)
        lookups = by_event["exact"] + by_event["paraphrase"] + by_event["miss"]
        return {
            "entries": int(count or 0),
            "hits": int(hits or 0),
            "oldest": oldest.isoformat() if oldest else None,
            "newest": newest.isoformat() if newest else None,
            "lookups": lookups,
            "exact_hits": by_event["exact"],
            "paraphrase_hits": by_event["paraphrase"],
            "misses": by_event["miss"],
            "refused": by_event["refused"],
            "refused_reasons": dict(reasons.most_common()),
            "threshold": self.threshold,
            "ttl_s": self.ttl_s,
            "max_entries": self.max_entries,
        }


def entry_events_floor(session: Any) -> int:
    """The id at or below which cache_events rows are beyond MAX_EVENTS (0: none)."""
    top = int(session.scalar(select(func.max(CacheEventRow.id))) or 0)
    return max(0, top - MAX_EVENTS)
