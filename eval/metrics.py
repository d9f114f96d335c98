"""The four answer metrics (ragas definitions) and their result types, shared by every judge.

Definitions: faithfulness = supported claims / claims in the answer; answer relevancy = mean cosine between the
question and questions generated from the answer (0 when the answer is noncommittal), or the question/answer cosine
for the proxy judge; context precision@k = sum_k(precision@k * v_k) / number of relevant contexts in the top K;
context recall = share of reference-answer sentences attributable to the contexts.

A judge (eval.proxy.ProxyScorer, eval.judge.LLMJudge, ...) returns `Scores`: one `MetricScore` per metric, each a
value in [0, 1] or None with the reason it could not be scored. A NaN never leaves a `MetricScore`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["METRICS", "EmbedderLike", "MetricScore", "Scores", "clip01", "precision_at_k", "select_metrics"]

log = logging.getLogger(__name__)

METRICS = ("faithfulness", "answer_relevancy", "context_precision", "context_recall")


class EmbedderLike(Protocol):
    """What the judges need from an embedding model (index.embedder.Embedder fits)."""

    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray: ...


@dataclass
class MetricScore:
    """One metric's value in [0, 1], or None with the reason it could not be scored (never NaN)."""

    name: str
    value: float | None
    judge: str
    details: dict = field(default_factory=dict)
    unscored_reason: str | None = None

    def __post_init__(self) -> None:
        if self.value is not None:
            v = float(self.value)
            if not math.isfinite(v):  # a NaN must never pass silently: turn it into an explained None
                log.warning("metric %s got a non-finite value %r from %s: reported unscored", self.name, v, self.judge)
                self.value = None
                self.unscored_reason = self.unscored_reason or f"non-finite value ({v!r})"
                return
            self.value = min(1.0, max(0.0, v))
        elif not self.unscored_reason:
            self.unscored_reason = "unscored"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "judge": self.judge,
                "unscored_reason": self.unscored_reason, "details": _jsonable(self.details)}


@dataclass
class Scores:
    """The metrics of one answer, from one judge, with the wall time they took."""

    metrics: dict[str, MetricScore]
    seconds: float
    judge: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge, "seconds": round(self.seconds, 4),
            "values": {n: m.value for n, m in self.metrics.items()},
            "unscored": {n: m.unscored_reason for n, m in self.metrics.items() if m.value is None},
            "metrics": {n: m.to_dict() for n, m in self.metrics.items()},
        }

    def value(self, name: str) -> float | None:
        """The metric's value; None when it was unscored or not computed (an unknown name is a KeyError)."""
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}: one of {', '.join(METRICS)}")
        m = self.metrics.get(name)
        return None if m is None else m.value


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return round(v, 4) if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def select_metrics(metrics: Iterable[str] | None) -> tuple[str, ...]:
    """The metrics asked for, in order and each once (None: all four); an unknown name is a ValueError."""
    if metrics is None:
        return METRICS
    chosen = tuple(dict.fromkeys(metrics))
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}: choose from {', '.join(METRICS)}")
    return chosen


def clip01(x: float) -> float:
    """x limited to [0, 1]."""
    return float(min(1.0, max(0.0, x)))


def precision_at_k(relevant: Sequence[bool]) -> float:
    """ragas context precision: mean of precision@k over the ranks k that hold a relevant item (0 when none)."""
    hits, total = 0, 0.0
    for k, rel in enumerate(relevant, start=1):
        if rel:
            hits += 1
            total += hits / k
    return total / hits if hits else 0.0
