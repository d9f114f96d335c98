"""The ingestion job: files → documents → chunks → embeddings → one store transaction per document → indexes.

Crash safety rests on one rule: the store is committed first, the derived indexes after. A process killed at any
point leaves either a rolled-back transaction (nothing happened to that document) or committed rows whose vectors
are not yet saved; the next open sees the index's corpus_version lag behind and reconciles from the stored fp16
embeddings (see index/indexes.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from localrag.index.embedder import Embedder
from localrag.index.indexes import CollectionIndexes
from localrag.index.store import (
    ChunkRow,
    CollectionRow,
    DocumentRow,
    IngestRunRow,
    KgEdgeRow,
    KgNodeRow,
    Store,
    dumps,
    utcnow,
)
from localrag.ingest.chunker import ChunkDraft, Tokenizer, chunk_units
from localrag.ingest.discover import Found, discover
from localrag.ingest.document import LoadedDocument, UnsupportedType
from localrag.ingest.loaders import detect_kind
from localrag.ingest.worker import DEFAULT_LOADER, LoaderPool

EMBED_BATCH_CHUNKS = 256  # chunks gathered across documents before one encode call
# How this release turns a file into chunks. Raise it whenever a loader or the chunker changes what an unchanged file
# becomes, so that documents ingested by an older release are read again on their next ingest instead of keeping
# their old chunks. Stored in each document's meta ("reader_version"; absent = 1). History: 1 = up to stop 17;
# 2 = Markdown chunks carry their full heading path and PDF chunks their outline section (stop 18).
READER_VERSION = 2


def reader_version(meta: str | None) -> int:
    """The reader version a document was ingested with (its meta JSON; 1 when it predates the field)."""
    if not meta:
        return 1
    try:
        value = json.loads(meta).get("reader_version", 1)
    except (ValueError, AttributeError):
        return 1
    return value if isinstance(value, int) else 1


class Status(StrEnum):
    INGESTED = "ingested"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    DUPLICATE = "duplicate"
    REMOVED = "removed"
    SKIPPED = "skipped"
    ERROR = "error"


@dataclass
class Outcome:
    source: str
    status: Status
    chunks: int = 0
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class IngestReport:
    collection: str
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    chunks_embedded: int = 0
    embed_seconds: float = 0.0
    repaired: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        c = {s.value: 0 for s in Status}
        for o in self.outcomes:
            c[o.status.value] += 1
        return c

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status is Status.ERROR]

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "counts": self.counts,
            "seconds": round(self.seconds, 3),
            "chunks_embedded": self.chunks_embedded,
            "chunks_per_s": round(self.chunks_embedded / self.seconds, 2) if self.seconds else 0.0,
            "repaired": self.repaired,
            "notes": self.notes,
            "files": [{**asdict(o), "status": o.status.value, "seconds": round(o.seconds, 3)} for o in self.outcomes],
            "exit_code": self.exit_code,
        }


@dataclass
class Progress:
    """Handed to the progress callback after every file and every embedding batch."""

    files_done: int
    files_total: int
    chunks_done: int
    chunks_per_s: float
    current: str = ""


ProgressFn = Callable[[Progress], None]


class CollectionBusy(RuntimeError):
    """A collection's lock is held by another process or thread; the message names the holder (pid, host, since
    when) and says what to do."""


class IngestLocked(CollectionBusy):
    """Another ingest (or sync, remove, index repair) holds the collection's ingest lock."""


class TuneRunning(CollectionBusy):
    """Another tune of the collection (`localrag tune`, Rag.tune, the Documents page's button) holds its tune lock."""


INGEST_LOCK_NAMESPACE = 0x6C72_696E  # "lrin": first key of pg_try_advisory_lock(namespace, collection id)
TUNE_LOCK_NAMESPACE = 0x6C72_7475  # "lrtu": the tune guard's key, beside the ingest lock's


@dataclass(frozen=True)
class _Purpose:
    file: str  # the lock file in the collection's folder (SQLite)
    namespace: int  # the advisory lock's first key (PostgreSQL)
    error: type[CollectionBusy]
    busy: str  # what the holder is doing
    todo: str  # what the refused caller can do


PURPOSES = {
    "ingest": _Purpose("ingest.lock", INGEST_LOCK_NAMESPACE, IngestLocked,
                       "another ingest is running on this collection", "wait for it to finish"),
    # a tune runs for minutes to hours and ingests may run beside it (its switch is refused when the corpus changed):
    # it has a lock of its own, so that two tunes of one collection never run at once
    "tune": _Purpose("tune.lock", TUNE_LOCK_NAMESPACE, TuneRunning,
                     "a tune of this collection is already running",
                     "wait for it to finish (its progress shows where it was started: a terminal, or the Documents "
                     "page), or stop that process; a stopped tune loses nothing: the next one reuses its stored "
                     "questions"),
}


def _describe(record: str, held: bool = False) -> str:
    """A lock file's record (JSON: pid, host, started; an older file holds a bare pid) as "pid N on HOST, started
    T"; `held` (the lock is held now): saying so when that is this process, or a process that is gone (a child it
    started holds the file open)."""
    try:
        rec = json.loads(record)
    except ValueError:
        rec = None
    if not isinstance(rec, dict):
        return f"pid {record.strip() or '?'}"
    pid, host = rec.get("pid"), rec.get("host")
    out = f"pid {pid}" + (f" on {host}" if host else "") + (f", started {rec['started']}" if rec.get("started") else "")
    if held and host == socket.gethostname() and isinstance(pid, int):
        if pid == os.getpid():
            out += "; that is this process"
        elif not _alive(pid):
            out += "; that process is gone, but one it started still holds the lock: stop it"
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by another user
    return True


class CollectionLock:
    """One ingest per collection at a time (`purpose="ingest"`), or one tune (`purpose="tune"`, a lock of its own).

    SQLite (one machine): an OS file lock (flock) in the collection's folder, released by the kernel if the process
    dies. The file records the holder (pid, host, when it started), which a refused caller's message names; the
    holder empties it when it lets go, so a record found by the next holder was left by a process that was killed:
    `stale` describes it (then it is overwritten). PostgreSQL (any number of machines on one database): a session
    advisory lock keyed by (namespace, collection id), held on a dedicated connection for the duration; the server
    releases it if the process or its connection dies. Either way a second caller gets IngestLocked / TuneRunning
    at once (it never waits).
    """

    def __init__(self, folder: Path, store: Store | None = None, collection_id: int | None = None,
                 purpose: str = "ingest") -> None:
        self.folder = folder
        self.purpose = purpose
        self._p = PURPOSES[purpose]
        self.path = folder / self._p.file
        self._db = store is not None and store.dialect == "postgresql"
        if self._db and collection_id is None:
            raise ValueError("a database lock needs the collection id")
        self.store = store
        self.collection_id = collection_id
        self.stale: str | None = None  # the record a killed holder left (file locks), described
        self._fh: Any = None
        self._conn: Connection | None = None

    def __enter__(self) -> CollectionLock:
        if self._db:
            self._lock_database()
        else:
            self._lock_file()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:ns, :id)"),
                             {"ns": self._p.namespace, "id": self.collection_id})
            finally:
                conn.invalidate()  # closed, not pooled: whatever happened, the session and its lock end here
                conn.close()
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.seek(0)
                fh.truncate()  # let go cleanly: a record left in the file means its holder was killed
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
                fh.close()

    def _refused(self, holder: str | None) -> CollectionBusy:
        return self._p.error(f"{self._p.busy} ({holder or 'another session of this database'}); {self._p.todo}")

    # --- PostgreSQL --------------------------------------------------------------------------------------------
    def _lock_database(self) -> None:
        assert self.store is not None
        conn = self.store.engine.connect()
        try:
            who = f"localrag {self.purpose} pid {os.getpid()} on {socket.gethostname()}"[:63]
            conn.execute(text("SELECT set_config('application_name', :who, false)"), {"who": who})
            got = conn.execute(text("SELECT pg_try_advisory_lock(:ns, :id)"),
                               {"ns": self._p.namespace, "id": self.collection_id}).scalar()
            holder = None if got else self._holder(conn)
            conn.commit()  # the lock belongs to the session: no transaction stays open while it is held
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.invalidate()
            conn.close()
            raise self._refused(holder)
        self._conn = conn

    def _holder(self, conn: Connection) -> str | None:
        row = conn.execute(text(
            "SELECT a.application_name, a.client_addr, a.pid, a.backend_start FROM pg_locks l "
            "JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = :ns AND l.objid = :id AND l.objsubid = 2"
        ), {"ns": self._p.namespace, "id": self.collection_id}).first()
        if row is None:
            return None
        name, addr, pid, since = row
        started = f", started {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if since else ""
        return f"{name or 'a client'}{f' from {addr}' if addr else ''}, server pid {pid}{started}"

    # --- SQLite: a file lock -------------------------------------------------------------------------------------
    def _lock_file(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - closed in __exit__
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip()
            fh.close()
            raise self._refused(_describe(holder, held=True) if holder else "a process that has just started") from None
        fh.seek(0)
        left = fh.read().strip()
        self.stale = _describe(left) if left else None
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "purpose": self.purpose,
                             "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}))
        fh.flush()
        self._fh = fh


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class _Pending:
    """A loaded and chunked document waiting for its embeddings."""

    found: Found
    sha: str
    size: int
    mtime: float
    doc: LoadedDocument
    chunks: list[ChunkDraft]
    load_seconds: float
    vecs: np.ndarray | None = None


class IngestJob:
    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        collection: CollectionRow,
        indexes: CollectionIndexes,
        chunk_tokens: int,
        chunk_overlap: int,
        file_timeout_s: float,
        max_file_mb: float,
        progress: ProgressFn | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.coll = collection
        self.indexes = indexes
        self.chunk_tokens = chunk_tokens
        self.chunk_overlap = chunk_overlap
        self.file_timeout_s = file_timeout_s
        self.max_bytes = int(max_file_mb * 1024 * 1024)
        self.progress = progress
        self.loader = DEFAULT_LOADER
        self._tokenizer: Tokenizer | None = None
        self._t0 = time.monotonic()
        self._chunks_done = 0
        self._files_done = 0
        self._files_total = 0

    # --- entry points ---------------------------------------------------------------------------------------
    def ingest(self, paths: list[Path], sync_dirs: list[Path] | None = None, command: str = "ingest") -> IngestReport:
        report = IngestReport(self.coll.name)
        run_id = self._start_run(command, report)
        found = discover(paths)
        self._files_total = len(found)
        try:
            self._ingest_found(found, report)
            if sync_dirs:
                self._remove_missing(sync_dirs, report)
        finally:
            self.indexes.save(self.store.corpus_version(self.coll.id))
            report.seconds = time.monotonic() - self._t0
            self._finish_run(run_id, report)
        self._maintain(report)
        return report

    def _maintain(self, report: IngestReport) -> None:
        """Index maintenance (merges, the FAISS flat/IVF switch) after the run's changes are committed and saved:
        searches meanwhile read the saved indexes, and a kill here loses nothing (CollectionIndexes.maintain)."""
        t0 = time.monotonic()
        done = self.indexes.maintain()
        if done:
            report.notes.append(f"index maintenance after the run ({time.monotonic() - t0:.1f} s): "
                                + "; ".join(done))

    def remove(self, sources: list[str]) -> IngestReport:
        report = IngestReport(self.coll.name)
        run_id = self._start_run("remove", report)
        try:
            for src in sources:
                doc = self._find_document(src)
                if doc is None:
                    report.outcomes.append(Outcome(src, Status.ERROR, reason="not in this collection"))
                    continue
                self._remove_document(doc.id)
                report.outcomes.append(Outcome(doc.source, Status.REMOVED, chunks=doc.n_chunks))
        finally:
            self.indexes.save(self.store.corpus_version(self.coll.id))
            report.seconds = time.monotonic() - self._t0
            self._finish_run(run_id, report)
        self._maintain(report)
        return report

    # --- runs ----------------------------------------------------------------------------------------------
    def _start_run(self, command: str, report: IngestReport) -> int:
        with self.store.session() as s:
            stale = s.scalars(
                select(IngestRunRow).where(
                    IngestRunRow.collection_id == self.coll.id, IngestRunRow.status == "running"
                )
            ).all()
            for run in stale:  # we hold the collection lock, so nobody else is running
                run.status = "interrupted"
                report.notes.append(
                    f"the previous {run.command} (run #{run.id}, started {run.started:%Y-%m-%d %H:%M:%S} UTC) "
                    "was interrupted; its committed documents were kept and the indexes reconciled"
                )
            run = IngestRunRow(collection_id=self.coll.id, command=command, pid=os.getpid())
            s.add(run)
            s.flush()
            return run.id

    def _finish_run(self, run_id: int, report: IngestReport) -> None:
        with self.store.session() as s:
            run = s.get(IngestRunRow, run_id)
            assert run is not None, f"ingest run {run_id} vanished"  # made by _start_run in this job
            run.status = "finished"
            run.finished = utcnow()
            run.counts = dumps(report.counts)
            run.outcomes = dumps(
                [{"source": o.source, "status": o.status.value, "reason": o.reason} for o in report.outcomes]
            )

    # --- the main loop -------------------------------------------------------------------------------------
    def _ingest_found(self, found: list[Found], report: IngestReport) -> None:
        to_load: list[tuple[Found, str, int, float]] = []
        followers: list[tuple[Found, str, int, float]] = []  # same content as a file earlier in this run
        leaders: dict[str, str] = {}
        for f in found:
            outcome = self._classify(f, leaders, to_load, followers)
            if outcome is not None:
                report.outcomes.append(outcome)
                self._tick(f.path)

        pending: list[_Pending] = []
        with LoaderPool(self.file_timeout_s, self.loader) as pool:
            queue = list(to_load)
            info: dict[Path, tuple[Found, str, int, float]] = {}
            while queue or pool.pending():
                while queue and pool.pending() < 2:  # prefetch: parse the next file while this one embeds
                    item = queue.pop(0)
                    info[item[0].path] = item
                    pool.submit(item[0].path)
                res = pool.take()
                f, sha, size, mtime = info.pop(res.path)
                if res.error is not None or res.document is None:
                    report.outcomes.append(self._failed(f, res.error or "unknown error", res.seconds))
                    self._tick(f.path)
                    continue
                chunks = chunk_units(
                    res.document.units, self.tokenizer, self.chunk_tokens, self.chunk_overlap, self.embedder.max_tokens
                )
                if not chunks:
                    report.outcomes.append(self._failed(f, "no text to index after cleaning", res.seconds))
                    self._tick(f.path)
                    continue
                pending.append(_Pending(f, sha, size, mtime, res.document, chunks, res.seconds))
                if sum(len(p.chunks) for p in pending) >= EMBED_BATCH_CHUNKS or not (queue or pool.pending()):
                    self._flush(pending, report)
                    pending = []
        if pending:
            self._flush(pending, report)
        for f, sha, size, mtime in followers:
            report.outcomes.append(self._store_duplicate(f, sha, size, mtime, leaders))
            self._tick(f.path)

    def _classify(
        self,
        f: Found,
        leaders: dict[str, str],
        to_load: list[tuple[Found, str, int, float]],
        followers: list[tuple[Found, str, int, float]],
    ) -> Outcome | None:
        """Decide what to do with one discovered file; returns an outcome when nothing needs loading."""
        src = str(f.path)
        if f.error:
            return Outcome(src, Status.ERROR, reason=f.error)
        try:
            detect_kind(f.path)
        except UnsupportedType as exc:
            return Outcome(src, Status.ERROR if f.explicit else Status.SKIPPED, reason=str(exc))
        try:
            st = f.path.stat()
            if st.st_size > self.max_bytes:
                return Outcome(
                    src, Status.ERROR,
                    reason=f"file is {st.st_size / 2**20:.0f} MB, over the {self.max_bytes / 2**20:.0f} MB limit "
                    "(max_file_mb); split it or raise the limit",
                )
            sha = sha256_file(f.path)
        except OSError as exc:
            return Outcome(src, Status.ERROR, reason=f"cannot read: {exc.strerror or exc}")
        existing = self._document_by_source(src)
        if existing is not None and existing.sha256 == sha:
            if existing.status == "duplicate":
                return Outcome(src, Status.UNCHANGED, reason=f"unchanged; duplicate of {self._source_of(existing)}")
            if reader_version(existing.meta) >= READER_VERSION:
                return Outcome(src, Status.UNCHANGED, chunks=existing.n_chunks)
            # the file is unchanged but an older release chunked it: read it again (below, as a changed file)
        if sha in leaders or self._canonical_by_sha(sha, exclude_source=src) is not None:
            followers.append((f, sha, st.st_size, st.st_mtime))
            return None
        leaders[sha] = src
        to_load.append((f, sha, st.st_size, st.st_mtime))
        return None

    def _failed(self, f: Found, reason: str, seconds: float) -> Outcome:
        existing = self._document_by_source(str(f.path))
        if existing is not None:
            reason += "; the previously ingested version is kept"
        return Outcome(str(f.path), Status.ERROR, reason=reason, seconds=seconds)

    def _flush(self, pending: list[_Pending], report: IngestReport) -> None:
        """Embed the chunks of several documents in one call, then commit each document in its own transaction."""
        texts = [c.text for p in pending for c in p.chunks]
        t = time.monotonic()
        vecs = self.embedder.encode(texts)
        report.embed_seconds += time.monotonic() - t
        # store and index the same fp16-rounded vectors, so a rebuild from the store gives identical results
        vecs16 = vecs.astype(np.float16)
        start = 0
        for p in pending:
            n = len(p.chunks)
            report.outcomes.append(self._commit(p, vecs16[start : start + n]))
            start += n
            report.chunks_embedded += n
            self._chunks_done += n
            self._tick(p.found.path)

    def _commit(self, p: _Pending, vecs16: np.ndarray) -> Outcome:
        src = str(p.found.path)
        with self.store.session() as s:
            doc = s.scalars(
                select(DocumentRow).where(DocumentRow.collection_id == self.coll.id, DocumentRow.source == src)
            ).first()
            removed: list[int] = []
            status = Status.INGESTED
            reason: str | None = None
            if doc is not None:
                status = Status.UPDATED
                if doc.sha256 == p.sha:
                    reason = (f"re-read: the file is unchanged, but it was chunked by an older release (reader "
                              f"version {reader_version(doc.meta)}, now {READER_VERSION})")
                removed = self._detach_content(s, doc)
            else:
                doc = DocumentRow(collection_id=self.coll.id, source=src)
                s.add(doc)
            doc.kind = p.doc.kind.value
            doc.sha256, doc.size, doc.mtime = p.sha, p.size, p.mtime
            doc.status, doc.duplicate_of = "ok", None
            doc.warnings = dumps(p.doc.warnings) if p.doc.warnings else None
            doc.meta = dumps({**(p.doc.meta or {}), "reader_version": READER_VERSION})
            doc.n_chunks = len(p.chunks)
            doc.ingested = utcnow()
            s.flush()
            rows = [
                ChunkRow(
                    collection_id=self.coll.id, document_id=doc.id, ordinal=i, text=c.text, page=c.page,
                    kg_uri=c.kg_uri, label=c.label, section=c.section, n_tokens=c.n_tokens, text_sha256=c.sha256,
                    embedding=vecs16[i].tobytes(),
                )
                for i, c in enumerate(p.chunks)
            ]
            s.add_all(rows)
            for node in p.doc.nodes:
                s.add(KgNodeRow(
                    collection_id=self.coll.id, document_id=doc.id, uri=node.uri, label=node.label,
                    types=dumps(node.types), description=node.description,
                ))
            for e in p.doc.edges:
                s.add(KgEdgeRow(
                    collection_id=self.coll.id, document_id=doc.id, subject=e.subject, predicate=e.predicate,
                    object=e.object, object_is_uri=e.object_is_uri,
                ))
            s.flush()
            new_ids = np.array([r.id for r in rows], dtype=np.int64)
            self._bump(s)
        # committed: now the derived indexes (a crash here is repaired on the next open)
        self.indexes.apply(np.array(removed, dtype=np.int64), new_ids, vecs16.astype(np.float32))
        return Outcome(src, status, chunks=len(p.chunks), reason=reason, warnings=list(p.doc.warnings),
                       seconds=p.load_seconds)

    def _detach_content(self, s: Session, doc: DocumentRow) -> list[int]:
        """Take a document's old content away before it gets new content (or is removed).

        If other documents are duplicates of it, the first of them inherits the chunks (no re-embedding, no index
        change); otherwise the chunks are deleted and their ids returned for removal from the indexes.
        """
        heir = s.scalars(
            select(DocumentRow).where(DocumentRow.duplicate_of == doc.id).order_by(DocumentRow.id)
        ).first()
        if heir is not None:
            for table in (ChunkRow, KgNodeRow, KgEdgeRow):
                s.execute(update(table).where(table.document_id == doc.id).values(document_id=heir.id))
            s.execute(
                update(DocumentRow)
                .where(DocumentRow.duplicate_of == doc.id, DocumentRow.id != heir.id)
                .values(duplicate_of=heir.id)
            )
            heir.status, heir.duplicate_of = "ok", None
            heir.kind, heir.n_chunks, heir.meta, heir.warnings = doc.kind, doc.n_chunks, doc.meta, doc.warnings
            return []
        ids = list(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id == doc.id)))
        for table in (ChunkRow, KgNodeRow, KgEdgeRow):
            s.execute(delete(table).where(table.document_id == doc.id))
        return ids

    def _bump(self, s: Session) -> None:
        s.execute(
            update(CollectionRow)
            .where(CollectionRow.id == self.coll.id)
            .values(corpus_version=CollectionRow.corpus_version + 1, updated=utcnow())
        )

    def _store_duplicate(
        self, f: Found, sha: str, size: int, mtime: float, leaders: dict[str, str]
    ) -> Outcome:
        src = str(f.path)
        canonical = self._canonical_by_sha(sha, exclude_source=src)
        if canonical is None:
            leader = leaders.get(sha, "another file")
            return Outcome(src, Status.ERROR, reason=f"same content as {leader}, which could not be ingested")
        removed: list[int] = []
        with self.store.session() as s:
            doc = s.scalars(
                select(DocumentRow).where(DocumentRow.collection_id == self.coll.id, DocumentRow.source == src)
            ).first()
            if doc is None:
                doc = DocumentRow(collection_id=self.coll.id, source=src)
                s.add(doc)
            else:
                removed = self._detach_content(s, doc)
            doc.kind, doc.sha256, doc.size, doc.mtime = canonical.kind, sha, size, mtime
            doc.status, doc.duplicate_of, doc.n_chunks, doc.ingested = "duplicate", canonical.id, 0, utcnow()
            self._bump(s)
        if removed:
            self.indexes.apply(np.array(removed, dtype=np.int64), np.zeros(0, np.int64), np.zeros((0, 1)))
        return Outcome(src, Status.DUPLICATE, reason=f"same content as {canonical.source}; stored once")

    # --- removal -------------------------------------------------------------------------------------------
    def _remove_document(self, doc_id: int) -> None:
        with self.store.session() as s:
            doc = s.get(DocumentRow, doc_id)
            assert doc is not None, f"document {doc_id} vanished"  # the caller read it under the ingest lock
            removed = self._detach_content(s, doc) if doc.status == "ok" else []
            s.delete(doc)
            self._bump(s)
        if removed:
            self.indexes.apply(np.array(removed, dtype=np.int64), np.zeros(0, np.int64), np.zeros((0, 1)))

    def _remove_missing(self, dirs: list[Path], report: IngestReport) -> None:
        roots = [str(d.expanduser().resolve()) for d in dirs]
        with self.store.session() as s:
            docs = s.execute(
                select(DocumentRow.id, DocumentRow.source, DocumentRow.n_chunks).where(
                    DocumentRow.collection_id == self.coll.id
                )
            ).all()
        for doc_id, source, n in docs:
            inside = any(source == r or source.startswith(r.rstrip(os.sep) + os.sep) for r in roots)
            if inside and not Path(source).exists():
                self._remove_document(doc_id)
                report.outcomes.append(Outcome(source, Status.REMOVED, chunks=n, reason="file is gone"))

    # --- lookups -------------------------------------------------------------------------------------------
    def _document_by_source(self, src: str) -> DocumentRow | None:
        with self.store.session() as s:
            return s.scalars(
                select(DocumentRow).where(DocumentRow.collection_id == self.coll.id, DocumentRow.source == src)
            ).first()

    def _find_document(self, src: str) -> DocumentRow | None:
        doc = self._document_by_source(src)
        if doc is None:
            doc = self._document_by_source(str(Path(src).expanduser().resolve()))
        return doc

    def _canonical_by_sha(self, sha: str, exclude_source: str) -> DocumentRow | None:
        with self.store.session() as s:
            return s.scalars(
                select(DocumentRow).where(
                    DocumentRow.collection_id == self.coll.id,
                    DocumentRow.sha256 == sha,
                    DocumentRow.status == "ok",
                    DocumentRow.source != exclude_source,
                )
            ).first()

    def _source_of(self, doc: DocumentRow) -> str:
        with self.store.session() as s:
            other = s.get(DocumentRow, doc.duplicate_of) if doc.duplicate_of else None
            return other.source if other else "?"

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._tokenizer = Tokenizer(self.embedder.tokenizer)
        return self._tokenizer

    def _tick(self, path: Path) -> None:
        self._files_done += 1
        if self.progress is not None:
            elapsed = max(1e-9, time.monotonic() - self._t0)
            self.progress(Progress(self._files_done, self._files_total, self._chunks_done,
                                   self._chunks_done / elapsed, path.name))
