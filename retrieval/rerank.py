"""Cross-encoder reranking (sentence-transformers `CrossEncoder`), batched, on the GPU when there is one.

No reranker is configured by default: none can be downloaded offline. Configure `reranker_model` with a
CrossEncoder id (needs the hub once) or a local folder.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

log = logging.getLogger(__name__)


class RerankerError(RuntimeError):
    pass


class TextScorer(Protocol):
    """What the rerank stage needs: a model id and relevance scores of texts for a query ([0, 1], same order)."""

    model_id: str

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray: ...


def rerank_head(
    reranker: TextScorer, query: str, head: Sequence[int], texts: Mapping[int, str]
) -> tuple[list[int], dict[int, float]]:
    """The rerank stage: score the fused top M (`head`, best first) with the reranker and re-order it by that score
    (ties keep the fused order). Chunks without a text in `texts` (gone from the store) are left out.
    Returns (the new order, {chunk id: rerank score})."""
    kept = [c for c in head if c in texts]
    scores = reranker.score(query, [texts[c] for c in kept])
    by_id = {c: float(v) for c, v in zip(kept, scores, strict=True)}
    fused_pos = {c: n for n, c in enumerate(kept)}
    return sorted(kept, key=lambda c: (-by_id[c], fused_pos[c])), by_id


class Reranker:
    def __init__(self, model: str, device: str = "auto", batch_size: int = 32, max_length: int | None = 512) -> None:
        path = Path(model).expanduser()
        self.model_id = str(path.resolve()) if path.exists() else model
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self._model: CrossEncoder | None = None  # loaded on first use
        self._lock = threading.Lock()  # one tokenizer: not safe to call from several threads at once

    def _load(self) -> CrossEncoder:
        if Path(self.model_id).exists():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import CrossEncoder
        from transformers.utils import logging as hf_logging

        from localrag.index.embedder import pick_device

        hf_logging.disable_progress_bar()
        try:
            return CrossEncoder(self.model_id, device=pick_device(self.device), max_length=self.max_length)
        except Exception as exc:
            raise RerankerError(
                f"cannot load reranker {self.model_id!r}: {exc}. Set reranker_model to a local CrossEncoder folder, "
                "or unset it to search without reranking."
            ) from exc

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Relevance of each text to the query in [0, 1] (the model's sigmoid/softmax output), same order."""
        if not texts:
            return np.zeros(0, np.float32)
        with self._lock:
            if self._model is None:
                self._model = self._load()
            out = self._model.predict(
                [(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False,
                convert_to_numpy=True,
            )
        out = np.asarray(out, dtype=np.float32)
        if out.ndim == 2:  # several labels: take the last ("relevant") column
            out = out[:, -1]
        if out.min(initial=0.0) < 0.0 or out.max(initial=0.0) > 1.0:  # raw logits from an identity activation
            out = 1.0 / (1.0 + np.exp(-out))
        return out
