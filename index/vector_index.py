"""The dense-vector index as the collection and the search see it, whatever keeps the vectors (like txtai's
`ann/base.py`): `VectorIndex` is what a search and an ingest call, `VectorBackend` is where a collection's vectors
live and how they are kept in step with the store's corpus_version.

Two backends implement both: FAISS files in the collection's folder (index/vectors.py) and a Milvus collection
(index/milvus.py). `indexes.make_vector_backend` picks one from the settings, once; nothing else asks which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np


class VectorIndex(Protocol):
    """Unit vectors by chunk id, searched by inner product (= cosine)."""

    dim: int
    use_gpu: bool  # whether searches run on a GPU copy

    @property
    def ntotal(self) -> int:
        """How many vectors it holds."""
        ...

    @property
    def description(self) -> str:
        """What kind of index it is, for status output ("flat", "IVF1024,Flat nprobe=64", "milvus HNSW")."""
        ...

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        """Index vectors under these chunk ids (ids not indexed yet)."""
        ...

    def remove(self, ids: np.ndarray) -> int:
        """Un-index chunk ids (absent ones are ignored); returns how many were removed."""
        ...

    def ids(self) -> np.ndarray:
        """Every indexed chunk id (int64, in no particular order)."""
        ...

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of `ids` (all must be present), shape (len(ids), dim)."""
        ...

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query, best first; ids of -1 mark empty slots. `allowed_ids` restricts it."""
        ...


@dataclass
class SavedVectors:
    """What a backend found of a collection's saved vectors."""

    index: VectorIndex
    version: int  # the corpus_version they reflect; -1: unknown (the collection reconciles them with the store)
    discarded: str | None = None  # why saved vectors were thrown away (the collection rebuilds them from the store)


IndexT = TypeVar("IndexT", bound=VectorIndex)


class VectorBackend(Protocol[IndexT]):
    """Where one collection's vectors live, and how they are opened, saved and resized (`IndexT`: the
    VectorIndex class it keeps)."""

    def new_index(self) -> IndexT:
        """The index to start from when nothing saved is usable: an empty one, or for a backend that keeps its
        vectors elsewhere (Milvus) the index as it stands there (the collection reconciles it by id)."""
        ...

    def load(self, stamp: str, stored_count: Callable[[], int]) -> SavedVectors:
        """The saved index and the corpus_version it reflects. `stamp` names the collection (Store.collection_stamp);
        `stored_count()` is how many chunks the store holds, for a backend that cannot tell by the stamp whose
        vectors it keeps."""
        ...

    def save(self, index: IndexT, version: int, stamp: str) -> None:
        """Persist `index` as reflecting `version` of the collection `stamp`."""
        ...

    def resized(self, index: IndexT, embeddings: Callable[[np.ndarray], np.ndarray]) -> IndexT | None:
        """A rebuilt index when the collection's size calls for another structure (FAISS flat <-> IVF), made from
        `embeddings(ids)` (the store's fp16 vectors); None to keep `index` as it is."""
        ...
