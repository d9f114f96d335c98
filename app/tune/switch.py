"""Stage 5 of `localrag tune`: the tuned model's files, the switch to it, `--undo`, and the fallback to the base model.

Where things live (the collection's folder, `collections/NNNN/`):
    tuned/<tag>/model/            the tuned sentence-transformers model
    tuned/<tag>/lineage.json      base model, questions kept/dropped, settings, held-out scores, the weights' sha256
    tuned/<tag>/vectors.faiss     the collection's vectors by that model (new files; BM25 beside them)
    tuned/base_embeddings.npz     the base model's vectors of the chunks at the first switch (for --undo)

The store stays the one source of truth: a switch writes the tuned vectors into the chunks' stored embeddings, marks
its run active, bumps the corpus_version and forgets the collection's cached answers, all in ONE transaction, after
the new vector files are saved. A kill before the commit leaves the base in use (the new folder is orphaned and
removed by the next tune); after it, the tuned model. The base model's vector files stay untouched in the
collection's folder until `--undo`, which writes the base vectors back (re-embedding with the base model only the
chunks ingested since) in the same way; the index files then reconcile by chunk id, as after any ingest."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, select, update

from localrag.index.embedder import Embedder, EmbedderError
from localrag.index.store import AnswerCacheRow, ChunkRow, CollectionRow, Store, TuneRunRow, utcnow
from localrag.index.vectors import atomic_write_bytes, atomic_write_json

__all__ = ["CollectionModel", "TuneError", "activate", "active_run", "base_vectors", "collection_model",
           "remove_old_runs", "revert", "run_folder", "weights_sha256"]

log = logging.getLogger(__name__)
WEIGHTS = ("model.safetensors", "pytorch_model.bin")


class TuneError(RuntimeError):
    """A problem the user can fix; the message says how."""


@dataclass
class CollectionModel:
    """The embedder a collection's queries and ingests use, and where its vector files are. `embedder` None: the
    base model (the Rag's own); `warning`: why a tuned model was given up for the base one."""

    embedder: Embedder | None
    folder: Path
    tag: str | None = None
    warning: str | None = None


def run_folder(coll_folder: Path, tag: str) -> Path:
    return coll_folder / "tuned" / tag


def base_file(coll_folder: Path) -> Path:
    return coll_folder / "tuned" / "base_embeddings.npz"


def weights_sha256(model_dir: Path) -> str:
    for name in WEIGHTS:
        f = model_dir / name
        if f.is_file():
            h = hashlib.sha256()
            with f.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            return h.hexdigest()
    raise FileNotFoundError(f"no model weights in {model_dir}")


def active_run(store: Store, collection_id: int) -> TuneRunRow | None:
    with store.session() as s:
        return s.scalars(select(TuneRunRow).where(TuneRunRow.collection_id == collection_id,
                                                  TuneRunRow.status == "active")).first()


def load_tuned(coll_folder: Path, run: TuneRunRow, base: Embedder) -> Embedder:
    """The tuned embedder of an active run, checked: its lineage, its weights' sha256, that it loads and has the
    base model's dimension. Raises TuneError saying what is wrong."""
    folder = run_folder(coll_folder, run.tag)
    try:
        lineage = json.loads((folder / "lineage.json").read_text(encoding="utf-8"))
        if weights_sha256(folder / "model") != lineage["weights_sha256"]:
            raise TuneError("its weights do not match the sha256 in lineage.json (corrupt or replaced)")
        emb = Embedder(str(folder / "model"), device=base.device, batch_size=base.batch_size, threads=base.threads)
        if emb.dim != base.dim:
            raise TuneError(f"it makes {emb.dim}-d vectors, the collection's are {base.dim}-d")
    except TuneError:
        raise
    except (OSError, ValueError, KeyError, EmbedderError) as exc:
        raise TuneError(f"{type(exc).__name__}: {exc}") from None
    emb.model_id = f"{base.model_id}+tuned:{run.tag}"  # answers cached with another model are never served
    return emb


def collection_model(store: Store, coll: CollectionRow, coll_folder: Path, base: Embedder,
                     lock: Callable[[], Any], known: CollectionModel | None = None) -> CollectionModel:
    """The model a collection uses now (`known`: the one found before, reused while its run is still the active
    one, so that an ingest does not reload it). A tuned model whose files are missing or corrupt is given up: the
    collection goes back to its base model (stored vectors restored, as `--undo` does) with a warning."""
    run = active_run(store, coll.id)
    if run is None:
        return CollectionModel(None, coll_folder)
    if known is not None and known.tag == run.tag and known.embedder is not None:
        return known
    try:
        return CollectionModel(load_tuned(coll_folder, run, base), run_folder(coll_folder, run.tag), run.tag)
    except TuneError as exc:
        warning = (f"collection {coll.name!r}: its tuned embedder ({run.tag}) is unusable ({exc}); it uses its base "
                   f"model {coll.embedding_model} again")
    log.warning(warning)
    with lock():
        if (again := active_run(store, coll.id)) is not None and again.id == run.id:
            revert(store, coll, coll_folder, base, status="reverted", note=warning)
    return CollectionModel(None, coll_folder, None, warning)


def _fp16(vecs: np.ndarray) -> list[bytes]:
    return [v.tobytes() for v in np.asarray(vecs, np.float32).astype(np.float16)]


def _load_base(coll_folder: Path) -> dict[int, np.ndarray]:
    try:
        with np.load(base_file(coll_folder)) as d:
            return {int(i): v for i, v in zip(d["ids"], d["vecs"], strict=True)}
    except (OSError, ValueError, KeyError) as exc:
        log.warning("base vectors of %s unreadable (%s): re-embedding with the base model", coll_folder, exc)
        return {}


def base_vectors(store: Store, coll: CollectionRow, coll_folder: Path, base: Embedder, ids: np.ndarray,
                 texts: dict[int, str]) -> np.ndarray:
    """The base model's vectors of `ids`: the stored embeddings when no tuned model is active, else the ones kept
    at the switch, the chunks ingested since re-embedded with the base model."""
    if active_run(store, coll.id) is None:
        return store.embeddings(ids, coll.embedding_dim)
    kept = _load_base(coll_folder)
    out = np.zeros((len(ids), coll.embedding_dim), np.float32)
    missing = [n for n, i in enumerate(ids) if int(i) not in kept]
    for n, i in enumerate(ids):
        if int(i) in kept:
            out[n] = kept[int(i)]
    if missing:
        out[missing] = base.encode([texts[int(ids[n])] for n in missing])
    return out


def _commit_vectors(store: Store, coll: CollectionRow, ids: np.ndarray, vecs: np.ndarray, version: int | None,
                    runs: list[tuple[int, str]], lineage: dict[str, Any] | None = None) -> None:
    """One transaction: the chunks' stored embeddings, the runs' statuses, corpus_version + 1, cached answers of
    the collection forgotten. `version`: abort when the collection changed since it was read."""
    rows = [{"id": int(i), "embedding": b} for i, b in zip(ids, _fp16(vecs), strict=True)]
    with store.session() as s:
        if version is not None and s.scalar(select(CollectionRow.corpus_version).where(
                CollectionRow.id == coll.id)) != version:
            raise TuneError(f"collection {coll.name!r} changed while it was being tuned (an ingest ran); tune again")
        for start in range(0, len(rows), 2000):
            s.execute(update(ChunkRow), rows[start : start + 2000])
        for run_id, status in runs:
            values: dict[str, Any] = {"status": status, "finished": utcnow()}
            if lineage is not None and status == "active":
                values["lineage"] = json.dumps(lineage)
            s.execute(update(TuneRunRow).where(TuneRunRow.id == run_id).values(**values))
        s.execute(update(CollectionRow).where(CollectionRow.id == coll.id)
                  .values(corpus_version=CollectionRow.corpus_version + 1, updated=utcnow()))
        s.execute(delete(AnswerCacheRow).where(AnswerCacheRow.collection_id == coll.id))


def activate(store: Store, coll: CollectionRow, coll_folder: Path, run_id: int, tag: str, ids: np.ndarray,
             vecs: np.ndarray, version: int, make_indexes: Callable[[Path], Any], lineage: dict[str, Any]) -> None:
    """Switch the collection to the tuned vectors `vecs` of chunks `ids` (all of its chunks at `version`): the base
    vectors kept (first switch only), new vector and BM25 files saved in the run's folder at version + 1, then the
    one transaction. Call under the collection's lock."""
    previous = active_run(store, coll.id)
    if previous is None:
        buf = io.BytesIO()
        np.savez(buf, ids=ids, vecs=store.embeddings(ids, coll.embedding_dim).astype(np.float16))
        atomic_write_bytes(base_file(coll_folder), buf.getvalue())
    idx = make_indexes(run_folder(coll_folder, tag))
    idx.folder.mkdir(parents=True, exist_ok=True)
    idx.vectors.add(ids, vecs)
    idx.rebuild_lexical()
    idx.save(version + 1)
    idx.maintain()  # FAISS flat or IVF as the collection's size calls for, as after an ingest
    runs = [(previous.id, "superseded")] if previous is not None else []
    _commit_vectors(store, coll, ids, vecs, version, runs + [(run_id, "active")], lineage)


def revert(store: Store, coll: CollectionRow, coll_folder: Path, base: Embedder, status: str = "undone",
           note: str | None = None) -> dict[str, Any]:
    """Back to the base model: its vectors written back to the store (kept ones, or re-embedded for the chunks
    ingested since the switch), the active run marked `status`, its files removed. Call under the lock."""
    run = active_run(store, coll.id)
    if run is None:
        raise TuneError(f"collection {coll.name!r} uses its base model already: nothing to undo")
    ids, texts = store.chunk_texts(coll.id)
    vecs = base_vectors(store, coll, coll_folder, base, ids, dict(zip(ids.tolist(), texts, strict=True)))
    kept = _load_base(coll_folder)
    _commit_vectors(store, coll, ids, vecs, None, [(run.id, status)])
    shutil.rmtree(run_folder(coll_folder, run.tag), ignore_errors=True)
    base_file(coll_folder).unlink(missing_ok=True)
    if note:
        atomic_write_json(coll_folder / "tuned" / f"{run.tag}.{status}.json", {"note": note})
    return {"undone": run.tag, "chunks": int(len(ids)), "re_embedded": sum(int(i) not in kept for i in ids)}


def remove_old_runs(store: Store, coll: CollectionRow, coll_folder: Path) -> list[str]:
    """Delete the folders of this collection's runs that are not active (a superseded model, one that did not
    improve, a killed run's leftovers): the next tune is the moment they go."""
    with store.session() as s:
        active = {r.tag for r in s.scalars(select(TuneRunRow).where(TuneRunRow.collection_id == coll.id,
                                                                      TuneRunRow.status == "active"))}
        # a run still "running" when the next one starts was killed (or failed): say so in its row
        s.execute(update(TuneRunRow).where(TuneRunRow.collection_id == coll.id, TuneRunRow.status == "running")
                  .values(status="interrupted", finished=utcnow()))
    gone = []
    root = coll_folder / "tuned"
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and d.name not in active:
            shutil.rmtree(d, ignore_errors=True)
            gone.append(d.name)
    return gone
