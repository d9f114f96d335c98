"""SQLite (or any SQLAlchemy URL) store: the single source of truth for collections, documents and chunks.

FAISS and BM25 are derived from the rows here; each chunk keeps its fp16 embedding so that the indexes can be
reconciled or rebuilt without re-embedding.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class CollectionRow(Base):
    __tablename__ = "collections"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    embedding_model: Mapped[str] = mapped_column(String(500))
    embedding_dim: Mapped[int] = mapped_column(Integer)
    chunk_tokens: Mapped[int] = mapped_column(Integer)
    chunk_overlap: Mapped[int] = mapped_column(Integer)
    corpus_version: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class DocumentRow(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "source"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    mtime: Mapped[float] = mapped_column(Float)
    # "ok": has chunks; "duplicate": same content as duplicate_of, stored once there
    status: Mapped[str] = mapped_column(String(20), default="ok")
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("documents.id"), nullable=True)
    warnings: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list
    meta: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON object
    n_chunks: Mapped[int] = mapped_column(Integer, default=0)
    ingested: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ChunkRow(Base):
    __tablename__ = "chunks"
    __table_args__ = {"sqlite_autoincrement": True}  # ids are FAISS ids: never reuse one
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kg_uri: Mapped[str | None] = mapped_column(Text, nullable=True)
    label: Mapped[str | None] = mapped_column(Text, nullable=True)
    n_tokens: Mapped[int] = mapped_column(Integer)
    # heading path, "Guide › Safety › Tides" (added later: _add_missing_columns adds it to older databases)
    section: Mapped[str | None] = mapped_column(Text, nullable=True)
    text_sha256: Mapped[str] = mapped_column(String(64))
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float16, normalized


class KgNodeRow(Base):
    __tablename__ = "kg_nodes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    uri: Mapped[str] = mapped_column(Text, index=True)
    label: Mapped[str | None] = mapped_column(Text, nullable=True)
    types: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of URIs
    description: Mapped[str | None] = mapped_column(Text, nullable=True)


class KgEdgeRow(Base):
    __tablename__ = "kg_edges"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    subject: Mapped[str] = mapped_column(Text, index=True)
    predicate: Mapped[str] = mapped_column(Text)
    object: Mapped[str] = mapped_column(Text)
    object_is_uri: Mapped[bool] = mapped_column(Boolean, default=True)


class IngestRunRow(Base):
    __tablename__ = "ingest_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    command: Mapped[str] = mapped_column(String(20))
    started: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="running")  # running/finished/interrupted
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    counts: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON
    outcomes: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON list


class AnswerCacheRow(Base):
    """One cached answer (app/cache/); visible only to lookups with the same scope columns."""

    __tablename__ = "answers_cache"
    __table_args__ = {"sqlite_autoincrement": True}  # a new entry never reuses an id (the cache keys on max id)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    corpus_version: Mapped[int] = mapped_column(Integer)
    model_id: Mapped[str] = mapped_column(String(500))  # the answering LLM
    prompt_version: Mapped[str] = mapped_column(String(200))
    embedding_model: Mapped[str] = mapped_column(String(500))  # the embedder that made `embedding`
    question: Mapped[str] = mapped_column(Text)
    question_key: Mapped[str] = mapped_column(String(64), index=True)  # sha256 of the normalized question
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float16, normalized
    payload: Mapped[str] = mapped_column(Text)  # JSON object: answer, citations, scores...
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_hit: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer, and a killed writer rolls back
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# Nullable columns added to existing tables after the first release: `create_all` creates missing tables but
# never alters existing ones, so a data directory made before a column existed gets it here (old rows: NULL).
ADDED_COLUMNS: dict[str, list[tuple[str, str]]] = {"chunks": [("section", "TEXT")]}


def _add_missing_columns(engine: Engine) -> None:
    from sqlalchemy import inspect, text

    inspector = inspect(engine)
    for table, columns in ADDED_COLUMNS.items():
        present = {c["name"] for c in inspector.get_columns(table)}
        missing = [(name, sql_type) for name, sql_type in columns if name not in present]
        if missing:
            with engine.begin() as conn:
                for name, sql_type in missing:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))


class Store:
    """Owns the engine and session factory."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        _add_missing_columns(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def sqlite(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(f"sqlite:///{path}")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: commit on success, roll back on any error."""
        with self._sessions() as s, s.begin():
            yield s

    def collection(self, name: str) -> CollectionRow | None:
        with self._sessions() as s:
            return s.scalars(select(CollectionRow).where(CollectionRow.name == name)).first()

    def collections(self) -> list[CollectionRow]:
        with self._sessions() as s:
            return list(s.scalars(select(CollectionRow).order_by(CollectionRow.name)))

    def corpus_version(self, collection_id: int) -> int:
        with self._sessions() as s:
            return int(s.scalar(select(CollectionRow.corpus_version).where(CollectionRow.id == collection_id)) or 0)

    def chunk_ids(self, collection_id: int) -> np.ndarray:
        with self._sessions() as s:
            rows = s.scalars(select(ChunkRow.id).where(ChunkRow.collection_id == collection_id).order_by(ChunkRow.id))
            return np.fromiter(rows, dtype=np.int64)

    def embeddings(self, ids: np.ndarray, dim: int, batch: int = 5000) -> np.ndarray:
        """Stored fp16 embeddings for chunk ids (same order), as float32."""
        out = np.zeros((len(ids), dim), dtype=np.float32)
        pos = {int(i): n for n, i in enumerate(ids)}
        with self._sessions() as s:
            for start in range(0, len(ids), batch):
                part = [int(i) for i in ids[start : start + batch]]
                for cid, blob in s.execute(select(ChunkRow.id, ChunkRow.embedding).where(ChunkRow.id.in_(part))):
                    out[pos[cid]] = np.frombuffer(blob, dtype=np.float16)
        return out

    def chunk_texts(self, collection_id: int) -> tuple[np.ndarray, list[str]]:
        with self._sessions() as s:
            rows = s.execute(
                select(ChunkRow.id, ChunkRow.text).where(ChunkRow.collection_id == collection_id).order_by(ChunkRow.id)
            ).all()
        return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


# --- conversations and feedback (app/conversations.py) ---------------------------------------------------------
# Added after the first release: `Store()` runs `create_all`, which creates these tables in an existing database and
# leaves the older tables as they are, so data directories made before them open unchanged.
class ConversationRow(Base):
    """A chat: its messages in order. The id is random (uuid4 hex) so that a link to one cannot be guessed."""

    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    collection: Mapped[str] = mapped_column(String(200), index=True)  # by name: a chat outlives a re-created collection
    title: Mapped[str] = mapped_column(Text, default="")
    settings: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON object: k, mode, filters... when started
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)


class MessageRow(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))  # user / assistant
    content: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON: Answer.to_dict() of an assistant turn
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class FeedbackRow(Base):
    """A 👍/👎 on an answer, self-contained (question, answer, the sources the model saw, citations, scores, model), so
    that it stays usable as training data after the conversation or the documents are gone."""

    __tablename__ = "feedback"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), nullable=True, unique=True
    )
    conversation_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    collection: Mapped[str] = mapped_column(String(200), index=True)
    rating: Mapped[int] = mapped_column(Integer)  # +1 up, -1 down
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    question: Mapped[str] = mapped_column(Text)  # as asked
    standalone_question: Mapped[str | None] = mapped_column(Text, nullable=True)  # as the model saw it (follow-ups)
    answer: Mapped[str] = mapped_column(Text)
    abstained: Mapped[bool] = mapped_column(Boolean, default=False)
    sources: Mapped[str] = mapped_column(Text, default="[]")  # JSON list: the numbered sources given to the model
    citations: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    scores: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON object
    model_id: Mapped[str] = mapped_column(String(500), default="")
    prompt_version: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
