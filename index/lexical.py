"""BM25 lexical index: bm25s by default (sparse, precomputed scores), rank-bm25 selectable as the reference.

Both backends see the same tokens (our tokenizer) and the same chunk-id order, so they can be compared.
The index is rebuilt from the store's chunk texts after each ingest run and saved in a versioned folder that a
small pointer file names, so a crash mid-save leaves the previous version readable.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import re
import shutil
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np

from localrag.index.text import BM25_STOPWORDS
from localrag.index.vectors import atomic_write_json

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)
STOPWORDS = BM25_STOPWORDS  # kept under its old name for callers


def tokenize(text: str) -> list[str]:
    """Lower-cased NFKC word tokens without English stopwords; numbers and acronyms are kept."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return [t for t in _WORD.findall(text) if t not in STOPWORDS]


class LexicalIndex:
    """BM25 over chunk ids. `search` returns (scores, chunk ids), best first, zero-score docs excluded."""

    def __init__(self, backend: str = "bm25s", k1: float = 1.5, b: float = 0.75, method: str = "lucene") -> None:
        if backend not in ("bm25s", "rank-bm25"):
            raise ValueError(f"unknown lexical backend {backend!r} (use 'bm25s' or 'rank-bm25')")
        self.backend = backend
        self.k1, self.b, self.method = k1, b, method
        self.ids = np.zeros(0, dtype=np.int64)
        self._tokens: list[list[str]] | None = None  # rank-bm25 only (it has no save format of its own)
        self._impl = None
        self._df: Counter[str] | None = None  # rank-bm25 document frequencies, computed on first use

    def __len__(self) -> int:
        return len(self.ids)

    def build(self, ids: np.ndarray, texts: list[str]) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        tokens = [tokenize(t) for t in texts]
        self._build_tokens(tokens)

    def _build_tokens(self, tokens: list[list[str]]) -> None:
        if not tokens:
            self._impl = None
            return
        if self.backend == "bm25s":
            import bm25s

            logging.getLogger("bm25s").setLevel(logging.WARNING)  # it sets itself to DEBUG on import
            impl = bm25s.BM25(k1=self.k1, b=self.b, method=self.method)
            # an empty token list would break bm25s' vocabulary; "" is its reserved empty token
            impl.index([t or [""] for t in tokens], show_progress=False)
            self._impl = impl
        else:
            from rank_bm25 import BM25Okapi

            self._tokens = tokens
            self._df = None
            self._impl = BM25Okapi([t or [""] for t in tokens], k1=self.k1, b=self.b)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every indexed chunk (aligned with `self.ids`)."""
        q = tokenize(query)
        if self._impl is None or not q:
            return np.zeros(len(self.ids), dtype=np.float32)
        if self.backend == "bm25s":
            known = [t for t in q if t in self._impl.vocab_dict]
            if not known:
                return np.zeros(len(self.ids), dtype=np.float32)
            return np.asarray(self._impl.get_scores(known), dtype=np.float32)
        return np.asarray(self._impl.get_scores(q), dtype=np.float32)

    def doc_freq(self, token: str) -> int:
        """Number of indexed chunks containing `token` (0 when unknown)."""
        if self._impl is None:
            return 0
        if self.backend == "bm25s":
            tid = self._impl.vocab_dict.get(token)
            if tid is None:
                return 0
            indptr = self._impl.scores["indptr"]
            return int(indptr[tid + 1] - indptr[tid])
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
        top = top[np.argsort(-s[top], kind="stable")]
        return s[top], self.ids[top]

    # --- persistence ---------------------------------------------------------------------------------------
    def save(self, folder: Path, meta: dict) -> None:
        """Write a new version folder, then atomically point `current.json` at it, then drop older folders."""
        folder.mkdir(parents=True, exist_ok=True)
        name = f"v{meta.get('corpus_version', 0)}-{np.random.default_rng().integers(1 << 30)}"
        target = folder / name
        target.mkdir()
        np.save(target / "ids.npy", self.ids)
        if self._impl is not None:
            if self.backend == "bm25s":
                self._impl.save(str(target / "bm25s"))
            else:
                with gzip.open(target / "tokens.json.gz", "wt", encoding="utf-8") as fh:
                    json.dump(self._tokens, fh)
        atomic_write_json(
            folder / "current.json",
            {**meta, "folder": name, "backend": self.backend, "method": self.method, "n": len(self.ids)},
        )
        for old in folder.iterdir():
            if old.is_dir() and old.name != name:
                shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path, backend: str) -> tuple[LexicalIndex, dict]:
        meta = json.loads((folder / "current.json").read_text())
        if meta.get("backend") != backend:
            raise ValueError(f"saved BM25 index uses {meta.get('backend')}, configured {backend}")
        target = folder / meta["folder"]
        idx = cls(backend, method=meta.get("method", "lucene"))
        idx.ids = np.load(target / "ids.npy")
        if len(idx.ids):
            if backend == "bm25s":
                import bm25s

                idx._impl = bm25s.BM25.load(str(target / "bm25s"), mmap=True)
            else:
                with gzip.open(target / "tokens.json.gz", "rt", encoding="utf-8") as fh:
                    idx._build_tokens(json.load(fh))
        return idx, meta
