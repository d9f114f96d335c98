"""The derived indexes of one collection (FAISS + BM25), kept in step with the store's corpus_version.

On open, an index saved at another corpus_version (a crash between the SQLite commit and the index save, or a
manual edit) is reconciled from the store: vectors are added from the stored fp16 embeddings for chunks that lack
them and removed for chunks that are gone; BM25 is rebuilt from the chunk texts. Nothing is re-embedded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from localrag.index.lexical import LexicalIndex
from localrag.index.store import Store
from localrag.index.vectors import VectorIndex

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


class CollectionIndexes:
    def __init__(
        self, store: Store, collection_id: int, dim: int, folder: Path, lexical_backend: str = "bm25s",
        use_gpu: bool = True,
    ) -> None:
        self.store = store
        self.collection_id = collection_id
        self.dim = dim
        self.folder = folder
        self.lexical_backend = lexical_backend
        self.use_gpu = use_gpu
        self.vectors = VectorIndex(dim, use_gpu=use_gpu)
        self.lexical = LexicalIndex(lexical_backend)
        self.version = -1  # corpus_version the in-memory indexes reflect
        self._lexical_dirty = False

    @property
    def vectors_path(self) -> Path:
        return self.folder / "vectors.faiss"

    @property
    def lexical_path(self) -> Path:
        return self.folder / f"bm25-{self.lexical_backend}"

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
            v_version, l_version = self._load_and_reconcile(db_version, repair)
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

    def _load_and_reconcile(self, db_version: int, repair: Repair) -> tuple[int, int]:
        try:
            self.vectors, vmeta = VectorIndex.load(self.vectors_path, self.dim, use_gpu=self.use_gpu)
            v_version = int(vmeta.get("corpus_version", -1))
        except FileNotFoundError:
            self.vectors, v_version = VectorIndex(self.dim, use_gpu=self.use_gpu), -1
        except Exception as exc:  # unreadable file: rebuild from the store
            repair.notes.append(f"vector index unreadable ({exc}); rebuilt from stored embeddings")
            self.vectors, v_version = VectorIndex(self.dim, use_gpu=self.use_gpu), -1
            repair.vectors_rebuilt = True
        if v_version != db_version:
            self._reconcile_vectors(repair)
        try:
            self.lexical, lmeta = LexicalIndex.load(self.lexical_path, self.lexical_backend)
            l_version = int(lmeta.get("corpus_version", -1))
        except Exception:
            l_version = -1
        if l_version != db_version:
            self.rebuild_lexical()
            repair.lexical_rebuilt = l_version != -1 or db_version > 0
        return v_version, l_version

    def _reconcile_vectors(self, repair: Repair) -> None:
        db_ids = self.store.chunk_ids(self.collection_id)
        ix_ids = self.vectors.ids()
        if len(np.unique(ix_ids)) != len(ix_ids):  # duplicate ids: start from scratch
            self.vectors = VectorIndex(self.dim, use_gpu=self.use_gpu)
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
        self.lexical = LexicalIndex(self.lexical_backend)
        self.lexical.build(ids, texts)
        self._lexical_dirty = False

    # --- changes made by an ingest (the store was committed first) ----------------------------------------------
    def apply(self, removed: np.ndarray, added_ids: np.ndarray, added_vecs: np.ndarray) -> None:
        self.vectors.remove(removed)
        self.vectors.add(added_ids, added_vecs)
        self._lexical_dirty = True

    def save(self, version: int) -> None:
        """Persist both indexes as reflecting `version` (rebuilding BM25 first if chunks changed)."""
        if self._lexical_dirty:
            self.rebuild_lexical()
        self.vectors.save(self.vectors_path, {"corpus_version": version})
        self.lexical.save(self.lexical_path, {"corpus_version": version})
        self.version = version

    def health(self) -> dict:
        db_version = self.store.corpus_version(self.collection_id)
        db_ids = self.store.chunk_ids(self.collection_id)
        ix_ids = self.vectors.ids()
        in_step = bool(
            len(db_ids) == len(ix_ids) and np.array_equal(np.sort(ix_ids), db_ids) and len(self.lexical) == len(db_ids)
        )
        return {
            "corpus_version": db_version,
            "index_version": self.version,
            "chunks": int(len(db_ids)),
            "vectors": int(self.vectors.ntotal),
            "bm25_docs": len(self.lexical),
            "lexical_backend": self.lexical_backend,
            "gpu": self.vectors.use_gpu,
            "in_step": in_step,
        }
