"""Fusion of ranked lists: reciprocal rank fusion and a convex combination of normalized scores.

Both work on plain `{chunk_id: score}` maps so they can be tested and compared on their own; `fuse` is the
search pipeline's fusion stage built from them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def rrf(
    legs: Mapping[str, Sequence[int]], k: float = 60.0, weights: Mapping[str, float] | None = None
) -> dict[int, float]:
    """Reciprocal rank fusion: score(d) = sum over legs of weight_leg / (k + rank_leg(d)), ranks 1-based.

    `legs` maps a leg name to its chunk ids, best first. A leg with weight 0 is ignored."""
    if k < 0:
        raise ValueError("rrf k must be >= 0")
    fused: dict[int, float] = {}
    for name, ids in legs.items():
        w = 1.0 if weights is None else float(weights.get(name, 1.0))
        if w == 0:
            continue
        for rank, cid in enumerate(ids, start=1):
            fused[cid] = fused.get(cid, 0.0) + w / (k + rank)
    return fused


def convex(
    normalized: Mapping[str, Mapping[int, float]], alpha: float = 0.5
) -> dict[int, float]:
    """alpha * dense + (1 - alpha) * lexical over normalized [0, 1] scores; a missing score counts as 0.

    With one leg only, its normalized score is returned as is."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("convex alpha must be in [0, 1]")
    dense = normalized.get("dense")
    lexical = normalized.get("lexical")
    if dense is None or lexical is None:
        only = dense if dense is not None else (lexical or {})
        return dict(only)
    ids = set(dense) | set(lexical)
    return {i: alpha * dense.get(i, 0.0) + (1.0 - alpha) * lexical.get(i, 0.0) for i in ids}


def ranking(scores: Mapping[int, float]) -> list[int]:
    """Ids by descending score; ties broken by id for a stable order."""
    return sorted(scores, key=lambda i: (-scores[i], i))


@dataclass
class Fused:
    """The fusion stage's output. `relevance`: the convex mix of the normalized scores, in [0, 1] and comparable
    across queries; `scores`: what the order is by (RRF values, or `relevance` itself); `order`: ids best first."""

    relevance: dict[int, float]
    scores: dict[int, float]
    order: list[int]


def fuse(
    normalized: Mapping[str, Mapping[int, float]], ranked: Mapping[str, Sequence[int]], method: str | None = "convex",
    alpha: float = 0.5, rrf_k: float = 60.0, weights: Mapping[str, float] | None = None,
) -> Fused:
    """Fuse the legs: `normalized` maps a leg name to the [0, 1] scores of every candidate, `ranked` maps it to
    the leg's own ranking (used by RRF). `method` "rrf" orders by reciprocal rank fusion of `ranked`; "convex"
    or None (a single leg) orders by the relevance. The relevance is always the convex mix."""
    if method not in ("rrf", "convex", None):
        raise ValueError(f"unknown fusion {method!r}: use rrf or convex")
    relevance = convex(normalized, alpha)
    if method == "rrf":
        scores = rrf({name: ranked.get(name, ()) for name in normalized}, k=rrf_k, weights=weights)
    else:
        scores = relevance
    return Fused(relevance=relevance, scores=scores, order=ranking(scores))
