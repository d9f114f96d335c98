"""The Rag facade: the one Python API that the CLI, the UI and users call."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from app.config import Settings, load_settings
from index.embedder import Embedder, resolve_model
from index.indexes import CollectionIndexes
from index.store import ChunkRow, CollectionRow, DocumentRow, IngestRunRow, KgEdgeRow, KgNodeRow, Store
from ingest.job import CollectionLock, IngestJob, IngestLocked, IngestReport, ProgressFn
from retrieval.rerank import Reranker, RerankerError
from retrieval.search import Searcher, SearchError, SearchParams, StaleIndex
from retrieval.types import Filters, Hit, Neighbour, SearchResults

__all__ = ["Filters", "Hit", "ModelMismatch", "Neighbour", "Rag", "RagError", "SearchResults"]

log = logging.getLogger(__name__)


class RagError(RuntimeError):
    """A problem the user can fix; the message says how."""


class ModelMismatch(RagError):
    pass


class Rag:
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.data_dir = settings.data_dir.expanduser()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        url = settings.database_url or f"sqlite:///{self.data_dir / 'localrag.sqlite'}"
        self.store = Store(url)
        self._embedder: Embedder | None = embedder  # share one across Rag objects to load the model once
        self._indexes: dict[str, CollectionIndexes] = {}
        self._indexes_lock = threading.Lock()
        self._reranker: Reranker | None = None

    @classmethod
    def open(
        cls, data_dir: str | Path | None = None, config_file: Path | None = None, embedder: Embedder | None = None,
        **overrides: Any,
    ) -> Rag:
        """Open (or create) a data directory. Keyword overrides win over localrag.toml and LOCALRAG_* variables."""
        if data_dir is not None:
            overrides["data_dir"] = Path(data_dir)
        return cls(load_settings(config_file, **overrides), embedder=embedder)

    def close(self) -> None:
        self.store.engine.dispose()

    def __enter__(self) -> Rag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- parts ---------------------------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            s = self.settings
            self._embedder = Embedder(s.embedding_model, device=s.device, batch_size=s.embed_batch_size)
        return self._embedder

    def _folder(self, coll: CollectionRow) -> Path:
        return self.data_dir / "collections" / f"{coll.id:04d}"

    def _collection(self, name: str, create: bool) -> CollectionRow:
        coll = self.store.collection(name)
        model_id, _ = resolve_model(self.settings.embedding_model)
        if coll is None:
            if not create:
                known = ", ".join(c.name for c in self.store.collections()) or "none yet"
                raise RagError(f"no collection named {name!r} (collections: {known}); ingest something into it first")
            with self.store.session() as s:
                coll = CollectionRow(
                    name=name, embedding_model=model_id, embedding_dim=self.embedder.dim,
                    chunk_tokens=self.settings.chunk_tokens, chunk_overlap=self.settings.chunk_overlap,
                )
                s.add(coll)
            return self.store.collection(name)
        if coll.embedding_model != model_id:
            raise ModelMismatch(
                f"collection {name!r} was built with the embedding model {coll.embedding_model} "
                f"({coll.embedding_dim}-d), but the configured model is {model_id}. Vectors from two models cannot "
                "be compared: configure the collection's model, or use another --collection."
            )
        return coll

    def _new_indexes(self, coll: CollectionRow) -> CollectionIndexes:
        return CollectionIndexes(
            self.store, coll.id, coll.embedding_dim, self._folder(coll), self.settings.lexical_backend,
            use_gpu=self.settings.use_gpu,
        )

    def _open_indexes(self, coll: CollectionRow) -> CollectionIndexes:
        """Indexes of a collection, in step with the store (repaired on disk when no ingest holds the lock)."""
        with self._indexes_lock:  # threads share one reload; searches keep the object they started with
            cached = self._indexes.get(coll.name)
            if cached is not None and cached.version == self.store.corpus_version(coll.id):
                return cached
            idx = self._new_indexes(coll)
            try:
                with CollectionLock(self._folder(coll)):
                    idx.open(persist=True)
            except IngestLocked:
                idx.open(persist=False)  # an ingest is running: catch up in memory, write nothing
            self._indexes[coll.name] = idx
            return idx

    # --- ingestion -----------------------------------------------------------------------------------------
    def ingest(
        self, paths: list[str | Path], collection: str = "default", progress: ProgressFn | None = None,
        sync: bool = False,
    ) -> IngestReport:
        """Ingest files and folders. With `sync=True`, documents under the given folders whose files are gone are
        removed too. Unchanged files are skipped; changed ones replace their old chunks."""
        coll = self._collection(collection, create=True)
        folder = self._folder(coll)
        with CollectionLock(folder):
            idx = self._new_indexes(coll)
            repair = idx.open(persist=True)
            job = self._job(coll, idx, progress)
            p = [Path(x) for x in paths]
            report = job.ingest(p, sync_dirs=[x for x in p if x.is_dir()] if sync else None,
                                command="sync" if sync else "ingest")
            self._indexes[coll.name] = idx
        self._add_notes(report, coll, repair)
        return report

    def sync(self, folders: list[str | Path], collection: str = "default",
             progress: ProgressFn | None = None) -> IngestReport:
        return self.ingest(folders, collection=collection, progress=progress, sync=True)

    def remove(self, sources: list[str], collection: str = "default") -> IngestReport:
        coll = self._collection(collection, create=False)
        folder = self._folder(coll)
        with CollectionLock(folder):
            idx = self._new_indexes(coll)
            repair = idx.open(persist=True)
            report = self._job(coll, idx, None).remove(sources)
            self._indexes[coll.name] = idx
        self._add_notes(report, coll, repair)
        return report

    def _job(self, coll: CollectionRow, idx: CollectionIndexes, progress: ProgressFn | None) -> IngestJob:
        return IngestJob(
            self.store, self.embedder, coll, idx, chunk_tokens=coll.chunk_tokens, chunk_overlap=coll.chunk_overlap,
            file_timeout_s=self.settings.file_timeout_s, max_file_mb=self.settings.max_file_mb, progress=progress,
        )

    def _add_notes(self, report: IngestReport, coll: CollectionRow, repair: Any) -> None:
        if repair.any:
            report.repaired = {
                "vectors_added": repair.vectors_added, "vectors_removed": repair.vectors_removed,
                "vectors_rebuilt": repair.vectors_rebuilt, "lexical_rebuilt": repair.lexical_rebuilt,
            }
            report.notes.append(
                f"indexes were out of step with the store and were repaired from stored embeddings "
                f"(+{repair.vectors_added} / -{repair.vectors_removed} vectors, BM25 rebuilt: {repair.lexical_rebuilt})"
            )
        if (coll.chunk_tokens, coll.chunk_overlap) != (self.settings.chunk_tokens, self.settings.chunk_overlap):
            report.notes.append(
                f"collection {coll.name!r} keeps its own chunking ({coll.chunk_tokens} tokens, overlap "
                f"{coll.chunk_overlap}); the configured chunk_tokens/chunk_overlap apply to new collections"
            )

    # --- status --------------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"data_dir": str(self.data_dir), "database": self.store.url, "collections": []}
        for coll in self.store.collections():
            with self.store.session() as s:
                def count(q: Any) -> int:
                    return int(s.scalar(q) or 0)

                docs = count(select(func.count()).select_from(DocumentRow).where(
                    DocumentRow.collection_id == coll.id, DocumentRow.status == "ok"))
                dups = count(select(func.count()).select_from(DocumentRow).where(
                    DocumentRow.collection_id == coll.id, DocumentRow.status == "duplicate"))
                chunks = count(select(func.count()).select_from(ChunkRow).where(ChunkRow.collection_id == coll.id))
                nodes = count(select(func.count()).select_from(KgNodeRow).where(KgNodeRow.collection_id == coll.id))
                edges = count(select(func.count()).select_from(KgEdgeRow).where(KgEdgeRow.collection_id == coll.id))
                kinds = dict(s.execute(
                    select(DocumentRow.kind, func.count()).where(
                        DocumentRow.collection_id == coll.id, DocumentRow.status == "ok"
                    ).group_by(DocumentRow.kind)).all())
                last = s.scalars(select(IngestRunRow).where(IngestRunRow.collection_id == coll.id)
                                 .order_by(IngestRunRow.id.desc())).first()
            idx = self._open_indexes(coll)
            out["collections"].append({
                "name": coll.name,
                "embedding_model": coll.embedding_model,
                "embedding_dim": coll.embedding_dim,
                "chunk_tokens": coll.chunk_tokens,
                "chunk_overlap": coll.chunk_overlap,
                "corpus_version": coll.corpus_version,
                "documents": docs,
                "duplicates": dups,
                "kinds": kinds,
                "chunks": chunks,
                "kg_nodes": nodes,
                "kg_edges": edges,
                "index": idx.health(),
                "last_run": None if last is None else {
                    "id": last.id, "command": last.command, "status": last.status,
                    "started": f"{last.started:%Y-%m-%d %H:%M:%S}",
                },
            })
        return out

    # --- search ------------------------------------------------------------------------------------------------
    @property
    def reranker(self) -> Reranker | None:
        """The configured cross-encoder, or None: no reranker is active unless `reranker_model` is set."""
        if self._reranker is None and self.settings.reranker_model:
            s = self.settings
            self._reranker = Reranker(s.reranker_model, device=s.device, batch_size=s.rerank_batch_size)
        return self._reranker

    def search(
        self, query: str, k: int = 5, collection: str = "default", mode: str | None = None,
        filters: Filters | dict[str, Any] | None = None, rerank: bool | None = None, expand: bool = False,
        fusion: str | None = None, candidates: int | None = None, min_relevance: float | None = None,
        **params: Any,
    ) -> SearchResults:
        """Hybrid (or dense / lexical) search of a collection; returns hits best first, with per-stage scores,
        ranks and timings. `filters`: `{"kinds": [...], "sources": ["*.md"]}`. `rerank`: None = when a reranker is
        configured, True = required, False = skip. `expand`: add knowledge-graph neighbours to RDF hits.
        Other keyword arguments set SearchParams fields (rrf_k, weights, alpha, rerank_top)."""
        if not isinstance(query, str) or not query.strip():
            raise RagError("empty query: type a question or some keywords")
        st = self.settings
        p = SearchParams(
            k=k, mode=mode or st.search_mode, fusion=fusion or st.fusion, candidates=candidates or st.candidates,
            rrf_k=st.rrf_k, weights={"dense": st.rrf_weight_dense, "lexical": st.rrf_weight_lexical},
            alpha=st.convex_alpha, min_relevance=st.min_relevance if min_relevance is None else min_relevance,
            rerank_top=st.rerank_top, expand=expand, max_neighbours=st.kg_max_neighbours,
        )
        for key, value in params.items():
            if not hasattr(p, key):
                raise RagError(f"unknown search parameter {key!r}")
            setattr(p, key, value)
        try:
            p.check()
            f = Filters.coerce(filters)
        except (SearchError, ValueError, TypeError) as exc:
            raise RagError(str(exc)) from None
        reranker = None
        if rerank is not False:
            reranker = self.reranker
            if reranker is None and rerank:
                raise RagError("reranking was asked for, but no reranker is configured: set reranker_model "
                               "(LOCALRAG_RERANKER_MODEL) to a sentence-transformers CrossEncoder id or folder")
        coll = self._collection(collection, create=False)
        if p.mode != "lexical":
            _ = self.embedder.model  # load before the clock starts: stage timings measure searching, not loading
        for attempt in range(5):
            idx = self._open_indexes(coll)
            try:
                res = Searcher(self.store, self.embedder, idx, reranker).search(query, p, f)
            except StaleIndex:
                with self._indexes_lock:
                    if self._indexes.get(coll.name) is idx:
                        del self._indexes[coll.name]  # reload from the store on the next attempt
                if attempt == 4:
                    raise RagError("the collection kept changing during the search (an ingest is running); "
                                   "try again") from None
                continue
            except RerankerError as exc:
                raise RagError(str(exc)) from None
            res.collection = collection
            if reranker is None and p.mode != "lexical":
                log.debug("no reranker active")
            return res
        raise AssertionError("unreachable")
