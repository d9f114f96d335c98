"""BM25 lexical indexes over chunk ids, behind one interface (`LexicalIndex`) with one factory (`lexical_class`):

- `BM25Index` ("bm25", the default; "bm25s" is its old name, still accepted): our own BM25, updated incrementally
  in segments. It scores exactly as the bm25s library does (Lucene variant by default, Robertson selectable) -
  tests/test_scale_lexical.py checks it against bm25s - but keeps raw term frequencies instead of precomputed
  scores, so the index can change without a rebuild, and needs no BM25 library at run time;
- `RankBM25Index` ("rank-bm25"): the rank-bm25 library, rebuilt on every change; a reference for tests and
  benchmarks, not for big collections (an optional dependency: the `bench` extra).

Both see the same tokens (our tokenizer) and the same chunk-id order.

How `BM25Index` stays exact while it changes:

- every `add` writes one small *segment* (a term-major posting matrix: per term, the rows holding it and their
  term frequencies, plus the rows' document lengths);
- a `remove` marks rows dead and takes their terms out of the document frequencies;
- the collection-wide statistics (number of live documents, their total length, document frequency per term)
  are kept up to date on every change, and the score of a query is computed from them at search time. Scores
  are therefore exactly those of a full rebuild over the live documents (tests/test_scale_lexical.py), unlike
  per-segment IDF (Lucene before merge, Milvus' BM25 function);
- an add or remove merges only small new segments itself (`_merge_newest`: at most FOREGROUND_MERGE_ROWS rows,
  never the base); the merges into the base (when the deltas grow past a quarter of it, or a quarter of the rows
  are dead: tiered merging, amortized O(1) per added row, dead rows dropped) are *maintenance*: `maintained()`
  makes a merged copy after the ingest has saved its changes, while searches keep reading the index as it was
  (CollectionIndexes.maintain, called by the ingest job after its save).

How a query is scored without touching every chunk: `top(query, k)` reads each query term's postings per segment
(a segment of at most SMALL_SEGMENT rows is scored whole). Short lists are read whole; a long list is read
best-first (`_Impact`: its postings ordered by their term part, in blocks with a bound on any posting's score)
until the k-th best exact score of the rows seen beats the most any unseen row could score (the threshold
algorithm), so the cost follows the postings a query needs rather than the collection's size. After a first
round (the short lists and the head of each long list that matters), the k-th best score so far sets how deep
each long list is read next (`_next_depths`: deep enough that what stays unread cannot beat it, usually the last
round), and a newly read row is scored only if the bounds of its postings' blocks plus what its other lists
have unread can still reach that score (`_new_rows`). `scores_of` (and
`QueryScores`, what the search's scores stage holds) scores given chunks by binary search in the postings. All
paths add the same float32 terms in the same order as `scores`, so the scores are the same bits, and the top-k
is the exhaustive one, ties included (tests/test_scale_lexical.py, tests/test_lexical.py).

Adding one file to a collection of N chunks costs tokenizing the file plus a few O(N) numpy passes over
8-byte arrays (milliseconds at 1M chunks), instead of re-tokenizing all N chunk texts (BENCHMARKS.md, "Scale").

On disk, each segment is an immutable folder; `current.json` (written last, atomically) names the segments,
their live-row masks, the vocabulary files (append-only) and the document frequencies, so a crash mid-save
leaves the previous version readable. A save deletes only files that neither it nor the `current.json` it
replaces names, so a reader that read the previous `current.json` still finds its files. Its folder and saved
metadata still say "bm25s" (`saved_name`), so indexes saved before the rename load as they are.
"""

from __future__ import annotations

import copy
import functools
import gzip
import json
import logging
import math
import re
import shutil
import unicodedata
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

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
FOREGROUND_MERGE_ROWS = 50_000  # the largest merge an add or remove makes itself (bigger ones: `maintained`)
LONG_POSTINGS = 256  # a term's postings in a segment from which a top-k query reads them best-first (`_Impact`)
IMPACT_BLOCK = 64  # postings per block of an impact-ordered list (one score bound per block)
FIRST_DEPTH = 256  # postings of each long list a top-k query reads first (then as deep as `_next_depths` says)
SMALL_SEGMENT = 4096  # a segment of at most this many rows is scored whole (faster than reading lists best-first)
DENSE_SHARE = 0.5  # a query about to read more postings than this share of a segment's rows scores them all
FIRST_SHARE = 0.3  # the first round reads only the long lists that can add this share of the largest one's bound
LEVELS = 16  # bound levels tried when choosing how deep to read each long list next (`_next_depths`)
BOUND_SLACK = 1.0001  # float32 rounding headroom on score bounds (a bound never stops a query early)


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
    impacts: dict[int, _Impact] = field(default_factory=dict, repr=False)  # long lists best-first, made on use
    saved_impacts: _SavedImpacts | None = field(default=None, repr=False)  # every long list, as saved with it

    @property
    def width(self) -> int:
        return len(self.indptr) - 1

    @property
    def nbytes(self) -> int:
        arrays = sum(a.nbytes for a in (self.ids, self.dl, self.indptr, self.indices, self.data, self.alive))
        return arrays + sum(i.nbytes for i in list(self.impacts.values()))

    def postings(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        if tid >= self.width:
            return self.indices[:0], self.data[:0]
        a, b = int(self.indptr[tid]), int(self.indptr[tid + 1])
        return self.indices[a:b], self.data[a:b]

    def impact(self, tid: int, k1: float, b: float, avgdl: np.float32) -> _Impact:
        """Term `tid`'s postings best-first (by their BM25 term part at this `avgdl`; any order would be exact,
        a good one stops queries early): read from the saved segment when it was saved with them
        (`_impact_arrays`), else made on first use and kept (the segment never changes)."""
        got = self.impacts.get(tid)
        if got is None and self.saved_impacts is not None:
            got = self.saved_impacts.get(tid)
            if got is not None:
                self.impacts[tid] = got
        if got is None:
            rows, tf = self.postings(tid)
            dl = self.dl[rows]
            order = np.argsort(-_tf_part(tf, dl, k1, b, avgdl))
            starts = np.arange(0, len(rows), IMPACT_BLOCK)
            got = _Impact(rows=np.ascontiguousarray(rows[order]), tf_max=np.maximum.reduceat(tf[order], starts),
                          dl_min=np.minimum.reduceat(dl[order], starts))
            self.impacts[tid] = got  # threads may both make it: the same arrays, one kept
        return got

    def terms_of_rows(self, rows: np.ndarray) -> np.ndarray:
        """Term ids of every (row, term) entry whose row is in `rows` (one pass over this segment's postings)."""
        mask = np.zeros(len(self.ids), bool)
        mask[rows] = True
        hit = np.flatnonzero(mask[self.indices])
        return np.searchsorted(self.indptr, hit, side="right") - 1


@dataclass
class _Impact:
    """One long posting list best-first, in blocks of IMPACT_BLOCK postings, each with the largest term frequency
    and the smallest document length in it: the term part of any posting in a block is at most
    `_tf_part(tf_max, dl_min)` (it grows with tf and falls with dl), whatever the collection's average length."""

    rows: np.ndarray  # int32
    tf_max: np.ndarray  # float32 per block
    dl_min: np.ndarray  # float32 per block
    bounds: tuple[tuple[float, float, float], np.ndarray] | None = field(default=None, repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        kept = self.bounds[1].nbytes if self.bounds is not None else 0
        return self.rows.nbytes + self.tf_max.nbytes + self.dl_min.nbytes + kept

    def bounds_after(self, k1: float, b: float, avgdl: np.float32) -> np.ndarray:
        """[j]: the largest term part among the postings from block j on ([blocks]: 0), float64; the last one
        asked is kept (the average length changes only when the collection does)."""
        key = (k1, b, float(avgdl))
        last = self.bounds
        if last is not None and last[0] == key:
            return last[1]
        ub = _tf_part(self.tf_max, self.dl_min, k1, b, avgdl)
        out = np.zeros(len(ub) + 1, np.float64)
        out[:-1] = np.maximum.accumulate(ub[::-1])[::-1]
        self.bounds = key, out  # one assignment: threads see the old pair or the new one
        return out


IMPACT_FILES = ("tids", "ptr", "bptr", "rows", "tf_max", "dl_min")  # impact_<name>.npy in a segment's folder


@dataclass
class _SavedImpacts:
    """Every long list of a segment best-first, written with the segment (`_impact_arrays`), so that no query
    orders one on first use: list j is rows[ptr[j]:ptr[j+1]] with blocks bptr[j]:bptr[j+1]."""

    tids: np.ndarray  # int64 term ids, ascending
    ptr: np.ndarray  # int64, len(tids) + 1
    bptr: np.ndarray  # int64, len(tids) + 1
    rows: np.ndarray  # int32
    tf_max: np.ndarray  # float32 per block
    dl_min: np.ndarray  # float32 per block

    def get(self, tid: int) -> _Impact | None:
        j = int(np.searchsorted(self.tids, tid))
        if j >= len(self.tids) or int(self.tids[j]) != tid:
            return None
        a, b, c, d = int(self.ptr[j]), int(self.ptr[j + 1]), int(self.bptr[j]), int(self.bptr[j + 1])
        return _Impact(rows=self.rows[a:b], tf_max=self.tf_max[c:d], dl_min=self.dl_min[c:d])

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in IMPACT_FILES}


def _mapped(path: Path) -> np.ndarray:
    """A saved array memory-mapped read-only, as a plain ndarray view (np.memmap's slicing costs microseconds per
    slice, and a query slices postings dozens of times)."""
    return np.asarray(np.load(path, mmap_mode="r"))


def _impact_block(seg_dir: Path) -> int | None:
    """The block size a segment's saved impacts were written with (None: none saved)."""
    try:
        return int(np.load(seg_dir / "impact_block.npy")[0])
    except (OSError, ValueError, IndexError):
        return None


def _impact_arrays(seg: _Segment, k1: float, b: float) -> _SavedImpacts | None:
    """Every long list of a segment ordered best-first at the segment's own average length (any order is exact;
    the bounds hold for every average), in one sort; None for a segment scored whole (SMALL_SEGMENT)."""
    lens = np.diff(np.asarray(seg.indptr))
    tids = np.flatnonzero(lens > LONG_POSTINGS).astype(np.int64)
    if len(seg.ids) <= SMALL_SEGMENT or not len(tids):
        return None
    sizes = lens[tids]
    ptr = np.zeros(len(tids) + 1, np.int64)
    np.cumsum(sizes, out=ptr[1:])
    at = np.repeat(np.asarray(seg.indptr)[tids] - ptr[:-1], sizes) + np.arange(int(ptr[-1]))
    rows, tf = np.asarray(seg.indices)[at], np.asarray(seg.data)[at]
    dl = np.asarray(seg.dl)
    part = _tf_part(tf, dl[rows], k1, b, np.float32(dl.mean()))
    order = np.lexsort((-part, np.repeat(np.arange(len(tids)), sizes)))  # by list, best first within it
    rows, tf = rows[order], tf[order]
    blocks = -(-sizes // IMPACT_BLOCK)
    bptr = np.zeros(len(tids) + 1, np.int64)
    np.cumsum(blocks, out=bptr[1:])
    starts = np.repeat(ptr[:-1], blocks) + (np.arange(int(bptr[-1])) - np.repeat(bptr[:-1], blocks)) * IMPACT_BLOCK
    return _SavedImpacts(tids=tids, ptr=ptr, bptr=bptr, rows=np.ascontiguousarray(rows, np.int32),
                         tf_max=np.maximum.reduceat(tf, starts), dl_min=np.minimum.reduceat(dl[rows], starts))


def _tf_part(tf: np.ndarray, dl: np.ndarray, k1: float, b: float, avgdl: np.float32) -> np.ndarray:
    """BM25's term-frequency part (float32), the one expression every scoring path uses (same bits)."""
    norm = k1 * ((1.0 - b) + b * dl / avgdl)
    return tf / (norm + tf)


def _distinct(rows: np.ndarray) -> np.ndarray:
    """The distinct values, ascending (a sort: faster than np.unique's hashing for these few thousand ints)."""
    rows = np.sort(rows)
    return rows[np.concatenate(([True], rows[1:] != rows[:-1]))] if len(rows) else rows


@functools.cache
def _levels(lists: int) -> np.ndarray:
    """LEVELS shares of a threshold, from 1 down to just under 1 / lists (where `lists` bounds always fit)."""
    return np.geomspace(1.0, 1.0 / (lists * 1.001), LEVELS)


def _member(x: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Which of `x` are in `sorted_set` (ascending), by binary search."""
    if not len(sorted_set):
        return np.zeros(len(x), bool)
    return sorted_set[np.minimum(np.searchsorted(sorted_set, x), len(sorted_set) - 1)] == x


def _best(s: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best entries with a score above 0, best first, ties by lower chunk id."""
    pos = np.flatnonzero(s > 0)
    if len(pos) > k:
        kth = np.partition(s[pos], len(pos) - k)[len(pos) - k]
        pos = pos[s[pos] >= kth]
    order = np.lexsort((ids[pos], -s[pos]))[:k]
    return s[pos][order].astype(np.float32), ids[pos][order]


class QueryScores:
    """One query's BM25 score of any chunk, computed when asked (`of`): what the scores stage needs of the
    lexical leg, without scoring every chunk."""

    def __init__(self, index: LexicalIndex, query: str) -> None:
        self.index, self.query = index, query

    def of(self, chunk_ids: np.ndarray) -> np.ndarray:
        """BM25 of these chunk ids (float32, 0 for chunks without a query word or not indexed)."""
        return self.index.scores_of(self.query, np.asarray(chunk_ids, dtype=np.int64))


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


class LexicalBackend(StrEnum):
    """The `lexical_backend` setting's values."""

    BM25 = "bm25"  # BM25Index, our own segmented BM25
    RANK_BM25 = "rank-bm25"  # RankBM25Index, the rank-bm25 library (reference)


# older names still accepted in settings: our BM25 was called "bm25s" after the library whose scores it reproduces
BACKEND_ALIASES = {"bm25s": LexicalBackend.BM25}


class LexicalUnavailable(RuntimeError):
    """The configured lexical backend needs a library that is not installed; the message says which to install."""


class LexicalIndex(ABC):
    """BM25 over chunk ids. `ids` are the live chunk ids, ascending; `scores(query)` is aligned with them;
    `search` returns (scores, chunk ids), best first, zero-score docs excluded."""

    backend: ClassVar[LexicalBackend]
    saved_name: ClassVar[str]  # names its folder (bm25-<saved_name>) and is recorded in its saved metadata

    def __init__(self, k1: float = 1.5, b: float = 0.75, method: str = "lucene") -> None:
        if method not in ("lucene", "robertson"):
            raise ValueError(f"unknown BM25 method {method!r} (use 'lucene' or 'robertson')")
        self.k1, self.b, self.method = k1, b, method
        self.ids = np.zeros(0, dtype=np.int64)
        self._clear()

    def __len__(self) -> int:
        return len(self.ids)

    # --- what each backend implements ----------------------------------------------------------------------
    @abstractmethod
    def _clear(self) -> None:
        """Forget every indexed chunk."""

    @abstractmethod
    def _add_tokens(self, ids: np.ndarray, tokens: list[list[str]]) -> None:
        """Index chunks (not indexed yet) by their tokens."""

    @abstractmethod
    def _remove_ids(self, ids: np.ndarray) -> int:
        """Un-index chunks (the index is not empty, `ids` neither); returns how many were indexed."""

    @abstractmethod
    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed chunk (aligned with `self.ids`)."""

    @abstractmethod
    def doc_freq(self, token: str) -> int:
        """Number of indexed chunks containing `token` (0 when unknown)."""

    @abstractmethod
    def save(self, folder: Path, meta: dict) -> None:
        """Persist the index in `folder`, with `meta` (the corpus_version and collection it reflects)."""

    @classmethod
    @abstractmethod
    def load(cls, folder: Path) -> tuple[LexicalIndex, dict]:
        """Load an index saved in `folder`; raises FileNotFoundError / ValueError when missing, of another backend
        or in an older format (the caller then rebuilds it from the store)."""

    @property
    def segment_count(self) -> int:
        """Separately stored parts of the index (0: kept whole)."""
        return 0

    def maintained(self) -> LexicalIndex | None:
        """A restructured copy (segments merged, dead rows dropped) when one is due, else None; this index stays
        as it is. Run after an ingest has saved its changes (CollectionIndexes.maintain), not during it."""
        return None

    @property
    def term_weight_max(self) -> float:
        """The most a query term can score per unit of IDF (1 when the term-frequency part saturates at 1)."""
        return 1.0

    # --- changes -------------------------------------------------------------------------------------------
    def build(self, ids: np.ndarray, texts: list[str]) -> None:
        """Index exactly these chunks (replacing whatever was indexed)."""
        self.ids = np.zeros(0, dtype=np.int64)
        self._clear()
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
        self._add_tokens(ids, [tokenize(t) for t in texts])

    def remove(self, ids: np.ndarray) -> int:
        """Un-index chunks; ids that are not indexed are ignored. Returns how many were removed."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0 or len(self.ids) == 0:
            return 0
        return self._remove_ids(ids)

    # --- reads ---------------------------------------------------------------------------------------------
    def max_score(self, query: str) -> float:
        """An upper bound of the BM25 score any chunk can reach for `query`: the sum of the query terms' IDF
        (times `term_weight_max`). Query terms the corpus lacks count with the highest IDF, so a query about things
        the corpus does not mention gets a low normalized score."""
        q = tokenize(query)
        n = len(self.ids)
        if not q or n == 0:
            return 0.0
        idf = sum(math.log(1.0 + (n - self.doc_freq(t) + 0.5) / (self.doc_freq(t) + 0.5)) for t in q)
        return float(idf * self.term_weight_max)

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
        return _best(np.asarray(s, np.float32), self.ids, k)

    def top(self, query: str, k: int, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, chunk ids) by BM25 above 0, best first (ties: lower id first), within `allowed_ids`
        (chunk ids; None: all). This one scores every chunk; BM25Index reads only the query terms' postings."""
        mask = None if allowed_ids is None else np.isin(self.ids, np.asarray(allowed_ids, np.int64))
        return self.search(query, k, allowed=mask)

    def scores_of(self, query: str, chunk_ids: np.ndarray) -> np.ndarray:
        """BM25 of these chunk ids (float32; 0 where not indexed). This one scores every chunk; BM25Index only
        these."""
        chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
        pos = self.positions(chunk_ids)
        if len(chunk_ids) == 0 or len(self.ids) == 0:
            return np.zeros(len(chunk_ids), np.float32)
        return np.where(pos >= 0, self.scores(query)[np.maximum(pos, 0)], 0.0).astype(np.float32)

    def query_scores(self, query: str) -> QueryScores:
        """The query's scores of any chunk, computed on demand (the scores stage asks for its candidates')."""
        return QueryScores(self, query)

    # --- persistence helpers -------------------------------------------------------------------------------
    @classmethod
    def _read_meta(cls, folder: Path) -> dict:
        meta = json.loads((folder / "current.json").read_text())
        if meta.get("backend") != cls.saved_name:
            raise ValueError(f"saved BM25 index uses {meta.get('backend')}, configured {cls.saved_name}")
        return meta

    @staticmethod
    def _drop_unreferenced(folder: Path, keep: set[str]) -> None:
        for old in folder.iterdir():
            if old.name == "current.json" or old.name in keep:
                continue
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


class BM25Index(LexicalIndex):
    """Our BM25 (backend "bm25"): segments of raw term frequencies with exact collection-wide statistics, changed
    per file without a rebuild (the module docstring says how)."""

    backend = LexicalBackend.BM25
    saved_name = "bm25s"  # the backend's old name: its saved indexes keep loading

    def _clear(self) -> None:
        self.segments: list[_Segment] = []
        self.vocab: dict[str, int] = {}
        self._terms: list[str] = []
        self.df = np.zeros(0, np.int64)
        self.total_len = 0.0
        self._gather: np.ndarray | None = None  # concatenated-rows positions of `ids` (None: all rows, in order)
        self._vocab_files: list[str] = []
        self._vocab_saved = 0
        self.merges = 0

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    # --- changes -------------------------------------------------------------------------------------------
    def _add_tokens(self, ids: np.ndarray, tokens: list[list[str]]) -> None:
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
        self._merge_newest()
        self._refresh_ids()

    def _remove_ids(self, ids: np.ndarray) -> int:
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
            self._merge_newest()
            self._refresh_ids()
        return removed

    def _merge_newest(self) -> None:
        """The merges an add or remove makes in the foreground, never rewriting the base: segments without a live
        row are dropped, and the two newest deltas are merged while the older is at most twice the newer (sizes
        then fall geometrically: O(log n) deltas, each row merged O(log n) times) and together hold at most
        FOREGROUND_MERGE_ROWS rows. Merging into the base and dropping dead rows wait for `maintained`."""
        segs = [seg for seg in self.segments if seg.alive.any()]
        width = len(self._terms)
        while len(segs) > 2:
            older, newer = segs[-2], segs[-1]
            if len(older.ids) > 2 * len(newer.ids) or len(older.ids) + len(newer.ids) > FOREGROUND_MERGE_ROWS:
                break
            segs = segs[:-2] + [_merge([older, newer], width)]
            self.merges += 1
        self.segments = segs

    def _merge_plan(self) -> list[_Segment] | None:
        """The segments after the maintenance merges, or None when none is due: everything rewritten without dead
        rows once DEAD_MERGE_RATIO of the rows are dead or the deltas hold DELTA_MERGE_RATIO of the base's rows
        (tiered: amortized O(1) rewrites per row), else the deltas merged into one past MAX_DELTAS of them."""
        if not self.segments:
            return None
        width = len(self._terms)
        rows = sum(len(s.ids) for s in self.segments)
        dead = sum(int((~s.alive).sum()) for s in self.segments)
        base, deltas = self.segments[0], self.segments[1:]
        delta_rows = sum(len(s.ids) for s in deltas)
        if rows and (dead > DEAD_MERGE_RATIO * rows or delta_rows > DELTA_MERGE_RATIO * len(base.ids)):
            return [_merge(self.segments, width)] if rows - dead else []
        if len(deltas) > MAX_DELTAS:
            return [base, _merge(deltas, width)]
        return None

    def maintained(self) -> BM25Index | None:
        """A copy with the due merges done (`_merge_plan`), or None when none is due. This index is left as it
        is, so searches keep reading it while the merge runs; the caller saves the copy and then uses it in place
        of this one (they share the vocabulary, which only grows)."""
        plan = self._merge_plan()
        if plan is None:
            return None
        new = copy.copy(self)
        new.segments, new.df, new._vocab_files = plan, self.df.copy(), list(self._vocab_files)
        new.merges = self.merges + 1
        new._refresh_ids()
        return new

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

    # --- reads ---------------------------------------------------------------------------------------------
    def _idf(self, df: np.ndarray | float) -> np.ndarray | float:
        n = len(self.ids)
        if self.method == "lucene":
            return np.log(1.0 + (n - df + 0.5) / (df + 0.5))
        return np.log((n - df + 0.5) / (df + 0.5))

    def _query_terms(self, query: str) -> tuple[list[tuple[int, np.float32]], np.float32]:
        """The query's known terms in query order, repeats kept (each counts, as in bm25s), with their IDF; and the
        average document length (float32). No terms: an empty list."""
        n = len(self.ids)
        tids = [self.vocab[t] for t in tokenize(query) if t in self.vocab and self.df[self.vocab[t]] > 0]
        if not tids or n == 0:
            return [], np.float32(0)
        return [(t, np.float32(self._idf(float(self.df[t])))) for t in tids], np.float32(self.total_len / n)

    def scores(self, query: str) -> np.ndarray:
        """Every chunk's score (aligned with `ids`): O(chunks), for callers that need them all; a search uses
        `top` and `scores_of`, which read only the query terms' postings."""
        terms, avgdl = self._query_terms(query)
        if not terms:
            return np.zeros(len(self.ids), dtype=np.float32)
        parts = []
        for seg in self.segments:
            s = np.zeros(len(seg.ids), np.float32)
            for tid, idf in terms:
                rows, tf = seg.postings(tid)
                if len(rows):
                    s[rows] += idf * _tf_part(tf, seg.dl[rows], self.k1, self.b, avgdl)
            parts.append(s)
        every = np.concatenate(parts)
        return every if self._gather is None else every[self._gather]

    def _score_rows(self, seg: _Segment, rows: np.ndarray, terms: list[tuple[int, np.float32]],
                    avgdl: np.float32, ascending: bool = False) -> np.ndarray:
        """Scores of these rows of `seg` (any order; `ascending`: sorted and distinct): per query term, the rows
        found in its postings by binary search (or, for a list shorter than sorted rows, its postings found among
        the rows), added in query order as `scores` adds them (the same float32 values)."""
        acc = np.zeros(len(rows), np.float32)
        if not len(rows):
            return acc
        rows = rows.astype(seg.indices.dtype, copy=False)  # as the postings: searching int32 with int64 copies them
        parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # per term: positions in `rows`, their term scores
        for tid, idf in terms:
            if tid not in parts:
                prow, tf = seg.postings(tid)
                if not len(prow):
                    at, tfs = np.zeros(0, np.int64), tf
                elif ascending and len(prow) < len(rows):
                    p = np.minimum(np.searchsorted(rows, prow), len(rows) - 1)
                    hit = np.flatnonzero(rows[p] == prow)
                    at, tfs = p[hit], tf[hit]
                else:
                    p = np.minimum(np.searchsorted(prow, rows), len(prow) - 1)
                    at = np.flatnonzero(prow[p] == rows)
                    tfs = tf[p[at]]
                parts[tid] = at, idf * _tf_part(tfs, seg.dl[rows[at]], self.k1, self.b, avgdl)
            at, part = parts[tid]
            if len(at):
                acc[at] += part
        return acc

    def scores_of(self, query: str, chunk_ids: np.ndarray) -> np.ndarray:
        chunk_ids = np.asarray(chunk_ids, dtype=np.int64)
        out = np.zeros(len(chunk_ids), np.float32)
        terms, avgdl = self._query_terms(query)
        if not terms or not len(chunk_ids):
            return out
        for seg in self.segments:
            if not len(seg.ids):
                continue
            pos = np.minimum(np.searchsorted(seg.ids, chunk_ids), len(seg.ids) - 1)
            hit = (seg.ids[pos] == chunk_ids) & seg.alive[pos]
            if hit.any():
                out[hit] = self._score_rows(seg, pos[hit], terms, avgdl)
        return out

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None, scores: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        if scores is not None:
            return super().search(query, k, allowed=allowed, scores=scores)
        return self.top(query, k, None if allowed is None else self.ids[np.asarray(allowed, bool)])

    def top(self, query: str, k: int, allowed_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k by BM25, reading only the query terms' postings: short lists whole, long ones best-first
        (`_Impact`) until the k-th best exact score beats what any unread posting could add (the threshold
        algorithm; the module docstring says how deep each round reads and which rows it scores), so a query's
        cost follows the postings it needs, not the collection's size. A small `allowed_ids` is scored
        directly."""
        terms, avgdl = self._query_terms(query)
        if not terms or k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        allowed = None if allowed_ids is None else np.unique(np.asarray(allowed_ids, np.int64))
        if allowed is not None and len(allowed) <= 4 * LONG_POSTINGS:
            return _best(self.scores_of(query, allowed), allowed, k)
        found = [self._segment_top(seg, terms, avgdl, k, allowed) for seg in self.segments]
        if not found:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        return _best(np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found]), k)

    def _segment_top(self, seg: _Segment, terms: list[tuple[int, np.float32]], avgdl: np.float32, k: int,
                     allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """One segment's top-k (the `top` docstring says how). Terms with IDF <= 0 (Robertson, very common words)
        add nothing positive: they are scored, not read for candidates.

        Why it is exact: a row never read scores at most `unread`, which the k-th best beats when it stops; a row
        first read in a later round is bounded by `_new_rows` (it is in no short list: those were read whole
        first) and dropped only below the k-th best so far, which only grows. A row read again from another list
        was scored before (or dropped, or filtered out) when first read: it is in the top already (not added
        twice) or can never enter it, whatever its bound now."""
        if len(seg.ids) <= SMALL_SEGMENT:
            return self._segment_dense(seg, terms, avgdl, k, allowed)
        k1, b = self.k1, self.b
        weight: dict[int, float] = {}
        for tid, idf in terms:
            if idf > 0:
                weight[tid] = weight.get(tid, 0.0) + float(idf)
        short: list[np.ndarray] = []
        longs: list[_Impact] = []
        gains: list[np.ndarray] = []  # per long list, [j]: the most its postings from block j on add to a score
        for tid, w in weight.items():
            rows = seg.postings(tid)[0]
            if len(rows) <= LONG_POSTINGS:
                short.append(rows)
            else:
                imp = seg.impact(tid, k1, b, avgdl)
                longs.append(imp)
                gains.append(w * imp.bounds_after(k1, b, avgdl))
        sizes = [len(imp.rows) for imp in longs]
        first = max(1, FIRST_DEPTH // IMPACT_BLOCK) * IMPACT_BLOCK
        top_g = max([float(g[0]) for g in gains], default=0.0)
        read = [0] * len(longs)
        target = [min(first, n) if g[0] >= FIRST_SHARE * top_g else 0 for g, n in zip(gains, sizes, strict=True)]
        total = sum(len(r) for r in short)
        top_s, top_i = np.zeros(0, np.float32), np.zeros(0, np.int64)
        while True:
            total += sum(t - r for r, t in zip(read, target, strict=True))
            if total > DENSE_SHARE * len(seg.ids):  # no cheaper than scoring every row
                return self._segment_dense(seg, terms, avgdl, k, allowed)
            done = [-(-t // IMPACT_BLOCK) for t in target]  # blocks read after this round (a whole list: all)
            unread = sum(float(g[j]) for g, j in zip(gains, done, strict=True))
            theta = float(top_s[-1]) if len(top_s) == k else 0.0
            news = [i for i in range(len(longs)) if target[i] > read[i]]
            if theta > 0.0 and news:  # the new postings; rows that cannot reach the top-k are not scored
                rows, bound = self._new_rows(longs, gains, read, target, done, news)
                rows = rows[(unread + bound) * BOUND_SLACK >= theta]
            else:
                parts = short + [longs[i].rows[read[i] : target[i]] for i in news]
                rows = _distinct(np.concatenate(parts)) if parts else np.zeros(0, np.int32)
            short = []
            rows = rows[seg.alive[rows]]
            ids = seg.ids[rows]
            if len(top_i):  # rows scored before and still in the top: not twice
                fresh = ~_member(ids, np.sort(top_i))
                rows, ids = rows[fresh], ids[fresh]
            if allowed is not None:
                inside = _member(ids, allowed)
                rows, ids = rows[inside], ids[inside]
            if len(rows):
                top_s, top_i = _best(np.concatenate((top_s, self._score_rows(seg, rows, terms, avgdl, True))),
                                     np.concatenate((top_i, ids)), k)
            read = target
            theta = float(top_s[-1]) if len(top_s) == k else 0.0
            if unread == 0.0 or theta > unread * BOUND_SLACK:
                return top_s, top_i
            target = self._next_depths(gains, done, read, sizes, theta, first)

    @staticmethod
    def _new_rows(longs: list[_Impact], gains: list[np.ndarray], read: list[int], target: list[int],
                  done: list[int], news: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The distinct rows of the long lists' postings read[i]:target[i], and for each the most it can score
        above `unread` (the bound of every list's unread postings): a row's posting in a list it was read from
        is bounded by its block, instead of by what that list has unread."""
        rows = np.concatenate([longs[i].rows[read[i] : target[i]] for i in news])
        extra = np.concatenate([np.repeat(gains[i][read[i] // IMPACT_BLOCK : done[i]], IMPACT_BLOCK)
                                [: target[i] - read[i]] - gains[i][done[i]] for i in news])
        order = np.argsort(rows)
        rows, extra = rows[order], extra[order]
        starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
        return rows[starts], np.add.reduceat(extra, starts)

    @staticmethod
    def _next_depths(gains: list[np.ndarray], done: list[int], read: list[int], sizes: list[int], theta: float,
                     first: int) -> list[int]:
        """How far to read each long list next: far enough that the bound of what stays unread falls below
        `theta` (the k-th best score so far), every list brought down to one level (the highest of LEVELS that
        does; a list whose bound is below it already is not read further). The k-th best score only grows, so
        this is usually the last round. Fewer than k rows scored yet (theta 0): twice as deep everywhere."""
        if theta <= 0.0:
            return [min(n, max(first, 2 * r)) for r, n in zip(read, sizes, strict=True)]
        level = theta * _levels(len(gains))
        deep, tot = [], np.zeros(LEVELS)
        for g, j in zip(gains, done, strict=True):
            at = np.maximum(np.searchsorted(-g, -level), j)
            deep.append(at)
            tot += g[at]
        i = int(np.flatnonzero(tot * BOUND_SLACK < theta)[0])
        return [min(n, int(at[i]) * IMPACT_BLOCK) if at[i] > j else r
                for at, j, r, n in zip(deep, done, read, sizes, strict=True)]

    def _segment_dense(self, seg: _Segment, terms: list[tuple[int, np.float32]], avgdl: np.float32, k: int,
                       allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """One segment's top-k from every row's score (as `scores`), for queries whose postings cover most rows."""
        s = np.zeros(len(seg.ids), np.float32)
        for tid, idf in terms:
            rows, tf = seg.postings(tid)
            if len(rows):
                s[rows] += idf * _tf_part(tf, seg.dl[rows], self.k1, self.b, avgdl)
        keep = seg.alive if allowed is None else seg.alive & np.isin(seg.ids, allowed)
        return _best(np.where(keep, s, 0.0), seg.ids, k)

    def doc_freq(self, token: str) -> int:
        tid = self.vocab.get(token)
        return 0 if tid is None else int(self.df[tid])

    def memory_bytes(self) -> int:
        """Bytes held by the postings, lengths, ids, masks and document frequencies (not the vocabulary dict)."""
        return int(sum(s.nbytes for s in self.segments) + self.df.nbytes + self.ids.nbytes)

    # --- persistence ---------------------------------------------------------------------------------------
    def save(self, folder: Path, meta: dict) -> None:
        """Write what changed since the last save (new segments, live-row masks, new vocabulary, document
        frequencies), then atomically point `current.json` at it, then drop files nothing points at."""
        folder.mkdir(parents=True, exist_ok=True)
        tag = f"v{meta.get('corpus_version', 0)}-{uuid.uuid4().hex[:8]}"
        segs = [self._save_segment(folder, seg, tag, self.k1, self.b) for seg in self.segments]
        if self._vocab_saved < len(self._terms):
            name = f"vocab-{tag}.json"
            atomic_write_json(folder / name, {"terms": self._terms[self._vocab_saved :]})
            self._vocab_files.append(name)
            self._vocab_saved = len(self._terms)
        df_name = f"df-{tag}.npy"
        np.save(folder / df_name, self.df)
        previous = self._referenced(folder)  # a reader that just read the old current.json still finds its files
        atomic_write_json(folder / "current.json", {
            **meta, "format": FORMAT, "backend": self.saved_name, "method": self.method, "k1": self.k1, "b": self.b,
            "n": len(self.ids), "total_len": self.total_len, "segments": segs, "vocab": self._vocab_files,
            "df": df_name,
        })
        keep = {f"seg-{s['name']}" for s in segs} | {s["alive"] for s in segs if s["alive"]}
        self._drop_unreferenced(folder, keep | set(self._vocab_files) | {df_name} | previous)

    @staticmethod
    def _referenced(folder: Path) -> set[str]:
        """The files the saved `current.json` names (empty when there is none or it is unreadable)."""
        try:
            meta = json.loads((folder / "current.json").read_text())
            segs = meta.get("segments", [])
            return ({f"seg-{s['name']}" for s in segs} | {s["alive"] for s in segs if s.get("alive")}
                    | set(meta.get("vocab", [])) | {meta["df"]})
        except (OSError, ValueError, KeyError, TypeError):
            return set()

    @staticmethod
    def _save_segment(folder: Path, seg: _Segment, tag: str, k1: float = 1.5, b: float = 0.75) -> dict:
        """Write a segment's arrays once (segments are immutable), with its long lists best-first
        (`_impact_arrays`), and its live-row mask when it changed; returns its entry in `current.json`."""
        seg_dir = folder / f"seg-{seg.name}"
        if not seg_dir.exists():
            tmp = folder / f".tmp-seg-{seg.name}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            for key in ("ids", "dl", "indptr", "indices", "data"):
                np.save(tmp / f"{key}.npy", getattr(seg, key))
            if seg.saved_impacts is None:
                seg.saved_impacts = _impact_arrays(seg, k1, b)
            if seg.saved_impacts is not None:
                for key, arr in seg.saved_impacts.arrays().items():
                    np.save(tmp / f"impact_{key}.npy", arr)
                np.save(tmp / "impact_block.npy", np.array([IMPACT_BLOCK], np.int64))
            tmp.rename(seg_dir)
        if seg.alive.all():
            seg.saved_alive = None
        elif seg.saved_alive is None or not np.array_equal(np.load(folder / seg.saved_alive, mmap_mode="r"),
                                                            seg.alive):
            seg.saved_alive = f"alive-{seg.name}-{tag}.npy"
            np.save(folder / seg.saved_alive, seg.alive)
        return {"name": seg.name, "alive": seg.saved_alive, "width": seg.width}

    @classmethod
    def load(cls, folder: Path) -> tuple[BM25Index, dict]:
        """Load a saved index, its segment arrays memory-mapped."""
        meta = cls._read_meta(folder)
        if meta.get("format") != FORMAT:
            raise ValueError(f"saved BM25 index has format {meta.get('format')!r}, expected {FORMAT}; rebuild it")
        idx = cls(method=meta.get("method", "lucene"), k1=meta.get("k1", 1.5), b=meta.get("b", 0.75))
        for name in meta["vocab"]:
            idx._terms.extend(json.loads((folder / name).read_text())["terms"])
        idx.vocab = {t: i for i, t in enumerate(idx._terms)}
        idx._vocab_files, idx._vocab_saved = list(meta["vocab"]), len(idx._terms)
        idx.df = np.array(np.load(folder / meta["df"]), dtype=np.int64)
        idx.total_len = float(meta["total_len"])
        for s in meta["segments"]:
            d = folder / f"seg-{s['name']}"
            arrays = {k: _mapped(d / f"{k}.npy") for k in ("ids", "dl", "indptr", "indices", "data")}
            alive = np.load(folder / s["alive"]) if s["alive"] else np.ones(len(arrays["ids"]), bool)
            saved = None
            if _impact_block(d) == IMPACT_BLOCK:  # else (saved before, or another block size): ordered on first use
                saved = _SavedImpacts(**{k: _mapped(d / f"impact_{k}.npy") for k in IMPACT_FILES})
            idx.segments.append(_Segment(
                name=s["name"], ids=arrays["ids"], dl=arrays["dl"], indptr=arrays["indptr"],
                indices=arrays["indices"], data=arrays["data"], alive=alive, saved_alive=s["alive"],
                saved_impacts=saved))
        idx._refresh_ids()
        if len(idx.ids) != meta["n"] or len(idx.df) != len(idx._terms):
            raise ValueError("saved BM25 index is inconsistent (row or vocabulary counts differ); rebuild it")
        return idx, meta


def _bm25okapi() -> type:
    """rank-bm25's BM25Okapi, imported when the "rank-bm25" backend is used (an optional dependency)."""
    try:
        from rank_bm25 import BM25Okapi
    except ImportError:
        raise LexicalUnavailable(
            "lexical_backend = 'rank-bm25' needs the rank-bm25 package, which is not installed: pip install "
            "'localrag[bench]' (or rank-bm25), or use lexical_backend = 'bm25'"
        ) from None
    return BM25Okapi


class RankBM25Index(LexicalIndex):
    """The rank-bm25 library's BM25Okapi (backend "rank-bm25"), rebuilt from every chunk's tokens on each change:
    the reference our BM25Index is compared with, not for big collections."""

    backend = LexicalBackend.RANK_BM25
    saved_name = "rank-bm25"

    def _clear(self) -> None:
        self._okapi = _bm25okapi()
        self._tokens: list[list[str]] = []
        self._impl = None
        self._df: Counter[str] | None = None

    @property
    def term_weight_max(self) -> float:
        """rank-bm25 keeps the (k1 + 1) factor in the term-frequency part, where it saturates."""
        return self.k1 + 1.0

    def _set(self, ids: np.ndarray, tokens: list[list[str]]) -> None:
        self.ids, self._tokens, self._df = ids, tokens, None
        self._impl = self._okapi([t or [""] for t in tokens], k1=self.k1, b=self.b) if tokens else None

    def _add_tokens(self, ids: np.ndarray, tokens: list[list[str]]) -> None:
        every = dict(zip(self.ids.tolist(), self._tokens, strict=True))
        every.update(zip(ids.tolist(), tokens, strict=True))
        self._set(np.array(sorted(every), dtype=np.int64), [every[i] for i in sorted(every)])

    def _remove_ids(self, ids: np.ndarray) -> int:
        keep = ~np.isin(self.ids, ids)
        n = int((~keep).sum())
        if n:
            self._set(self.ids[keep], [t for t, k in zip(self._tokens, keep, strict=True) if k])
        return n

    def scores(self, query: str) -> np.ndarray:
        q = tokenize(query)
        if self._impl is None or not q:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._impl.get_scores(q), dtype=np.float32)

    def doc_freq(self, token: str) -> int:
        if self._impl is None:
            return 0
        if self._df is None:
            self._df = Counter(t for d in self._impl.doc_freqs for t in d)
        return int(self._df.get(token, 0))

    def save(self, folder: Path, meta: dict) -> None:
        """The ids and every chunk's tokens, in a new folder that `current.json` then names."""
        folder.mkdir(parents=True, exist_ok=True)
        tag = f"v{meta.get('corpus_version', 0)}-{uuid.uuid4().hex[:8]}"
        target = folder / tag
        target.mkdir()
        np.save(target / "ids.npy", self.ids)
        with gzip.open(target / "tokens.json.gz", "wt", encoding="utf-8") as fh:
            json.dump(self._tokens, fh)
        atomic_write_json(folder / "current.json", {**meta, "folder": tag, "backend": self.saved_name,
                                                    "method": self.method, "n": len(self.ids)})
        self._drop_unreferenced(folder, {tag})

    @classmethod
    def load(cls, folder: Path) -> tuple[RankBM25Index, dict]:
        meta = cls._read_meta(folder)
        idx = cls(method=meta.get("method", "lucene"), k1=meta.get("k1", 1.5), b=meta.get("b", 0.75))
        target = folder / meta["folder"]
        ids = np.load(target / "ids.npy")
        with gzip.open(target / "tokens.json.gz", "rt", encoding="utf-8") as fh:
            idx._set(ids, json.load(fh))
        return idx, meta


_CLASSES: dict[LexicalBackend, type[LexicalIndex]] = {
    LexicalBackend.BM25: BM25Index, LexicalBackend.RANK_BM25: RankBM25Index,
}


def lexical_class(backend: str) -> type[LexicalIndex]:
    """The one place that picks the lexical index class for a `lexical_backend` setting ("bm25", its old name
    "bm25s", or "rank-bm25"). `lexical_class(setting)()` makes an empty index, `.load(folder)` a saved one."""
    try:
        name = LexicalBackend(BACKEND_ALIASES.get(backend, backend))
    except ValueError:
        raise ValueError(f"unknown lexical backend {backend!r} (use 'bm25' or 'rank-bm25')") from None
    return _CLASSES[name]
