"""The derived indexes of one collection (vectors + BM25), kept in step with the store's corpus_version.

The vectors live where the vector backend keeps them (index/vector_index.py: FAISS files in the collection's
folder, or a Milvus collection); `make_vector_backend` picks it from the settings, once. The BM25 index is the
class `lexical_class` picks (index/lexical.py), saved in the collection's folder.

On open, an index saved at another corpus_version (a crash between the store commit and the index save, or a
manual edit) is reconciled from the store: vectors are added from the stored fp16 embeddings for chunks that lack
them and removed for chunks that are gone; BM25 un-indexes the chunks that are gone and indexes the missing ones
from their texts (rebuilt from every text only when its files are unreadable). Nothing is re-embedded.

An ingest changes both indexes incrementally (`apply`) and persists them as they are (`save`); then, as a separate
step after that save, `maintain` restructures them when their size calls for it (FAISS: flat <-> IVF or IVF
retraining, `faiss_index`, index/vectors.py `plan_index`; BM25: merging segments into the base), writing new files
and switching to them atomically, so searches read the consistent files of the ingest meanwhile and a kill during
maintenance loses nothing (tests/test_maintenance.py). With Milvus the vectors are written to Milvus at `apply` and
the corpus_version they reflect is a collection property written at `save` (index/milvus.py); a crash in between
leaves an older version there, so the next open reconciles.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from localrag.index.lexical import LexicalIndex, lexical_class
from localrag.index.store import ChunkRow, Store
from localrag.index.vector_index import VectorBackend, VectorIndex
from localrag.index.vectors import AUTO, AUTO_THRESHOLD, FaissBackend, check_spec

log = logging.getLogger(__name__)


@dataclass
class Repair:
    """What opening the indexes had to fix; empty when everything was in step."""

    vectors_added: int = 0
    vectors_removed: int = 0
    vectors_rebuilt: bool = False
    lexical_rebuilt: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.vectors_added or self.vectors_removed or self.vectors_rebuilt or self.lexical_rebuilt)


@dataclass
class VectorSettings:
    """Where and how the dense vectors are indexed (Settings: vector_backend, faiss_index, milvus_*)."""

    backend: str = "faiss"  # faiss | milvus
    faiss_index: str = AUTO  # auto | flat | an IVF factory string
    ann_threshold: int = AUTO_THRESHOLD
    nprobe: int | None = None
    milvus_uri: str = ""
    milvus_index: str = "HNSW"
    milvus_collection: str = ""  # name of this collection's Milvus collection

    def __post_init__(self) -> None:
        if self.backend not in ("faiss", "milvus"):
            raise ValueError(f"unknown vector_backend {self.backend!r} (use 'faiss' or 'milvus')")
        check_spec(self.faiss_index)


def make_vector_backend(
    vs: VectorSettings, dim: int, folder: Path, use_gpu: bool = True
) -> VectorBackend[Any]:
    """The one place that picks the vector backend: FAISS files in the collection's `folder`, or a Milvus
    collection (pymilvus is imported only then)."""
    if vs.backend == "milvus":
        from localrag.index.milvus import MilvusBackend

        return MilvusBackend(vs.milvus_uri, vs.milvus_collection, dim, index_type=vs.milvus_index)
    return FaissBackend(folder / "vectors.faiss", dim, spec=vs.faiss_index, threshold=vs.ann_threshold,
                        nprobe=vs.nprobe, use_gpu=use_gpu)


class CollectionIndexes:
    def __init__(
        self, store: Store, collection_id: int, dim: int, folder: Path, lexical_backend: str = "bm25",
        use_gpu: bool = True, vector_settings: VectorSettings | None = None,
    ) -> None:
        self.store = store
        self.collection_id = collection_id
        self.dim = dim
        self.folder = folder
        self.lexical_backend = lexical_backend  # as configured ("bm25s" is the old name of "bm25")
        self.lexical_kind = lexical_class(lexical_backend)
        self.use_gpu = use_gpu
        self.vs = vector_settings or VectorSettings()
        self.vector_backend: VectorBackend[Any] = make_vector_backend(self.vs, dim, folder, use_gpu)
        self.vectors: VectorIndex = self.vector_backend.new_index()
        self.lexical: LexicalIndex = self.lexical_kind()
        self.version = -1  # corpus_version the in-memory indexes reflect
        self._stamp: str | None = None

    @property
    def stamp(self) -> str:
        """The collection's identity in the store (Store.collection_stamp), saved with the index files."""
        if self._stamp is None:
            self._stamp = self.store.collection_stamp(self.collection_id)
        return self._stamp

    @property
    def lexical_path(self) -> Path:
        return self.folder / f"bm25-{self.lexical_kind.saved_name}"

    def open(self, persist: bool = True) -> Repair:
        """Load the saved indexes and bring them in step with the store. `persist=False` repairs in memory only
        (for readers that must not write while another process ingests).

        The store may change while this reads it (another process ingesting). Every change bumps
        corpus_version in the same transaction, so the rebuild is repeated until the version is the same before
        and after it: then both indexes reflect that one version, never a mix of two."""
        self.folder.mkdir(parents=True, exist_ok=True)
        repair = Repair()
        for _ in range(20):
            db_version = self.store.corpus_version(self.collection_id)
            v_version = self._load_vectors(db_version, repair)
            l_version = self._load_lexical(db_version, repair)
            if self.store.corpus_version(self.collection_id) == db_version:
                break
            repair.notes.append("the store changed while the indexes were read; read again")
        else:
            raise RuntimeError("the collection kept changing while its indexes were being loaded")
        self.version = db_version
        if persist and (v_version != db_version or l_version != db_version):
            self.save(db_version)
        if repair.any:
            log.warning("indexes of collection %s repaired: %s", self.collection_id, repair)
        return repair

    def _load_vectors(self, db_version: int, repair: Repair) -> int:
        """Load the saved vectors and reconcile them with the store; returns the version they were saved at."""
        saved = self.vector_backend.load(self.stamp, lambda: len(self.store.chunk_ids(self.collection_id)))
        self.vectors = saved.index
        if saved.discarded:
            repair.notes.append(saved.discarded)
            repair.vectors_rebuilt = True
        if saved.version != db_version:
            self._reconcile_vectors(repair)
        return saved.version

    def _load_lexical(self, db_version: int, repair: Repair) -> int:
        """Load the saved BM25 index and reconcile it with the store; returns the version it was saved at (-2:
        unusable, rebuilt from every chunk text)."""
        try:
            self.lexical, lmeta = self.lexical_kind.load(self.lexical_path)
            l_version = int(lmeta.get("corpus_version", -1))
            if lmeta.get("collection") != self.stamp:  # as for the vectors: rebuilt from the chunk texts
                self.lexical, l_version = self.lexical_kind(), -2
        except Exception:
            self.lexical, l_version = self.lexical_kind(), -2
        if l_version == -2:
            self.rebuild_lexical()
            repair.lexical_rebuilt = db_version > 0
        elif l_version != db_version:
            db_ids = self.store.chunk_ids(self.collection_id)
            gone = np.setdiff1d(self.lexical.ids, db_ids, assume_unique=True)
            missing = np.setdiff1d(db_ids, self.lexical.ids, assume_unique=True)
            self.lexical.remove(gone)
            self.lexical.add(missing, self._texts(missing))
            repair.lexical_rebuilt = bool(len(gone) or len(missing))
            if repair.lexical_rebuilt:
                repair.notes.append(f"BM25: -{len(gone)} / +{len(missing)} chunks")
        return l_version

    def _texts(self, ids: np.ndarray) -> list[str]:
        """Chunk texts of `ids` (same order) from the store."""
        from sqlalchemy import select

        out: dict[int, str] = {}
        with self.store.session() as s:
            for start in range(0, len(ids), 5000):
                part = [int(i) for i in ids[start : start + 5000]]
                rows = s.execute(select(ChunkRow.id, ChunkRow.text).where(ChunkRow.id.in_(part)))
                out.update((int(i), t) for i, t in rows)
        return [out[int(i)] for i in ids]

    def _reconcile_vectors(self, repair: Repair) -> None:
        db_ids = self.store.chunk_ids(self.collection_id)
        ix_ids = self.vectors.ids()
        if len(np.unique(ix_ids)) != len(ix_ids):  # duplicate ids: start from scratch
            self.vectors = self.vector_backend.new_index()
            ix_ids = np.zeros(0, np.int64)
            repair.vectors_rebuilt = True
        extra = np.setdiff1d(ix_ids, db_ids, assume_unique=True)
        missing = np.setdiff1d(db_ids, ix_ids, assume_unique=True)
        if len(extra):
            self.vectors.remove(extra)
            repair.vectors_removed += len(extra)
        if len(missing):
            for start in range(0, len(missing), 20000):
                part = missing[start : start + 20000]
                self.vectors.add(part, self.store.embeddings(part, self.dim))
            repair.vectors_added += len(missing)

    def rebuild_lexical(self) -> None:
        ids, texts = self.store.chunk_texts(self.collection_id)
        self.lexical = self.lexical_kind()
        self.lexical.build(ids, texts)

    # --- changes made by an ingest (the store was committed first) ----------------------------------------------
    def apply(self, removed: np.ndarray, added_ids: np.ndarray, added_vecs: np.ndarray) -> None:
        """Remove and add chunks in both indexes; BM25 reads the added chunks' texts from the store."""
        removed = np.asarray(removed, dtype=np.int64)
        added_ids = np.asarray(added_ids, dtype=np.int64)
        self.vectors.remove(removed)
        self.vectors.add(added_ids, added_vecs)
        self.lexical.remove(removed)
        self.lexical.add(added_ids, self._texts(added_ids))

    def maybe_switch_vectors(self) -> str | None:
        """Rebuild the vector index when the collection crossed a size (or the setting changed), as the backend
        decides (FAISS: flat or IVF, from the store's fp16 embeddings, trained on a sample). Returns the new index's
        description, or None. In memory only: `maintain` saves it."""
        resized = self.vector_backend.resized(self.vectors, lambda part: self.store.embeddings(part, self.dim))
        if resized is None:
            return None
        self.vectors = resized
        log.info("collection %s: vector index is now %s", self.collection_id, self.vectors.description)
        return self.vectors.description

    def save(self, version: int) -> None:
        """Persist both indexes as reflecting `version`, as they are (restructuring them is `maintain`'s)."""
        self.vector_backend.save(self.vectors, version, self.stamp)
        self.lexical.save(self.lexical_path, {"corpus_version": version, "collection": self.stamp})
        self.version = version

    def maintain(self) -> list[str]:
        """Restructure the saved indexes when their size calls for it: the FAISS flat <-> IVF switch or IVF
        retraining (`VectorBackend.resized`) and the BM25 merges into the base (`LexicalIndex.maintained`). Run
        after an ingest has committed and saved (`save`), under the collection lock; the new structures are built
        aside while this object's indexes keep serving searches, each is written to new files and switched to
        atomically by its save (FAISS: the index file, then its metadata; BM25: `current.json`), and only then
        replaces the one in use. A kill at any point leaves the previous files or the new ones, both reflecting the
        same corpus_version (or the FAISS metadata marking the vectors in flux, which the next open reconciles by
        id from the store). Returns what was done (empty: nothing due)."""
        if self.version < 0:
            raise RuntimeError("maintain() needs the indexes opened or saved first")
        done = []
        resized = self.vector_backend.resized(self.vectors, lambda part: self.store.embeddings(part, self.dim))
        if resized is not None:
            self.vector_backend.save(resized, self.version, self.stamp)
            self.vectors = resized
            done.append(f"vector index is now {resized.description}")
        lexical = self.lexical.maintained()
        if lexical is not None:
            lexical.save(self.lexical_path, {"corpus_version": self.version, "collection": self.stamp})
            self.lexical = lexical
            done.append(f"BM25 segments merged: {lexical.segment_count} left")
        if done:
            log.info("collection %s maintained: %s", self.collection_id, "; ".join(done))
        return done

    def health(self) -> dict:
        """Counts, kinds and whether both indexes hold exactly the store's chunks. A vector index whose ids live
        elsewhere (Milvus: `remote_ids`) is checked by its version and count instead of reading every id back."""
        db_version = self.store.corpus_version(self.collection_id)
        db_ids = self.store.chunk_ids(self.collection_id)
        if getattr(self.vectors, "remote_ids", False):
            vectors_in_step = self.version == db_version and self.vectors.ntotal == len(db_ids)
        else:
            ix_ids = self.vectors.ids()
            vectors_in_step = len(db_ids) == len(ix_ids) and np.array_equal(np.sort(ix_ids), db_ids)
        in_step = bool(vectors_in_step and np.array_equal(self.lexical.ids, db_ids))
        return {
            "corpus_version": db_version,
            "index_version": self.version,
            "chunks": int(len(db_ids)),
            "vectors": int(self.vectors.ntotal),
            "bm25_docs": len(self.lexical),
            "lexical_backend": self.lexical_backend,
            "vector_backend": self.vs.backend,
            "vector_index": self.vectors.description,
            "bm25_segments": self.lexical.segment_count,
            "gpu": self.vectors.use_gpu,
            "in_step": in_step,
        }
