"""FAISS vector index: IndexIDMap2 over exact inner product on normalized vectors (= cosine).

The CPU index is the master (GPU indexes cannot remove ids); when faiss sees a GPU, searches go to a GPU copy
that is refreshed after every change.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import faiss
import numpy as np

log = logging.getLogger(__name__)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file, fsync, then rename over the target: readers see the old or the new file, never half."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: dict) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


class VectorIndex:
    def __init__(self, dim: int, use_gpu: bool = True) -> None:
        self.dim = dim
        self.cpu = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.use_gpu = use_gpu and gpu_count() > 0
        self._gpu = None
        self._gpu_stale = True

    # --- changes -------------------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if vecs.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vecs.shape}")
        self.cpu.add_with_ids(vecs, np.ascontiguousarray(ids, dtype=np.int64))
        self._gpu_stale = True

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        n = int(self.cpu.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))))
        self._gpu_stale = True
        return n

    # --- reads ---------------------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.cpu.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.cpu.id_map).astype(np.int64)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of `ids` (all must be present), shape (len(ids), dim)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.cpu.reconstruct_batch(ids), dtype=np.float32).reshape(len(ids), self.dim)

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ids of -1 mark empty slots. `allowed_ids` restricts the search."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if self.ntotal == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        k = max(1, min(k, self.ntotal))
        if allowed_ids is not None:
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_ids, dtype=np.int64))
            return self.cpu.search(queries, k, params=faiss.SearchParameters(sel=sel))
        index = self._gpu_index() or self.cpu
        return index.search(queries, k)

    def _gpu_index(self):  # noqa: ANN202
        if not self.use_gpu:
            return None
        if self._gpu is None or self._gpu_stale:
            try:
                res = faiss.StandardGpuResources()
                self._gpu = faiss.index_cpu_to_gpu(res, 0, self.cpu)
                self._gpu_res = res
                self._gpu_stale = False
            except Exception as exc:  # pragma: no cover - GPU only
                log.warning("GPU FAISS copy failed (%s); searching on the CPU", exc)
                self.use_gpu = False
                return None
        return self._gpu

    # --- persistence ---------------------------------------------------------------------------------------
    def save(self, path: Path, meta: dict) -> None:
        """Atomically save the index, then its metadata (corpus_version it reflects)."""
        data = faiss.serialize_index(self.cpu).tobytes()
        atomic_write_bytes(path, data)
        atomic_write_json(path.with_suffix(".json"), {**meta, "ntotal": self.ntotal, "dim": self.dim})

    @classmethod
    def load(cls, path: Path, dim: int, use_gpu: bool = True) -> tuple[VectorIndex, dict]:
        """Load a saved index; raises FileNotFoundError / ValueError when missing or unusable."""
        meta_path = path.with_suffix(".json")
        if not path.exists():
            raise FileNotFoundError(path)
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        index = faiss.deserialize_index(raw)
        if index.d != dim:
            raise ValueError(f"saved index has dimension {index.d}, collection uses {dim}")
        vi = cls(dim, use_gpu=use_gpu)
        vi.cpu = faiss.downcast_index(index) if not isinstance(index, faiss.IndexIDMap2) else index
        if not isinstance(vi.cpu, faiss.IndexIDMap2):
            raise ValueError(f"unexpected index type {type(vi.cpu).__name__}")
        return vi, meta


def gpu_count() -> int:
    try:
        return int(faiss.get_num_gpus())
    except Exception:
        return 0
