"""FAISS vector index on normalized vectors (inner product = cosine): exact (IndexIDMap2 over IndexFlatIP) for
small collections, an inverted-file index (IVF, faiss index-factory string) past a size, ids = chunk ids.

The CPU index is the master (GPU indexes cannot remove ids); when faiss sees a GPU, searches go to a GPU copy
that is refreshed after every change. IVF indexes keep a hashtable direct map, so ids can be removed and their
vectors reconstructed like the flat index's. HNSW is refused: faiss' HNSW cannot remove ids (use IVF here, or
Milvus' HNSW, which can: index/milvus.py). `plan_index` decides when to switch and when to retrain.

`FaissVectorIndex` is the FAISS `VectorIndex` (index/vector_index.py); `FaissBackend` keeps it as files in the
collection's folder (the `VectorBackend` for vector_backend = "faiss").
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import faiss
import numpy as np

from localrag.index.vector_index import SavedVectors

log = logging.getLogger(__name__)


@contextmanager
def faiss_threads(n: int | None) -> Iterator[None]:
    """FAISS on `n` OpenMP threads (None: unchanged) for the block, in the calling thread; restored after. Batch
    work (an ingest's adds, IVF training) runs under the `threads` setting; one query runs on one thread
    (retrieval/search.py `one_faiss_thread`)."""
    before = faiss.omp_get_max_threads()
    if n:
        faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


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


FLAT = "flat"
AUTO = "auto"
# below this many vectors "auto" stays exact (flat). Measured (BENCHMARKS.md, "Scale", 2 loaded cores): one flat
# query takes 29 ms at 10k and 39 ms (one thread) to 173 ms (two, contended) at 100k, growing linearly; IVF takes
# 0.4 / 1.6 ms. Up to 100k, exact search stays within an interactive budget, so the 5 % recall loss of IVF
# (recall@10 ~0.95 at the default nprobe on real MiniLM embeddings) is only paid past it.
AUTO_THRESHOLD = 100_000
DELTA_MAX = 50_000  # changed vectors a save may write as a delta file instead of the whole index


def auto_nlist(n: int) -> int:
    """Inverted lists for n vectors: the power of two nearest 4·sqrt(n) (faiss' rule of thumb), no more than n/39
    (faiss wants 39 training points per list), at least 16."""
    want = 1 << round(math.log2(4 * math.sqrt(max(n, 1))))
    cap = 1 << max(0, math.floor(math.log2(max(n, 1) / 39)))
    return max(16, min(want, cap))


def auto_nprobe(nlist: int) -> int:
    """Lists probed per query: nlist/16, at least 8 (recall@10 0.95 on real MiniLM embeddings: BENCHMARKS.md)."""
    return max(8, nlist // 16)


def check_spec(spec: str) -> str:
    """Validate a `faiss_index` setting: "auto", "flat" or an IVF factory string ("{nlist}" allowed)."""
    if spec in (AUTO, FLAT):
        return spec
    if "HNSW" in spec.upper() and "IVF" not in spec.upper():
        raise ValueError(
            f"faiss_index {spec!r}: faiss' HNSW cannot remove vectors, which updates and deletes need; use an IVF "
            "string such as 'IVF{nlist},Flat' or 'IVF{nlist},SQ8', or vector_backend = 'milvus' for HNSW"
        )
    if "IVF" not in spec.upper():
        raise ValueError(
            f"faiss_index {spec!r}: use 'auto', 'flat' or an IVF index-factory string like 'IVF{{nlist}},Flat'"
        )
    try:
        faiss.index_factory(8, spec.replace("{nlist}", "16"), faiss.METRIC_INNER_PRODUCT)
    except Exception as exc:
        raise ValueError(f"faiss_index {spec!r} is not a faiss index-factory string faiss accepts ({exc})") from None
    return spec


def plan_index(spec: str, n: int, current: FaissVectorIndex, threshold: int = AUTO_THRESHOLD) -> str | None:
    """The factory string to rebuild `current` with (FLAT for exact), or None to keep it as it is.

    "auto": flat below `threshold`, then IVF{nlist},Flat, retrained when the collection has grown ~8x since (when
    4·sqrt(n) reaches 2.83·nlist); back to flat only below threshold/2 (no flapping). An explicit IVF string is
    used once there are 39·nlist vectors to train on; with "{nlist}" in it, nlist follows the size as for "auto"."""
    template = "IVF{nlist},Flat" if spec == AUTO else spec
    if spec == FLAT or (spec == AUTO and (n < threshold // 2 or (n < threshold and current.kind == FLAT))):
        return None if current.kind == FLAT else FLAT
    nlist = auto_nlist(n) if "{nlist}" in template else None
    want = template.replace("{nlist}", str(nlist)) if nlist else template
    probe = faiss.index_factory(8, want, faiss.METRIC_INNER_PRODUCT)
    lists = faiss.extract_index_ivf(probe).nlist
    if n < 39 * lists:  # not enough vectors to train the quantizer
        return None if current.kind == FLAT else FLAT
    if current.kind == FLAT or current.template != template:
        return want
    if nlist and 4 * math.sqrt(n) >= 2.83 * current.nlist:  # grown ~8x since training (nlist ~ 4·sqrt(n) then)
        return want
    return None


class FaissVectorIndex:
    """The FAISS `VectorIndex`: flat or IVF on the CPU (the master), searched on a GPU copy when there is one."""

    def __init__(self, dim: int, use_gpu: bool = True, nprobe: int | None = None) -> None:
        self.dim = dim
        self.cpu: faiss.Index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))  # flat; build/load may set an IVF index
        self.use_gpu = use_gpu and gpu_count() > 0
        self.template = FLAT  # the faiss_index setting this index was built for ("{nlist}" not filled in)
        self.nprobe_setting = nprobe  # None: auto_nprobe(nlist)
        self._base_tag: str | None = None  # the full save this index descends from (None: next save is full)
        self._delta_added: dict[int, np.ndarray] = {}  # changes since that save
        self._delta_removed: set[int] = set()
        self._gpu = None
        self._gpu_stale = True

    @property
    def kind(self) -> str:
        return FLAT if isinstance(self.cpu, faiss.IndexIDMap2) else "ivf"

    @property
    def nlist(self) -> int:
        return 0 if self.kind == FLAT else int(faiss.extract_index_ivf(self.cpu).nlist)

    @property
    def nprobe(self) -> int:
        return 0 if self.kind == FLAT else (self.nprobe_setting or auto_nprobe(self.nlist))

    @property
    def description(self) -> str:
        """e.g. "flat" or "IVF1024,Flat nprobe=64"."""
        if self.kind == FLAT:
            return FLAT
        return f"{self.template.replace('{nlist}', str(self.nlist))} nprobe={self.nprobe}"

    @classmethod
    def build(
        cls, dim: int, factory: str, ids: np.ndarray, batches: Callable[[np.ndarray], np.ndarray], *,
        template: str | None = None, use_gpu: bool = True, nprobe: int | None = None, train_max: int = 100_000,
        batch: int = 50_000,
    ) -> FaissVectorIndex:
        """A new index of `factory` (FLAT or an IVF string) over `ids`, whose vectors `batches(ids_part)` returns
        (e.g. the store's fp16 embeddings): the IVF quantizer is trained on an even sample of at most `train_max`
        vectors, then every vector is added in batches."""
        vi = cls(dim, use_gpu=use_gpu, nprobe=nprobe)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if factory != FLAT:
            index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
            sample = ids[np.linspace(0, len(ids) - 1, min(len(ids), train_max)).astype(np.int64)]
            index.train(np.ascontiguousarray(batches(sample), dtype=np.float32))
            ivf = faiss.extract_index_ivf(index)
            ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]  # not in faiss's stubs
            vi.cpu = index
            vi.template = template or factory
            ivf.nprobe = vi.nprobe
        for start in range(0, len(ids), batch):
            part = ids[start : start + batch]
            vi.add(part, batches(part))
        return vi

    # --- changes -------------------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        if len(ids) == 0:
            return
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if vecs.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vecs.shape}")
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        self.cpu.add_with_ids(vecs, ids)
        self._gpu_stale = True
        if self._base_tag is not None:
            self._delta_added.update(zip(ids.tolist(), vecs.copy(), strict=True))
            if len(self._delta_added) > DELTA_MAX:  # the next save is a full one anyway: stop copying
                self._base_tag = None

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if self._base_tag is not None:
            for i in ids.tolist():
                if self._delta_added.pop(i, None) is None:
                    self._delta_removed.add(i)
        if self.kind != FLAT:  # the hashtable direct map removes by id array only, and only ids it holds
            ids = ids[np.isin(ids, self.ids())]
            if len(ids) == 0:
                return 0
            n = int(self.cpu.remove_ids(faiss.IDSelectorArray(ids)))
        else:
            n = int(self.cpu.remove_ids(faiss.IDSelectorBatch(ids)))
        self._gpu_stale = True
        return n

    # --- reads ---------------------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        return int(self.cpu.ntotal)

    def ids(self) -> np.ndarray:
        if isinstance(self.cpu, faiss.IndexIDMap2):  # kind FLAT
            return faiss.vector_to_array(self.cpu.id_map).astype(np.int64)
        inv = faiss.extract_index_ivf(self.cpu).invlists
        assert inv is not None  # an IVF index owns its inverted lists
        parts = [faiss.rev_swig_ptr(inv.get_ids(i), inv.list_size(i)).copy() for i in range(inv.nlist)
                 if inv.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def memory_bytes(self) -> int:
        """Bytes of the serialized index (vectors, ids, lists, direct map): its size in memory, roughly."""
        return int(faiss.serialize_index(self.cpu).nbytes)

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
            if self.kind == FLAT:
                # faiss's class_wrappers give SearchParameters* keyword constructors; its stubs do not
                return self.cpu.search(queries, k, params=faiss.SearchParameters(sel=sel))  # type: ignore[call-arg]
            # a narrow scope (under a tenth of the collection) may sit in lists the query is far from: probe all
            # lists then (only the scope's vectors are scored, so it stays cheap)
            nprobe = self.nlist if len(allowed_ids) * 10 < self.ntotal else self.nprobe
            params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)  # type: ignore[call-arg]  # as above
            return self.cpu.search(queries, k, params=params)
        gpu = self._gpu_index()
        if gpu is not None:
            try:
                return gpu.search(queries, k)
            except Exception as exc:  # pragma: no cover - GPU only (e.g. an nprobe past the GPU's limit)
                log.warning("GPU FAISS search failed (%s); searching on the CPU from now on", exc)
                self.use_gpu, self._gpu = False, None
        return self.cpu.search(queries, k)

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
        """Persist the index, then its metadata (the corpus_version it reflects), written last and atomically.

        After a full save (`path` itself), later saves write only the changes since then (a delta file: vectors
        added, ids removed) while those stay small (DELTA_MAX), so an ingest of one file into a big collection
        does not rewrite the whole index. A crash anywhere leaves metadata naming an older corpus_version (or -1),
        and the collection reconciles the ids from the store on open (index/indexes.py)."""
        meta_path = path.with_suffix(".json")
        changes = len(self._delta_added) + len(self._delta_removed)
        old = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        if (self._base_tag is not None and old.get("base") == self._base_tag and path.exists()
                and changes <= max(1000, min(DELTA_MAX, self.ntotal // 10))):
            name = f"{path.stem}.delta-{uuid.uuid4().hex[:10]}.npz"
            ids = np.fromiter(self._delta_added, dtype=np.int64, count=len(self._delta_added))
            vecs = (np.stack([self._delta_added[int(i)] for i in ids]) if len(ids)
                    else np.zeros((0, self.dim), np.float32))
            buf = io.BytesIO()
            np.savez(buf, ids=ids, vecs=vecs, removed=np.array(sorted(self._delta_removed), dtype=np.int64))
            atomic_write_bytes(path.with_name(name), buf.getvalue())
            self._write_meta(meta_path, meta, delta=name)
        else:
            atomic_write_json(meta_path, {"corpus_version": -1})  # in flux until the final metadata is written
            atomic_write_bytes(path, faiss.serialize_index(self.cpu).tobytes())
            self._base_tag = uuid.uuid4().hex[:12]
            self._delta_added, self._delta_removed = {}, set()
            self._write_meta(meta_path, meta, delta=None)
        keep = json.loads(meta_path.read_text()).get("delta")
        for f in path.parent.glob(f"{path.stem}.delta-*.npz"):
            if f.name != keep:
                f.unlink(missing_ok=True)

    def _write_meta(self, meta_path: Path, meta: dict, delta: str | None) -> None:
        atomic_write_json(meta_path, {**meta, "ntotal": self.ntotal, "dim": self.dim, "template": self.template,
                                      "index": self.description, "base": self._base_tag, "delta": delta})

    @classmethod
    def load(
        cls, path: Path, dim: int, use_gpu: bool = True, nprobe: int | None = None
    ) -> tuple[FaissVectorIndex, dict]:
        """Load a saved index; raises FileNotFoundError / ValueError when missing or unusable."""
        meta_path = path.with_suffix(".json")
        if not path.exists():
            raise FileNotFoundError(path)
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        raw = np.frombuffer(path.read_bytes(), dtype=np.uint8)
        index = faiss.deserialize_index(raw)
        if index.d != dim:
            raise ValueError(f"saved index has dimension {index.d}, collection uses {dim}")
        vi = cls(dim, use_gpu=use_gpu, nprobe=nprobe)
        vi.cpu = index  # deserialize_index returns the concrete class (a downcast wrapper would not own it)
        if not isinstance(vi.cpu, faiss.IndexIDMap2):
            try:
                ivf = faiss.extract_index_ivf(vi.cpu)
            except Exception:
                raise ValueError(f"unexpected index type {type(vi.cpu).__name__}") from None
            if ivf.direct_map.type != faiss.DirectMap.Hashtable:  # type: ignore[attr-defined]  # not in the stubs
                raise ValueError("saved IVF index has no id hashtable; rebuild it")
            vi.template = meta.get("template") or "IVF{nlist},Flat"
            ivf.nprobe = vi.nprobe
        if meta.get("delta"):
            with np.load(path.with_name(meta["delta"])) as d:
                removed, ids, vecs = d["removed"], d["ids"], d["vecs"]
            vi.remove(removed)
            vi.add(ids, vecs)
            vi._delta_removed = set(removed.tolist())
            vi._delta_added = {int(i): v for i, v in zip(ids, vecs, strict=True)}
        vi._base_tag = meta.get("base")
        return vi, meta


class FaissBackend:
    """A collection's vectors as FAISS files in its folder: the index (`vectors.faiss`, plus a delta file of the
    changes since its last full save) and its metadata (`vectors.json`: the corpus_version and collection stamp it
    reflects). Switches between flat and IVF as the collection grows or shrinks (`plan_index`)."""

    def __init__(
        self, path: Path, dim: int, *, spec: str = AUTO, threshold: int = AUTO_THRESHOLD, nprobe: int | None = None,
        use_gpu: bool = True,
    ) -> None:
        self.path, self.dim = path, dim
        self.spec = spec  # the faiss_index setting (VectorSettings checked it): auto | flat | an IVF factory string
        self.threshold, self.nprobe, self.use_gpu = threshold, nprobe, use_gpu

    def new_index(self) -> FaissVectorIndex:
        return FaissVectorIndex(self.dim, use_gpu=self.use_gpu, nprobe=self.nprobe)

    def load(self, stamp: str, stored_count: Callable[[], int]) -> SavedVectors:
        """The saved files (the stamp tells whose they are, so `stored_count` is not needed)."""
        try:
            index, meta = FaissVectorIndex.load(self.path, self.dim, use_gpu=self.use_gpu, nprobe=self.nprobe)
            version = int(meta.get("corpus_version", -1))
        except FileNotFoundError:
            return SavedVectors(self.new_index(), -1)
        except Exception as exc:  # unreadable file: rebuild from the store
            return SavedVectors(self.new_index(), -1,
                                f"vector index unreadable ({exc}); rebuilt from stored embeddings")
        if meta.get("collection") != stamp:  # made for another collection that had this id (or by a release before
            # the stamp): its chunk ids may coincide with ours, so rebuild, don't reconcile
            return SavedVectors(self.new_index(), -1,
                                "vector index files belong to another collection; rebuilt from the store")
        return SavedVectors(index, version)

    def save(self, index: FaissVectorIndex, version: int, stamp: str) -> None:
        index.save(self.path, {"corpus_version": version, "collection": stamp})

    def resized(
        self, index: FaissVectorIndex, embeddings: Callable[[np.ndarray], np.ndarray]
    ) -> FaissVectorIndex | None:
        """Flat or IVF as the size (or the setting) calls for, trained on a sample of the stored embeddings."""
        want = plan_index(self.spec, index.ntotal, index, self.threshold)
        if want is None:
            return None
        template = self.spec if self.spec != AUTO else "IVF{nlist},Flat"
        return FaissVectorIndex.build(
            self.dim, want, np.sort(index.ids()), embeddings, template=template if want != FLAT else FLAT,
            use_gpu=self.use_gpu, nprobe=self.nprobe,
        )


def gpu_count() -> int:
    try:
        return int(faiss.get_num_gpus())
    except Exception:
        return 0
