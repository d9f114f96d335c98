"""SQLite, PostgreSQL (or any SQLAlchemy URL) store: the single source of truth for collections, documents and chunks.

FAISS and BM25 are derived from the rows here; each chunk keeps its fp16 embedding so that the indexes can be
reconciled or rebuilt without re-embedding.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    bindparam,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy import Text as SQLText
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from localrag.index import migrations


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Text(TypeDecorator):
    """TEXT that takes what SQLite takes: PostgreSQL refuses the NUL character in text, so on PostgreSQL a NUL in a
    value (a pasted question, a chat message, a stray byte in a file name or a literal) is stored as U+FFFD. Every
    text column of the models below uses it (it shadows sqlalchemy.Text in this module)."""

    impl = SQLText
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, str) and dialect.name == "postgresql" and "\x00" in value:
            return value.replace("\x00", "\ufffd")
        return value


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
    size: Mapped[int] = mapped_column(BigInteger)  # bytes; BIGINT since migration 0004 (PostgreSQL's INTEGER is 32-bit)
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
    # heading path, "Guide › Safety › Tides" (added later: migration 0002_chunks_section; older rows: NULL)
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
    # the answer's scope as JSON (prompt, retrieval and sampling parameters): Text, since PostgreSQL enforces VARCHAR
    # lengths (SQLite does not) and a scope is longer than 200 characters (migration 0003)
    prompt_version: Mapped[str] = mapped_column(Text)
    embedding_model: Mapped[str] = mapped_column(String(500))  # the embedder that made `embedding`
    question: Mapped[str] = mapped_column(Text)
    question_key: Mapped[str] = mapped_column(String(64), index=True)  # sha256 of the normalized question
    embedding: Mapped[bytes] = mapped_column(LargeBinary)  # float16, normalized
    payload: Mapped[str] = mapped_column(Text)  # JSON object: answer, citations, scores...
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_hit: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)


class CacheEventRow(Base):
    """One answer-cache lookup's outcome (app/cache/): a hit by kind ("exact", "paraphrase"), or a candidate refused
    with its reason, so that `localrag cache stats` counts across processes (migration 0005)."""

    __tablename__ = "cache_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(20))  # exact | paraphrase | refused | miss
    reason: Mapped[str | None] = mapped_column(String(200), nullable=True)  # why a candidate was refused
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=30000")  # first: the switch to WAL below may have to wait for another opener
    # readers never block the writer, and a killed writer rolls back. Switching a new database to WAL needs an
    # exclusive lock, and SQLite answers "database is locked" at once, without its busy handler, when several
    # processes or threads open a new database together: wait and try again (tests/test_postgres.py, first opens)
    for attempt in range(100):
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 99:
                raise
            time.sleep(0.05)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


_VERSION_OF = select(CollectionRow.corpus_version).where(CollectionRow.id == bindparam("cid"))
# what a search hit shows of each chunk, built once (SQLAlchemy caches its compiled form): the search's hydrate step
_HIT_ROWS = (
    select(ChunkRow.id, ChunkRow.text, DocumentRow.source, DocumentRow.kind, ChunkRow.page, ChunkRow.kg_uri,
           ChunkRow.label, ChunkRow.section, DocumentRow.meta)
    .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
    .where(ChunkRow.id.in_(bindparam("ids", expanding=True)))
)


class StoreError(RuntimeError):
    """The database cannot be opened; the message says why and what to do."""


def _first_line(exc: BaseException) -> str:
    return (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]


def normalize_url(url: str) -> URL:
    """The SQLAlchemy URL to connect with: a bare `postgresql://` (or `postgres://`) gets the psycopg 3 driver that
    the `postgres` extra installs (SQLAlchemy's default would be psycopg2)."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"database_url {url!r} is not a SQLAlchemy URL; use e.g. sqlite:////path/to/localrag.sqlite or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        ) from None
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    return u


class Store:
    """Owns the engine and session factory; opening brings the schema to this release (index/migrations)."""

    def __init__(self, url: str) -> None:
        self.url = url
        u = normalize_url(url)
        try:
            self.engine: Engine = create_engine(u, pool_pre_ping=u.get_backend_name() != "sqlite")
        except ModuleNotFoundError as exc:
            extra = " (pip install 'localrag[postgres]')" if u.get_backend_name() == "postgresql" else ""
            raise StoreError(f"database_url needs the driver {exc.name!r}, which is not installed{extra}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self.schema = migrations.upgrade(self.engine, Base.metadata)  # created/upgraded/adopted/repaired/current
        except migrations.MigrationError as exc:
            self.engine.dispose()
            raise StoreError(str(exc)) from None
        except OperationalError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open the database {self.engine.url.render_as_string(hide_password=True)}: "
                             f"{_first_line(exc)}") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def display_url(self) -> str:
        """The URL without its password (for status output and logs)."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def dialect(self) -> str:
        """"sqlite", "postgresql", ..."""
        return self.engine.dialect.name

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

    def add_collection(self, name: str, embedding_model: str, embedding_dim: int, chunk_tokens: int,
                       chunk_overlap: int) -> CollectionRow:
        """Create a collection (its embedding model and chunking are fixed from now on) and return it."""
        with self.session() as s:
            s.add(CollectionRow(name=name, embedding_model=embedding_model, embedding_dim=embedding_dim,
                                chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap))
        created = self.collection(name)
        assert created is not None  # committed just above
        return created

    def collections(self) -> list[CollectionRow]:
        with self._sessions() as s:
            return list(s.scalars(select(CollectionRow).order_by(CollectionRow.name)))

    def corpus_version(self, collection_id: int) -> int:
        """The stored corpus_version, read with one Core statement (no ORM session: every search checks it, so
        that an ingest by another process or Rag object is seen at once)."""
        with self.engine.connect() as conn:
            return int(conn.execute(_VERSION_OF, {"cid": collection_id}).scalar() or 0)

    def hit_rows(self, ids: list[int]) -> list[tuple[Any, ...]]:
        """(id, text, source, kind, page, kg_uri, label, section, document meta) of these chunks, in no particular
        order; ids that are not stored are absent. One Core statement built once (no ORM session): every search
        reads its hits with it."""
        if not ids:
            return []
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(_HIT_ROWS, {"ids": list(ids)})]

    def collection_stamp(self, collection_id: int) -> str:
        """Who this collection is, beyond its id: "<id>@<created>". Saved with its index files, so that files made
        for another collection that got the same id (a database recreated, or another database on a second
        machine) are never taken as up to date just because the corpus_version numbers agree."""
        with self._sessions() as s:
            created = s.scalar(select(CollectionRow.created).where(CollectionRow.id == collection_id))
        return f"{collection_id}@{created.isoformat() if created else '?'}"

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

    def collection_stats(self, collection_id: int) -> dict[str, Any]:
        """What `Rag.status` shows of a collection's rows: documents (status ok) and duplicates, chunks, knowledge-
        graph nodes and edges, documents per kind, and the last ingest run (id, command, status, started as
        "%Y-%m-%d %H:%M:%S"; None before the first)."""
        def count(row: Any, *where: Any) -> Any:
            return select(func.count()).select_from(row).where(row.collection_id == collection_id, *where)

        with self._sessions() as s:
            out: dict[str, Any] = {
                name: int(s.scalar(q) or 0) for name, q in (
                    ("documents", count(DocumentRow, DocumentRow.status == "ok")),
                    ("duplicates", count(DocumentRow, DocumentRow.status == "duplicate")),
                    ("chunks", count(ChunkRow)), ("kg_nodes", count(KgNodeRow)), ("kg_edges", count(KgEdgeRow)),
                )
            }
            out["kinds"] = dict(s.execute(
                select(DocumentRow.kind, func.count()).where(
                    DocumentRow.collection_id == collection_id, DocumentRow.status == "ok"
                ).group_by(DocumentRow.kind)).all())
            last = s.scalars(select(IngestRunRow).where(IngestRunRow.collection_id == collection_id)
                             .order_by(IngestRunRow.id.desc())).first()
            out["last_run"] = None if last is None else {
                "id": last.id, "command": last.command, "status": last.status,
                "started": f"{last.started:%Y-%m-%d %H:%M:%S}",
            }
        return out

    def document_list(self, collection_id: int) -> list[dict[str, Any]]:
        """The documents of a collection by source, as `Rag.documents` lists them: source, name, kind, status ("ok",
        or "duplicate" with the source it duplicates in duplicate_of), chunks, pages (PDFs), title, size in bytes,
        when ingested, and warnings."""
        with self._sessions() as s:
            rows = s.scalars(select(DocumentRow).where(DocumentRow.collection_id == collection_id)
                             .order_by(DocumentRow.source)).all()
        by_id = {d.id: d.source for d in rows}
        out = []
        for d in rows:
            meta = json.loads(d.meta) if d.meta else {}
            out.append({
                "source": d.source, "name": d.source.rsplit("/", 1)[-1], "kind": d.kind, "status": d.status,
                "duplicate_of": by_id.get(d.duplicate_of) if d.duplicate_of else None, "chunks": d.n_chunks,
                "pages": int(meta["pages"]) if str(meta.get("pages", "")).isdigit() else None,
                "title": meta.get("title"), "size": d.size, "ingested": d.ingested,
                "warnings": json.loads(d.warnings) if d.warnings else [],
            })
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
# Added after the first release (part of the baseline migration, which creates them in an older database that lacks
# them, leaving its other tables as they are).
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
    prompt_version: Mapped[str] = mapped_column(Text, default="")  # Text: migration 0003
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# --- tuning the embedder on a collection's own documents (app/tune/, migration 0006) ---------------------------
class TuneQuestionRow(Base):
    """A question the instruct LLM wrote for one chunk (`localrag tune`), stored as it is made so that a killed run
    resumes where it stopped. `status` "ok", or "junk" (the output was not one usable question: never asked again)."""

    __tablename__ = "tune_questions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    chunk_id: Mapped[int] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"), unique=True)
    question: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="ok")
    model: Mapped[str] = mapped_column(String(500))  # the LLM that wrote it
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class TuneRunRow(Base):
    """One `localrag tune` of a collection: its tuned model's folder and lineage (JSON: base model, questions kept and
    dropped, settings, held-out scores, stage times). At most one run per collection is "active": the collection's
    queries and ingests then use that run's model, and its chunks' stored embeddings are that model's."""

    __tablename__ = "tune_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    tag: Mapped[str] = mapped_column(String(40))  # the run's folder name under the collection's tuned/
    # running | kept-base (no improvement) | active | undone | superseded | reverted (files unusable) | interrupted
    status: Mapped[str] = mapped_column(String(20), default="running")
    base_model: Mapped[str] = mapped_column(String(500))
    lineage: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON object
    created: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
