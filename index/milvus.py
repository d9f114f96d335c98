"""Milvus as the vector store: one Milvus collection per localrag collection, primary key = the store's chunk id.

`milvus_uri` is a milvus-lite file (an embedded Milvus; the default is data_dir/milvus.db) or a server/cluster
URI such as http://host:19530. The same client API serves both.

- milvus-lite allows one *process* per data file (it holds an exclusive file lock); within one process, every
  MilvusVectorIndex on one URI shares one MilvusClient (`client_for`), so two Rag objects on one data directory
  work, but a second process (e.g. `localrag search` while the UI runs) gets a clear error saying so.
- Vectors are written at `add` / `remove` (upsert / delete by id). The corpus_version they reflect is stored
  as the collection property `localrag.corpus_version` by `save_version`, after a flush; a crash between the
  store commit and that property leaves an older version, and CollectionIndexes reconciles by id on the next
  open (ids from Milvus vs ids in the store: missing ones upserted from the stored fp16 embeddings, extra ones
  deleted). The chunk count is compared too, so a Milvus collection left from another database is reconciled.
- `MilvusVectorIndex` is the Milvus `VectorIndex` (index/vector_index.py); `MilvusBackend` is the `VectorBackend`
  for vector_backend = "milvus".
- Index types: FLAT (exact, same top-k as FAISS flat: tests/test_milvus.py), HNSW (M=16, efConstruction=200,
  ef = max(64, k) at search), IVF_FLAT (nlist from the size at creation). Metric: inner product on unit vectors.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from localrag.index.vector_index import SavedVectors

log = logging.getLogger(__name__)

VERSION_KEY = "localrag.corpus_version"
INDEX_TYPES = ("FLAT", "HNSW", "IVF_FLAT")
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class MilvusUnavailable(RuntimeError):
    """Milvus could not be opened; the message says why and what to do."""


def client_for(uri: str) -> Any:
    """One MilvusClient per URI in this process (milvus-lite: one process per data file)."""
    key = str(Path(uri).expanduser().resolve()) if _is_lite(uri) else uri
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            try:
                from pymilvus import MilvusClient
            except ImportError as exc:
                raise MilvusUnavailable(
                    f"vector_backend = 'milvus' needs pymilvus ({exc}); install it with pip install -e '.[milvus]'"
                ) from None
            if _is_lite(uri):
                Path(key).parent.mkdir(parents=True, exist_ok=True)
            try:
                client = MilvusClient(key)
            except Exception as exc:
                hint = (
                    "milvus-lite lets one process open a data file at a time: stop the other localrag process "
                    "(UI, ingest) using it, or run a Milvus server and set milvus_uri = 'http://host:19530'"
                    if _is_lite(uri) else "check that the Milvus server is running and milvus_uri is right"
                )
                raise MilvusUnavailable(f"cannot open Milvus at {uri} ({exc}); {hint}") from None
            _clients[key] = client
        return client


def _is_lite(uri: str) -> bool:
    return not uri.startswith(("http://", "https://", "tcp://", "unix:"))


def _id_filter(ids: np.ndarray | list[int]) -> str:
    """A Milvus boolean expression selecting these primary keys (integers only: nothing from users is quoted)."""
    return "id in [" + ",".join(str(int(i)) for i in ids) + "]"


def _index_params(client: Any, index_type: str, n_hint: int) -> Any:
    params = client.prepare_index_params()
    if index_type == "HNSW":
        extra = {"M": 16, "efConstruction": 200}
    elif index_type == "IVF_FLAT":
        extra = {"nlist": max(16, 1 << round(math.log2(4 * math.sqrt(max(n_hint, 1)))))}
    else:
        extra = {}
    params.add_index(field_name="vector", index_type=index_type, metric_type="IP", params=extra)
    return params


class MilvusVectorIndex:
    """The `VectorIndex` (add / remove / ids / vectors / search / ntotal) on a Milvus collection.

    `ntotal` is counted by Milvus once and kept until this index changes the collection (a count(*) query costs
    as much as a search, and the search stage asks for it on every query); `remote_ids` tells the collection's
    health check not to read every id back."""

    use_gpu = False
    remote_ids = True  # ids() reads every id from Milvus: health compares counts instead

    def __init__(self, client: Any, name: str, dim: int, index_type: str) -> None:
        self.client, self.name, self.dim, self.index_type = client, name, dim, index_type
        self._count: int | None = None  # cached row count (None: count again)

    @classmethod
    def open(cls, uri: str, name: str, dim: int, index_type: str = "HNSW") -> MilvusVectorIndex:
        """Open (creating if needed) the Milvus collection `name`; re-indexes it when `index_type` changed."""
        index_type = index_type.upper()
        if index_type not in INDEX_TYPES:
            raise ValueError(f"milvus_index {index_type!r}: use one of {', '.join(INDEX_TYPES)}")
        if not uri:
            raise ValueError("vector_backend = 'milvus' needs milvus_uri (a milvus-lite file or http://host:19530)")
        client = client_for(uri)
        if not client.has_collection(name):
            from pymilvus import DataType

            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            client.create_collection(name, schema=schema, index_params=_index_params(client, index_type, 0),
                                     consistency_level="Strong")
        else:
            fields = {f["name"]: f for f in client.describe_collection(name)["fields"]}
            have = int(fields["vector"]["params"]["dim"])
            if have != dim:
                raise ValueError(f"Milvus collection {name} holds {have}-d vectors, this collection uses {dim}-d; "
                                 "set another milvus_collection_prefix or drop that Milvus collection")
            current = client.describe_index(name, "vector").get("index_type")
            if current != index_type:
                log.info("Milvus collection %s: re-indexing %s -> %s", name, current, index_type)
                client.release_collection(name)
                client.drop_index(name, "vector")
                n = int(client.get_collection_stats(name).get("row_count", 0))
                client.create_index(name, _index_params(client, index_type, n))
        client.load_collection(name)
        return cls(client, name, dim, index_type)

    # --- changes -------------------------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vecs: np.ndarray, batch: int = 5000) -> None:
        if len(ids) == 0:
            return
        vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        if vecs.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vecs.shape}")
        self._count = None  # an upsert of an id already there does not grow the count: count again when asked
        for start in range(0, len(ids), batch):
            rows = [{"id": int(i), "vector": v} for i, v in zip(ids[start : start + batch],
                                                                vecs[start : start + batch], strict=True)]
            self.client.upsert(self.name, rows)  # upsert: a retried add never duplicates an id

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        n = 0
        self._count = None  # ids not there are ignored: count again when asked
        for start in range(0, len(ids), 10000):
            res = self.client.delete(self.name, ids=[int(i) for i in ids[start : start + 10000]])
            n += int(res.get("delete_count", 0)) if isinstance(res, dict) else 0
        return n

    # --- reads ---------------------------------------------------------------------------------------------
    @property
    def ntotal(self) -> int:
        """Rows in the collection, counted once after each change made through this index."""
        if self._count is None:
            res = self.client.query(self.name, filter="", output_fields=["count(*)"])
            self._count = int(res[0]["count(*)"])
        return self._count

    @property
    def description(self) -> str:
        return f"milvus {self.index_type}"

    def ids(self) -> np.ndarray:
        it = self.client.query_iterator(self.name, batch_size=10000, filter="", output_fields=["id"])
        out: list[int] = []
        try:
            while True:
                rows = it.next()
                if not rows:
                    break
                out.extend(int(r["id"]) for r in rows)
        finally:
            it.close()
        return np.array(out, dtype=np.int64)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of `ids` (all must be present), shape (len(ids), dim)."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(ids), self.dim), np.float32)
        if len(ids) == 0:
            return out
        pos = {int(i): n for n, i in enumerate(ids)}
        for start in range(0, len(ids), 5000):
            part = [int(i) for i in ids[start : start + 5000]]
            for row in self.client.query(self.name, filter=_id_filter(part), output_fields=["vector"]):
                out[pos[int(row["id"])]] = np.asarray(row["vector"], np.float32)
        return out

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query, padded with id -1 like FAISS; `allowed_ids` restricts the search."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, 16384))
        params: dict[str, Any] = {"metric_type": "IP", "params": {}}
        if self.index_type == "HNSW":
            params["params"]["ef"] = max(64, k)
        elif self.index_type == "IVF_FLAT":
            params["params"]["nprobe"] = 32
        kw: dict[str, Any] = {}
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
            kw = {"filter": _id_filter(allowed_ids)}
        res = self.client.search(self.name, data=[q for q in queries], limit=k, search_params=params,
                                 output_fields=["id"], **kw)
        width = max((len(hits) for hits in res), default=0)
        scores = np.full((len(queries), width), -np.inf, np.float32)
        ids = np.full((len(queries), width), -1, np.int64)
        for qi, hits in enumerate(res):
            for j, hit in enumerate(hits):
                ids[qi, j] = int(hit["id"])
                scores[qi, j] = float(hit["distance"])
        return scores, ids

    # --- the corpus_version these vectors reflect ---------------------------------------------------------
    def saved_version(self) -> int:
        """The corpus_version last saved with `save_version`, or -1 (also when the count shows it is stale)."""
        props = self.client.describe_collection(self.name).get("properties", {}) or {}
        try:
            return int(props.get(VERSION_KEY, -1))
        except ValueError:
            return -1

    def save_version(self, version: int) -> None:
        """Flush the written vectors, then record that they reflect `version`."""
        self.client.flush(self.name)
        self.client.alter_collection_properties(self.name, properties={VERSION_KEY: str(version)})

    def drop(self) -> None:
        self.client.drop_collection(self.name)


class MilvusBackend:
    """A collection's vectors in its own Milvus collection, written at every change; `save` records the
    corpus_version they reflect as a collection property."""

    def __init__(self, uri: str, name: str, dim: int, index_type: str = "HNSW") -> None:
        self.uri, self.name, self.dim, self.index_type = uri, name, dim, index_type

    def new_index(self) -> MilvusVectorIndex:
        """The Milvus collection as it stands (created when missing): its vectors are kept there, not in memory."""
        return MilvusVectorIndex.open(self.uri, self.name, self.dim, index_type=self.index_type)

    def load(self, stamp: str, stored_count: Callable[[], int]) -> SavedVectors:
        """The collection and its saved version. Nothing there names our collection, so a Milvus collection left
        from another database at the same version number is caught by its count (it then reconciles by id)."""
        index = self.new_index()
        version = index.saved_version()
        if version >= 0 and index.ntotal != stored_count():
            version = -1
        return SavedVectors(index, version)

    def save(self, index: MilvusVectorIndex, version: int, stamp: str) -> None:
        index.save_version(version)

    def resized(
        self, index: MilvusVectorIndex, embeddings: Callable[[np.ndarray], np.ndarray]
    ) -> MilvusVectorIndex | None:
        """Never: Milvus indexes its collection as it grows."""
        return None
