"""BM25 lexical index, updated incrementally in segments; rank-bm25 selectable as the reference.

`bm25s` (the default) computes the BM25 that the bm25s library computes (Lucene variant by default, Robertson
selectable), but keeps raw term frequencies instead of precomputed scores, so the index can change without a
rebuild:

- every `add` writes one small *segment* (a term-major posting matrix: per term, the rows holding it and their
  term frequencies, plus the rows' document lengths);
- a `remove` marks rows dead and takes their terms out of the document frequencies;
- the collection-wide statistics (number of live documents, their total length, document frequency per term)
  are kept up to date on every change, and the score of a query is computed from them at search time. Scores
  are therefore exactly those of a full rebuild over the live documents (tests/test_scale_lexical.py), unlike
  per-segment IDF (Lucene before merge, Milvus' BM25 function);
- segments are merged when there are many small ones or when the small ones grow past a quarter of the base
  (tiered merging, amortized O(1) per added row), and dead rows are dropped at the merge.

Adding one file to a collection of N chunks costs tokenizing the file plus a few O(N) numpy passes over
8-byte arrays (milliseconds at 1M chunks), instead of re-tokenizing all N chunk texts (BENCHMARKS.md, "Scale").

On disk, each segment is an immutable folder; `current.json` (written last, atomically) names the segments,
their live-row masks, the vocabulary files (append-only) and the document frequencies, so a crash mid-save
leaves the previous version readable. rank-bm25 is rebuilt on every change (a reference, not for big
collections). Both backends see the same tokens (our tokenizer) and the same chunk-id order.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import re
import shutil
import unicodedata
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from localrag.index.text import BM25_STOPWORDS
from localrag.index.vectors import atomic_write_json

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = BM25_STOPWORDS  # kept under its old name for callers
FORMAT = "segments-1"
MAX_DELTAS = 8  # small segments before they are merged into one
DELTA_MERGE_RATIO = 0.25  # small segments merged into the base once they hold this share of its rows
DEAD_MERGE_RATIO = 0.25  # everything rewritten without dead rows once this share of rows is dead


def tokenize(text: str) -> list[str]:
    """Lower-cased NFKC word tokens without English stopwords; numbers and acronyms are kept."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return [t for t in _WORD.findall(text) if t not in STOPWORDS]


@dataclass
class _Segment:
    """Rows (documents) × terms, term-major: rows of term t are indices[indptr[t]:indptr[t+1]] (ascending)."""

    name: str
    ids: np.ndarray  # int64, ascending
    dl: np.ndarray  # float32 document lengths
    indptr: np.ndarray  # int64, len = width + 1
    indices: np.ndarray  # int32 rows
    data: np.ndarray  # float32 term frequencies
    alive: np.ndarray  # bool per row
    saved_alive: str | None = None  # file holding `alive` as last saved (None: not saved yet)

    @property
    def width(self) -> int:
        return len(self.indptr) - 1

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.ids, self.dl, self.indptr, self.indices, self.data, self.alive))

    def postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        if tid >= self.width:
            return self.indices[:0], self.data[:0]
        a, b = int(self.indptr[tid]), int(self.indptr[tid + 1])
        return self.indices[a:b], self.data[a:b]

    def terms_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Term ids of every (row, term) entry whose row is in `rows` (one pass over this segment's postings)."""
        mask = np.zeros(len(self.ids), bool)
        mask[rows] = True
        hit = np.flatnonzero(mask[self.indices])
        return np.searchsorted(self.indptr, hit, side="right") - 1


def _build_segment(ids: np.ndarray, term_ids: list[np.ndarray], width: int) -> _Segment:
    """A segment from each row's token ids (already mapped to the vocabulary)."""
    order = np.argsort(ids, kind="stable")
    ids = np.asarray(ids, np.int64)[order]
    term_ids = [term_ids[i] for i in order]
    n = len(ids)
    lens = np.array([len(t) for t in term_ids], dtype=np.int64)
    dl = np.maximum(lens, 1).astype(np.float32)  # an empty text counts as one (empty) token, as in bm25s
    flat = np.concatenate(term_ids) if n and lens.sum() else np.zeros(0, np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), lens)
    keys, tf = np.unique(flat.astype(np.int64) * max(n, 1) + rows, return_counts=True)  # sorted by (term, row)
    terms = keys // max(n, 1)
    indptr = np.zeros(width + 1, np.int64)
    np.cumsum(np.bincount(terms, minlength=width), out=indptr[1:])
    return _Segment(
        name=uuid.uuid4().hex[:12], ids=ids, dl=dl, indptr=indptr, indices=(keys % max(n, 1)).astype(np.int32),
        data=tf.astype(np.float32), alive=np.ones(n, bool),
    )


def _merge(segments: list[_Segment], width: int) -> _Segment:
    """One segment holding the live rows of `segments` (term frequencies and lengths as they are, nothing
    re-tokenized)."""
    ids, dls, terms_all, rows_all, tf_all = [], [], [], [], []
    offset = 0
    for seg in segments:
        new_row = np.cumsum(seg.alive) - 1
        terms = np.repeat(np.arange(seg.width, dtype=np.int64), np.diff(seg.indptr))
        keep = seg.alive[seg.indices]
        terms_all.append(terms[keep])
        rows_all.append(new_row[seg.indices[keep]] + offset)
        tf_all.append(seg.data[keep])
        ids.append(seg.ids[seg.alive])
        dls.append(seg.dl[seg.alive])
        offset += int(seg.alive.sum())
    ids_c = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    rows = np.concatenate(rows_all) if rows_all else np.zeros(0, np.int64)
    terms = np.concatenate(terms_all) if terms_all else np.zeros(0, np.int64)
    tf = np.concatenate(tf_all) if tf_all else np.zeros(0, np.float32)
    dl = np.concatenate(dls) if dls else np.zeros(0, np.float32)
    if len(ids_c) > 1 and np.any(np.diff(ids_c) < 0):  # ids not ascending across segments: renumber rows
        perm = np.argsort(ids_c, kind="stable")
        inv = np.empty_like(perm)
        inv[perm] = np.arange(len(perm))
        ids_c, dl, rows = ids_c[perm], dl[perm], inv[rows]
        order = np.lexsort((rows, terms))
    else:  # each segment is (term, row)-sorted and rows grow with the segment: a stable sort by term suffices
        order = np.argsort(terms, kind="stable")
    terms, rows, tf = terms[order], rows[order], tf[order]
    indptr = np.zeros(width + 1, np.int64)
    np.cumsum(np.bincount(terms, minlength=width), out=indptr[1:])
    return _Segment(
        name=uuid.uuid4().hex[:12], ids=ids_c, dl=dl, indptr=indptr, indices=rows.astype(np.int32), data=tf,
        alive=np.ones(len(ids_c), bool),
    )


class LexicalIndex:
    """BM25 over chunk ids. `ids` are the live chunk ids, ascending; `scores(query)` is aligned with them;
    `search` returns (scores, chunk ids), best first, zero-score docs excluded."""

    def __init__(self, backend: str = "bm25s", k1: float = 1.5, b: float = 0.75, method: str = "lucene") -> None:
        if backend not in ("bm25s", "rank-bm25"):
            raise ValueError(f"unknown lexical backend {backend!r} (use 'bm25s' or 'rank-bm25')")
        if method not in ("lucene", "robertson"):
            raise ValueError(f"unknown BM25 method {method!r} (use 'lucene' or 'robertson')")
        self.backend = backend
        self.k1, self.b, self.method = k1, b, method
        self.ids = np.zeros(0, dtype=np.int64)
        # bm25s (segmented)
        self.segments: list[_Segment] = []
        self.vocab: dict[str, int] = {}
        self._terms: list[str] = []
        self.df = np.zeros(0, np.int64)
        self.total_len = 0.0
        self._gather: np.ndarray | None = None  # concatenated-rows positions of `ids` (None: all rows, in order)
        self._vocab_files: list[str] = []
        self._vocab_saved = 0
        self.merges = 0
        # rank-bm25 (reference, rebuilt on every change)
        self._tokens: list[list[str]] | None = None
        self._impl = None
        self._df: Counter[str] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    # --- changes -------------------------------------------------------------------------------------------
    def build(self, ids: np.ndarray, texts: list[str]) -> None:
        """Index exactly these chunks (replacing whatever was indexed)."""
        self.__init__(self.backend, self.k1, self.b, self.method)  # type: ignore[misc]
        self.add(ids, texts)

    def add(self, ids: np.ndarray, texts: list[str]) -> None:
        """Index more chunks (their ids must not be indexed yet)."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        if len(ids) == 0:
            return
        if np.any(np.isin(ids, self.ids)):
            raise ValueError("some chunk ids are indexed already; remove them first")
        tokens = [tokenize(t) for t in texts]
        if self.backend == "rank-bm25":
            old = dict(zip(self.ids.tolist(), self._tokens or [], strict=True))
            old.update(zip(ids.tolist(), tokens, strict=True))
            self._set_rank_bm25(np.array(sorted(old), dtype=np.int64), [old[i] for i in sorted(old)])
            return
        vocab = self.vocab
        before = len(vocab)
        # setdefault(tok, len(vocab)): a new word gets the next id (len is taken before the insert)
        term_ids = [np.array([vocab.setdefault(t, len(vocab)) for t in toks], dtype=np.int64) for toks in tokens]
        if len(vocab) > before:
            self._terms.extend(list(vocab)[before:])  # dicts keep insertion order = id order
        width = len(self._terms)
        seg = _build_segment(ids, term_ids, width)
        df = np.zeros(width, np.int64)
        df[: len(self.df)] = self.df
        self.df = df + np.diff(seg.indptr)  # each (row, term) entry is one document containing the term
        self.total_len += float(seg.dl.sum())
        self.segments.append(seg)
        self._maybe_merge()
        self._refresh_ids()

    def remove(self, ids: np.ndarray) -> int:
        """Un-index chunks; ids that are not indexed are ignored. Returns how many were removed."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0 or len(self.ids) == 0:
            return 0
        if self.backend == "rank-bm25":
            keep = ~np.isin(self.ids, ids)
            n = int((~keep).sum())
            if n:
                tokens = [t for t, k in zip(self._tokens or [], keep, strict=True) if k]
                self._set_rank_bm25(self.ids[keep], tokens)
            return n
        removed = 0
        for seg in self.segments:
            pos = np.clip(np.searchsorted(seg.ids, ids), 0, max(len(seg.ids) - 1, 0))
            rows = np.unique(pos[(seg.ids[pos] == ids) & seg.alive[pos]]) if len(seg.ids) else pos[:0]
            if len(rows) == 0:
                continue
            if seg.alive is not None and not seg.alive.flags.writeable:
                seg.alive = seg.alive.copy()
            seg.alive[rows] = False
            self.df -= np.bincount(seg.terms_of_rows(rows), minlength=len(self.df))
            self.total_len -= float(seg.dl[rows].sum())
            removed += len(rows)
        if removed:
            self._maybe_merge()
            self._refresh_ids()
        return removed

    def _maybe_merge(self) -> None:
        if not self.segments:
            return
        width = len(self._terms)
        rows = sum(len(s.ids) for s in self.segments)
        dead = sum(int((~s.alive).sum()) for s in self.segments)
        base, deltas = self.segments[0], self.segments[1:]
        delta_rows = sum(len(s.ids) for s in deltas)
        if rows and (dead > DEAD_MERGE_RATIO * rows or delta_rows > DELTA_MERGE_RATIO * len(base.ids)):
            self.segments = [_merge(self.segments, width)] if rows - dead else []
            self.merges += 1
        elif len(deltas) > MAX_DELTAS:
            self.segments = [base, _merge(deltas, width)]
            self.merges += 1

    def _refresh_ids(self) -> None:
        if not self.segments:
            self.ids, self._gather = np.zeros(0, np.int64), None
            return
        all_ids = np.concatenate([s.ids for s in self.segments])
        alive = np.concatenate([s.alive for s in self.segments])
        if alive.all() and (len(all_ids) < 2 or bool(np.all(np.diff(all_ids) > 0))):
            self.ids, self._gather = all_ids, None
            return
        pos = np.flatnonzero(alive)
        pos = pos[np.argsort(all_ids[pos], kind="stable")]
        self.ids, self._gather = all_ids[pos], pos

    def _set_rank_bm25(self, ids: np.ndarray, tokens: list[list[str]]) -> None:
        from rank_bm25 import BM25Okapi

        self.ids, self._tokens, self._df = ids, tokens, None
        self._impl = BM25Okapi([t or [""] for t in tokens], k1=self.k1, b=self.b) if tokens else None

    # --- reads ---------------------------------------------------------------------------------------------
    def _idf(self, df: np.ndarray | float) -> np.ndarray | float:
        n = len(self.ids)
        if self.method == "lucene":
            return np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        return np.log((n - df + 0.5) / (df + 0.5))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed chunk (aligned with `self.ids`)."""
        q = tokenize(query)
        n = len(self.ids)
        if self.backend == "rank-bm25":
            if self._impl is None or not q:
                return np.zeros(n, dtype=np.float32)
            return np.asarray(self._impl.get_scores(q), dtype=np.float32)
        tids = [self.vocab[t] for t in q if t in self.vocab and self.df[self.vocab[t]] > 0]
        if not tids or n == 0:
            return np.zeros(n, dtype=np.float32)
        avgdl = self.total_len / n
        k1, b = self.k1, self.b
        parts = []
        for seg in self.segments:
            s = np.zeros(len(seg.ids), np.float32)
            for tid in tids:  # a repeated query word counts each time, as in bm25s
                rows, tf = seg.postings(tid)
                if len(rows):
                    idf = np.float32(self._idf(float(self.df[tid])))
                    norm = k1 * ((1.0 - b) + b * seg.dl[rows] / np.float32(avgdl))
                    s[rows] += idf * (tf / (norm + tf))
            parts.append(s)
        every = np.concatenate(parts)
        return every if self._gather is None else every[self._gather]

    def doc_freq(self, token: str) -> int:
        """Number of indexed chunks containing `token` (0 when unknown)."""
        if self.backend == "bm25s":
            tid = self.vocab.get(token)
            return 0 if tid is None else int(self.df[tid])
        if self._impl is None:
            return 0
        if self._df is None:
            self._df = Counter(t for d in self._impl.doc_freqs for t in d)
        return int(self._df.get(token, 0))

    def max_score(self, query: str) -> float:
        """An upper bound of the BM25 score any chunk can reach for `query`: the sum of the query terms' IDF
        (times k1+1 for rank-bm25, whose term weight saturates there). Query terms the corpus lacks count with the
        highest IDF, so a query about things the corpus does not mention gets a low normalized score."""
        q = tokenize(query)
        n = len(self.ids)
        if not q or n == 0:
            return 0.0
        idf = sum(math.log(1.0 + (n - self.doc_freq(t) + 0.5) / (self.doc_freq(t) + 0.5)) for t in q)
        return float(idf * (self.k1 + 1.0 if self.backend == "rank-bm25" else 1.0))

    def normalized(self, query: str, raw: np.ndarray) -> np.ndarray:
        """Raw BM25 scores mapped to [0, 1] by `max_score` (comparable across queries, unlike min-max)."""
        top = self.max_score(query)
        if top <= 0:
            return np.zeros_like(raw, dtype=np.float32)
        return np.clip(np.asarray(raw, dtype=np.float32) / top, 0.0, 1.0)

    def positions(self, chunk_ids: np.ndarray) -> np.ndarray:
        """Positions of chunk ids in `self.ids` (which is sorted); -1 where absent."""
        chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
        if len(self.ids) == 0:
            return np.full(len(chunk_ids), -1, np.int64)
        pos = np.searchsorted(self.ids, chunk_ids)
        pos = np.clip(pos, 0, len(self.ids) - 1)
        return np.where(self.ids[pos] == chunk_ids, pos, -1)

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None, scores: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k chunks by BM25; `allowed` is a boolean mask over `self.ids` (pre-filter). Pass `scores` (from
        `scores(query)`) to avoid scoring twice."""
        s = self.scores(query) if scores is None else scores
        if allowed is not None:
            s = np.where(allowed, s, 0.0)
        nz = np.flatnonzero(s > 0)
        if len(nz) == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        k = min(k, len(nz))
        top = nz[np.argpartition(-s[nz], k - 1)[:k]]
        top = top[np.lexsort((self.ids[top], -s[top]))]  # ties: lower chunk id first
        return s[top], self.ids[top]

    def memory_bytes(self) -> int:
        """Bytes held by the postings, lengths, ids, masks and document frequencies (not the vocabulary dict)."""
        return int(sum(s.nbytes for s in self.segments) + self.df.nbytes + self.ids.nbytes)

    # --- persistence ---------------------------------------------------------------------------------------
    def save(self, folder: Path, meta: dict) -> None:
        """Write what changed since the last save (new segments, live-row masks, new vocabulary, document
        frequencies), then atomically point `current.json` at it, then drop files nothing points at."""
        folder.mkdir(parents=True, exist_ok=True)
        tag = f"v{meta.get('corpus_version', 0)}-{uuid.uuid4().hex[:8]}"
        if self.backend == "rank-bm25":
            target = folder / tag
            target.mkdir()
            np.save(target / "ids.npy", self.ids)
            with gzip.open(target / "tokens.json.gz", "wt", encoding="utf-8") as fh:
                json.dump(self._tokens or [], fh)
            atomic_write_json(folder / "current.json", {**meta, "folder": tag, "backend": self.backend,
                                                        "method": self.method, "n": len(self.ids)})
            self._drop_unreferenced(folder, {tag})
            return
        segs = []
        for seg in self.segments:
            seg_dir = folder / f"seg-{seg.name}"
            if not seg_dir.exists():
                tmp = folder / f".tmp-seg-{seg.name}"
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()
                for key in ("ids", "dl", "indptr", "indices", "data"):
                    np.save(tmp / f"{key}.npy", getattr(seg, key))
                tmp.rename(seg_dir)
            if seg.alive.all():
                seg.saved_alive = None
            elif seg.saved_alive is None or not np.array_equal(
                np.load(folder / seg.saved_alive, mmap_mode="r"), seg.alive
            ):
                seg.saved_alive = f"alive-{seg.name}-{tag}.npy"
                np.save(folder / seg.saved_alive, seg.alive)
            segs.append({"name": seg.name, "alive": seg.saved_alive, "width": seg.width})
        if self._vocab_saved < len(self._terms):
            name = f"vocab-{tag}.json"
            atomic_write_json(folder / name, {"terms": self._terms[self._vocab_saved :]})
            self._vocab_files.append(name)
            self._vocab_saved = len(self._terms)
        df_name = f"df-{tag}.npy"
        np.save(folder / df_name, self.df)
        atomic_write_json(folder / "current.json", {
            **meta, "format": FORMAT, "backend": self.backend, "method": self.method, "k1": self.k1, "b": self.b,
            "n": len(self.ids), "total_len": self.total_len, "segments": segs, "vocab": self._vocab_files,
            "df": df_name,
        })
        keep = {f"seg-{s['name']}" for s in segs} | {s["alive"] for s in segs if s["alive"]}
        self._drop_unreferenced(folder, keep | set(self._vocab_files) | {df_name})

    @staticmethod
    def _drop_unreferenced(folder: Path, keep: set[str]) -> None:
        for old in folder.iterdir():
            if old.name == "current.json" or old.name in keep:
                continue
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: Path, backend: str) -> tuple[LexicalIndex, dict]:
        """Load a saved index (segment arrays memory-mapped); raises FileNotFoundError / ValueError when missing
        or in an older format (the caller then rebuilds it from the store)."""
        meta = json.loads((folder / "current.json").read_text())
        if meta.get("backend") != backend:
            raise ValueError(f"saved BM25 index uses {meta.get('backend')}, configured {backend}")
        idx = cls(backend, method=meta.get("method", "lucene"), k1=meta.get("k1", 1.5), b=meta.get("b", 0.75))
        if backend == "rank-bm25":
            target = folder / meta["folder"]
            ids = np.load(target / "ids.npy")
            with gzip.open(target / "tokens.json.gz", "rt", encoding="utf-8") as fh:
                idx._set_rank_bm25(ids, json.load(fh))
            return idx, meta
        if meta.get("format") != FORMAT:
            raise ValueError(f"saved BM25 index has format {meta.get('format')!r}, expected {FORMAT}; rebuild it")
        for name in meta["vocab"]:
            idx._terms.extend(json.loads((folder / name).read_text())["terms"])
        idx.vocab = {t: i for i, t in enumerate(idx._terms)}
        idx._vocab_files, idx._vocab_saved = list(meta["vocab"]), len(idx._terms)
        idx.df = np.array(np.load(folder / meta["df"]), dtype=np.int64)
        idx.total_len = float(meta["total_len"])
        for s in meta["segments"]:
            d = folder / f"seg-{s['name']}"
            arrays = {k: np.load(d / f"{k}.npy", mmap_mode="r") for k in ("ids", "dl", "indptr", "indices", "data")}
            alive = np.load(folder / s["alive"]) if s["alive"] else np.ones(len(arrays["ids"]), bool)
            idx.segments.append(_Segment(name=s["name"], alive=alive, saved_alive=s["alive"], **arrays))
        idx._refresh_ids()
        if len(idx.ids) != meta["n"] or len(idx.df) != len(idx._terms):
            raise ValueError("saved BM25 index is inconsistent (row or vocabulary counts differ); rebuild it")
        return idx, meta
