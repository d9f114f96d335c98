"""When a cached answer may no longer be used: its scope, its age and the size cap.

An entry belongs to one scope (collection, corpus version, answering model, prompt version) and is invisible to
lookups in any other; an ingest bumps the corpus version, so answers written before it stop matching. Entries older
than the TTL are ignored by lookups and removed by the next `put`, together with entries of older corpus versions
and of other models or prompts in the same collection (never entries of a newer corpus version: a slow request that
started before an ingest must not wipe the answers cached after it). Above `max_entries`, the least recently used
entries go first.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, func, or_, select, true
from sqlalchemy.orm import Session

from localrag.index.store import AnswerCacheRow

__all__ = ["evict_over_cap", "fresh", "prune_stale", "scope", "ttl_cutoff"]


def scope(collection_id: int, corpus_version: int, model_id: str, prompt_version: str) -> Any:
    """SQL condition: the entry belongs to this scope."""
    return and_(
        AnswerCacheRow.collection_id == collection_id,
        AnswerCacheRow.corpus_version == corpus_version,
        AnswerCacheRow.model_id == model_id,
        AnswerCacheRow.prompt_version == prompt_version,
    )


def ttl_cutoff(now: datetime, ttl_s: float | None) -> datetime | None:
    """Entries created before this moment have expired (None: they never do)."""
    return None if ttl_s is None else now - timedelta(seconds=ttl_s)


def fresh(cutoff: datetime | None) -> Any:
    """SQL condition: the entry has not expired."""
    return AnswerCacheRow.created >= cutoff if cutoff is not None else true()


def prune_stale(session: Session, collection_id: int, corpus_version: int, model_id: str, prompt_version: str,
                cutoff: datetime | None) -> int:
    """Delete the collection's entries that no lookup in this scope or a later one can use; returns how many."""
    stale = or_(
        AnswerCacheRow.corpus_version < corpus_version,
        and_(AnswerCacheRow.corpus_version == corpus_version,
             or_(AnswerCacheRow.model_id != model_id, AnswerCacheRow.prompt_version != prompt_version)),
        *([AnswerCacheRow.created < cutoff] if cutoff is not None else []),
    )
    # a DELETE's result is a CursorResult (rowcount); Session.execute is typed as returning the plain Result
    done = cast(CursorResult[Any], session.execute(
        delete(AnswerCacheRow).where(AnswerCacheRow.collection_id == collection_id, stale)))
    return int(done.rowcount or 0)


def evict_over_cap(session: Session, max_entries: int, keep_id: int) -> int:
    """Delete the least recently used entries (last hit, else creation) beyond `max_entries`, never `keep_id` (the
    entry just written); returns how many."""
    total = int(session.scalar(select(func.count(AnswerCacheRow.id))) or 0)
    if total <= max_entries:
        return 0
    recency = func.coalesce(AnswerCacheRow.last_hit, AnswerCacheRow.created)
    victims = list(session.scalars(
        select(AnswerCacheRow.id).where(AnswerCacheRow.id != keep_id)
        .order_by(recency.asc(), AnswerCacheRow.id.asc()).limit(total - max_entries)))
    session.execute(delete(AnswerCacheRow).where(AnswerCacheRow.id.in_(victims)))
    return len(victims)
