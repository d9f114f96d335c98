"""`localrag tune`: the stages in order (questions → filter and hard negatives → training → held-out measure and
re-embedding → switch), each timed, and the report."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from localrag.app.tune.mining import mine
from localrag.app.tune.questions import ProgressFn, sample_chunks, stored_questions, write_questions
from localrag.app.tune.switch import (
    TuneError,
    activate,
    active_run,
    base_vectors,
    remove_old_runs,
    run_folder,
    weights_sha256,
)
from localrag.app.tune.train import TrainSettings, fine_tune, held_out_scores, split_held_out
from localrag.index.embedder import Embedder, pick_device
from localrag.index.store import CollectionRow, Store, TuneRunRow, utcnow

__all__ = ["TuneOptions", "TuneParts", "TuneReport", "tune_collection"]


@dataclass(frozen=True)
class TuneOptions:
    max_chunks: int | None = None  # None: every chunk
    top: int = 20  # the consistency filter: the source chunk in the top `top` of BM25 or dense
    dup_cosine: float = 0.95  # a hard negative closer than this to its source is a near-duplicate: skipped
    min_gain: float = 0.0  # switch only when held-out recall@5 rises by more than this
    device: str = "auto"  # training: the GPU when there is one
    train: TrainSettings = field(default_factory=TrainSettings)


@dataclass
class TuneParts:
    """What the facade provides: the store, the collection, its folder, the base embedder and the model's path,
    the LLM (made only when questions are missing), the collection's current indexes, new indexes in a folder,
    the collection's (ingest) lock, and `stale`: the guard a killed tune left, when the caller's tune guard found
    one (described: pid, host, started)."""

    store: Store
    coll: CollectionRow
    folder: Path
    base: Embedder
    base_path: str
    llm: Callable[[], Any]
    indexes: Callable[[], Any]
    make_indexes: Callable[[Path], Any]
    lock: Callable[[], Any]
    stale: str | None = None


@dataclass
class TuneReport:
    collection: str
    tag: str
    base_model: str
    chunks: int = 0
    sampled: int = 0
    questions: dict[str, int] = field(default_factory=dict)  # asked, reused, junk
    kept: int = 0
    dropped: int = 0
    no_negative: int = 0
    trained_on: int = 0
    held_out: int = 0
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    switched: bool = False
    decision: str = ""
    model_dir: str = ""
    seconds: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tune_collection(parts: TuneParts, opts: TuneOptions, progress: ProgressFn | None = None) -> TuneReport:
    store, coll = parts.store, parts.coll
    tag = f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    rep = TuneReport(coll.name, tag, coll.embedding_model)
    if parts.stale:
        rep.notes.append(f"an earlier tune of this collection ({parts.stale}) was stopped before it finished: its "
                         "guard was cleared and any files it left removed; the questions it stored are reused")
    remove_old_runs(store, coll, parts.folder)
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        rep.seconds[stage] = round(now - clock, 2)
        clock = now

    sample = sample_chunks(store, coll.id, opts.max_chunks, seed=opts.train.seed)
    rep.sampled = len(sample)
    rep.questions = write_questions(store, coll.id, parts.llm, sample, progress).to_dict()
    lap("questions")
    version = store.corpus_version(coll.id)
    ids, text_list = store.chunk_texts(coll.id)
    texts = dict(zip(ids.tolist(), text_list, strict=True))
    rep.chunks = len(ids)
    base_vecs = base_vectors(store, coll, parts.folder, parts.base, ids, texts)
    examples, dropped = mine(stored_questions(store, coll.id, sample), ids, base_vecs, texts,
                             parts.indexes().lexical, parts.base.encode, top=opts.top, dup_cosine=opts.dup_cosine)
    rep.kept, rep.dropped = len(examples), len(dropped)
    rep.no_negative = sum(e.negative_id is None for e in examples)
    lap("filter")
    train, held = split_held_out(examples, opts.train.held_out, opts.train.seed)
    if len(train) < 2 or not held:
        raise TuneError(f"only {len(examples)} question(s) passed the filter: too few to train and measure on (ingest "
                        "more documents, or raise --max-chunks)")
    rep.trained_on, rep.held_out = len(train), len(held)
    run_id = _new_run(store, coll, tag)
    out = run_folder(parts.folder, tag)
    device = pick_device(opts.device)
    rep.training = fine_tune(parts.base_path, train, texts, out / "model", opts.train, device=device,
                             progress=(lambda d, t: progress("training", d, t)) if progress else None)
    rep.model_dir = str(out)
    lap("training")
    tuned = Embedder(str(out / "model"), device=parts.base.device, batch_size=parts.base.batch_size,
                     threads=parts.base.threads)
    sources = [e.chunk_id for e in held]
    rep.before = held_out_scores(parts.base.encode([e.question for e in held]), sources, ids, base_vecs)
    tuned_vecs = _encode(tuned, [texts[int(i)] for i in ids], progress)
    rep.after = held_out_scores(tuned.encode([e.question for e in held]), sources, ids, tuned_vecs)
    lap("re-embedding")
    gain = rep.after["recall@5"] - rep.before["recall@5"]
    lineage = _lineage(rep, opts, out, store.collection(coll.name))
    (out / "lineage.json").write_text(json.dumps(lineage, indent=1), encoding="utf-8")
    if gain > opts.min_gain:
        with parts.lock():
            activate(store, coll, parts.folder, run_id, tag, ids, tuned_vecs, version, parts.make_indexes, lineage)
        rep.switched = True
        rep.decision = (f"switched: held-out recall@5 {rep.before['recall@5']:.3f} -> {rep.after['recall@5']:.3f}; "
                        "the base model's files stay until `localrag tune --undo` or the next tune")
    else:
        _finish_run(store, run_id, "kept-base", lineage)
        kept = "the tuned model is active" if active_run(store, coll.id) else "the base model is kept"
        rep.decision = (f"not switched: held-out recall@5 {rep.before['recall@5']:.3f} -> {rep.after['recall@5']:.3f} "
                        f"(needs a gain above {opts.min_gain:g}); {kept}")
    lap("switch")
    return rep


def _encode(emb: Embedder, texts: list[str], progress: ProgressFn | None, batch: int = 64) -> np.ndarray:
    parts = []
    for start in range(0, len(texts), batch):
        if progress:
            progress("re-embedding", start, len(texts))
        parts.append(emb.encode(texts[start : start + batch]))
    if progress:
        progress("re-embedding", len(texts), len(texts))
    return np.concatenate(parts) if parts else np.zeros((0, emb.dim), np.float32)


def _new_run(store: Store, coll: CollectionRow, tag: str) -> int:
    with store.session() as s:
        row = TuneRunRow(collection_id=coll.id, tag=tag, status="running", base_model=coll.embedding_model)
        s.add(row)
        s.flush()
        return int(row.id)


def _finish_run(store: Store, run_id: int, status: str, lineage: dict[str, Any]) -> None:
    from sqlalchemy import update

    with store.session() as s:
        s.execute(update(TuneRunRow).where(TuneRunRow.id == run_id)
                  .values(status=status, finished=utcnow(), lineage=json.dumps(lineage)))


def _lineage(rep: TuneReport, opts: TuneOptions, out: Path, coll: CollectionRow | None) -> dict[str, Any]:
    return {
        "tag": rep.tag, "base_model": rep.base_model, "collection": rep.collection,
        "corpus_version": coll.corpus_version if coll else None, "chunks": rep.chunks, "sampled": rep.sampled,
        "questions": rep.questions, "kept": rep.kept, "dropped": rep.dropped, "no_negative": rep.no_negative,
        "trained_on": rep.trained_on, "held_out": rep.held_out, "before": rep.before, "after": rep.after,
        "settings": {k: v for k, v in asdict(opts).items() if k != "train"} | {"train": asdict(opts.train)},
        "training": rep.training, "weights_sha256": weights_sha256(out / "model"), "seconds": rep.seconds,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
