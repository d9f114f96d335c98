"""Fusion of ranked lists: reciprocal rank fusion, and a convex combination of per-leg normalised scores whose
weights can follow how confident each leg is for the query at hand.

Everything works on plain `{chunk_id: score}` maps so it can be tested and compared on its own (the fusion study in
bench/fusion_study.py runs these same functions over stored candidates); `fuse` is the search pipeline's
fusion stage built from them.

Normalisations (`Norm`), each per leg over the candidate set of one query:

    fixed    the query-independent [0, 1] forms the scores stage computes (cosine clipped at 0; BM25 divided by the
             query's maximum attainable BM25). BM25 rarely comes near its bound, so this under-weights the lexical leg
    minmax   (s - min) / (max - min) over the candidates (the leg's best candidate gets 1)
    zscore   (s - mean) / std over the candidates
    rank     Borda: 1 - (rank - 1) / n over the leg's own ranking of n chunks; 0 for chunks the leg did not rank
    txtai    txtai's hybrid: raw cosine for dense; BM25 / min(top + avg, 6 avg) for lexical, avg being the mean BM25
             of the chunks that share a word with the query (txtai uses an index-wide average term score)

Query-adaptive weights (`Adaptive`): the configured `alpha` is the prior weight of dense; `adaptive` multiplies each
leg's weight by its confidence for this query, measured on its own top `conf_top` scores (best first):

    gap      (s_1 - s_n) / s_1: how far the leg's best result stands above its n-th (scale-free; 0 when flat)
    zgap     (s_1 - mean) / std of the top n, squashed to [0, 1) by x / (1 + x)
    entropy  1 - H(softmax of the min-max top n scores * 5) / log n: a peaked distribution is confident
    level    the leg's best fixed [0, 1] score: how well its best chunk matches at all (cosine; for BM25 the share
             of the query's attainable score), whatever the rest of its list looks like
    lgap     s_1 - s_n over the fixed [0, 1] scores: the gap, but absolute, so a weak leg whose best result stands
             out from a flat list still counts little

gap, zgap and entropy read each leg's raw scores; level and lgap read the fixed scores.

Each vocabulary (Fusion, Norm, Adaptive) is a StrEnum whose members equal the strings the settings use, and maps to
its functions through one table (`_ORDER`, `_NORMALIZE`, `_CONFIDENCE`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar


class Fusion(StrEnum):
    """How a hybrid search orders its candidates (`fusion` setting)."""

    RRF = "rrf"
    CONVEX = "convex"


class Norm(StrEnum):
    """How the convex mix normalises each leg's scores (`fusion_norm` setting; see the module docstring)."""

    FIXED = "fixed"
    MINMAX = "minmax"
    ZSCORE = "zscore"
    RANK = "rank"
    TXTAI = "txtai"


class Adaptive(StrEnum):
    """Query-adaptive leg weighting of the convex mix (`fusion_adaptive` setting; see the module docstring)."""

    NONE = "none"
    GAP = "gap"
    ZGAP = "zgap"
    ENTROPY = "entropy"
    LEVEL = "level"
    LGAP = "lgap"


# the values, in order, as the settings and the studies name them (members compare equal to the plain strings)
NORMS = tuple(Norm)
ADAPTIVE = tuple(Adaptive)
ON_FIXED = (Adaptive.LEVEL, Adaptive.LGAP)  # the adaptive weightings computed on the fixed [0, 1] scores
METHODS = tuple(Fusion)

_V = TypeVar("_V", Fusion, Norm, Adaptive)


def member(vocabulary: type[_V], value: str, what: str) -> _V:
    """`value` as a member of `vocabulary`, or a ValueError naming `what` and the accepted values."""
    try:
        return vocabulary(value)
    except ValueError:
        raise ValueError(f"unknown {what} {value!r}: use {', '.join(vocabulary)}") from None


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


def _norm_fixed(raw: Mapping[int, float], leg: str, ranked: Sequence[int],
                fixed: Mapping[int, float] | None) -> dict[int, float]:
    if fixed is None:
        raise ValueError("the fixed normalisation needs the [0, 1] scores of the scores stage")
    return dict(fixed)


def _norm_minmax(raw: Mapping[int, float], leg: str, ranked: Sequence[int],
                 fixed: Mapping[int, float] | None) -> dict[int, float]:
    lo, hi = min(raw.values()), max(raw.values())
    if hi - lo <= 1e-12:
        return {c: (1.0 if hi > 0 else 0.0) for c in raw}
    return {c: (s - lo) / (hi - lo) for c, s in raw.items()}


def _norm_zscore(raw: Mapping[int, float], leg: str, ranked: Sequence[int],
                 fixed: Mapping[int, float] | None) -> dict[int, float]:
    vals = list(raw.values())
    mean = math.fsum(vals) / len(vals)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / len(vals))
    if std <= 1e-12:
        return {c: 0.0 for c in raw}
    return {c: (s - mean) / std for c, s in raw.items()}


def _norm_rank(raw: Mapping[int, float], leg: str, ranked: Sequence[int],
               fixed: Mapping[int, float] | None) -> dict[int, float]:
    n = len(ranked)
    pos = {c: r for r, c in enumerate(ranked)}
    return {c: (1.0 - pos[c] / n if c in pos else 0.0) for c in raw}


def _norm_txtai(raw: Mapping[int, float], leg: str, ranked: Sequence[int],
                fixed: Mapping[int, float] | None) -> dict[int, float]:
    if leg == "dense":
        return dict(raw)
    positive = [v for v in raw.values() if v > 0]
    if not positive:
        return {c: 0.0 for c in raw}
    avg = math.fsum(positive) / len(positive)
    ceiling = min(max(positive) + avg, 6.0 * avg)
    return {c: min(1.0, max(0.0, s) / ceiling) for c, s in raw.items()}


_NORMALIZE: dict[Norm, Callable[..., dict[int, float]]] = {
    Norm.FIXED: _norm_fixed, Norm.MINMAX: _norm_minmax, Norm.ZSCORE: _norm_zscore, Norm.RANK: _norm_rank,
    Norm.TXTAI: _norm_txtai,
}


def normalize(
    raw: Mapping[int, float], method: str, *, leg: str = "dense", ranked: Sequence[int] = (),
    fixed: Mapping[int, float] | None = None,
) -> dict[int, float]:
    """One leg's raw scores of every candidate, normalised by `method` (see Norm). `ranked`: the leg's own ranking
    (for "rank"); `fixed`: the query-independent [0, 1] scores (for "fixed")."""
    norm = member(Norm, method, "normalisation")
    if not raw and norm != Norm.FIXED:
        return {}
    return _NORMALIZE[norm](raw, leg, ranked, fixed)


def _conf_none(s: list[float]) -> float:
    return 1.0


def _conf_level(s: list[float]) -> float:
    return min(1.0, max(0.0, s[0])) if s else 0.0


def _conf_lgap(s: list[float]) -> float:
    return min(1.0, max(0.0, s[0] - s[-1])) if len(s) >= 2 else 0.0


def _shape_undefined(s: list[float]) -> float | None:
    """The confidence of a list too short or too weak for its shape to say anything (None: it can say)."""
    if len(s) < 2 or s[0] <= 0:
        return 0.0 if not s or s[0] <= 0 else 1.0
    return None


def _conf_gap(s: list[float]) -> float:
    early = _shape_undefined(s)
    return early if early is not None else max(0.0, (s[0] - s[-1]) / s[0])


def _conf_zgap(s: list[float]) -> float:
    early = _shape_undefined(s)
    if early is not None:
        return early
    mean = math.fsum(s) / len(s)
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in s) / len(s))
    if std <= 1e-12:
        return 0.0
    z = (s[0] - mean) / std
    return z / (1.0 + z)


def _conf_entropy(s: list[float]) -> float:
    early = _shape_undefined(s)
    if early is not None:
        return early
    lo, hi = min(s), max(s)
    if hi - lo <= 1e-12:
        return 0.0
    e = [math.exp(5.0 * (v - lo) / (hi - lo)) for v in s]
    tot = math.fsum(e)
    h = -math.fsum((x / tot) * math.log(x / tot) for x in e)
    return max(0.0, 1.0 - h / math.log(len(s)))


_CONFIDENCE: dict[Adaptive, Callable[[list[float]], float]] = {
    Adaptive.NONE: _conf_none, Adaptive.GAP: _conf_gap, Adaptive.ZGAP: _conf_zgap, Adaptive.ENTROPY: _conf_entropy,
    Adaptive.LEVEL: _conf_level, Adaptive.LGAP: _conf_lgap,
}


def confidence(best_first: Sequence[float], method: str, top: int = 10) -> float:
    """How confident a leg is for this query, in [0, 1], from its own scores best first (see Adaptive; level and
    lgap expect the fixed [0, 1] scores)."""
    return _CONFIDENCE[member(Adaptive, method, "adaptive weighting")]([float(x) for x in best_first[:top]])


def leg_weights(
    alpha: float, best_first: Mapping[str, Sequence[float]], adaptive: str = "none", top: int = 10
) -> dict[str, float]:
    """The dense and lexical weights (summing to 1): the prior `alpha` on dense, each multiplied by the leg's
    confidence for this query when `adaptive` is not "none". Both unsure: the prior stays."""
    wd, wl = alpha, 1.0 - alpha
    if adaptive != Adaptive.NONE:
        cd = confidence(best_first.get("dense", ()), adaptive, top)
        cl = confidence(best_first.get("lexical", ()), adaptive, top)
        if cd * wd + cl * wl > 1e-12:
            wd, wl = wd * cd, wl * cl
    total = wd + wl
    return {"dense": wd / total, "lexical": wl / total} if total > 0 else {"dense": 0.5, "lexical": 0.5}


def ranking(scores: Mapping[int, float]) -> list[int]:
    """Ids by descending score; ties broken by id for a stable order."""
    return sorted(scores, key=lambda i: (-scores[i], i))


@dataclass
class Fused:
    """The fusion stage's output. `relevance`: the convex mix of the fixed [0, 1] scores, comparable across queries
    (what relevance floors use); `scores`: what the order is by; `order`: ids best first; `weights`: the leg
    weights the convex order used (after query-adaptive weighting), empty for RRF and single legs."""

    relevance: dict[int, float]
    scores: dict[int, float]
    order: list[int]
    weights: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FusionConfig:
    """How the legs are fused: `method` rrf|convex; for convex, `norm` (NORMS), `alpha` the prior weight of dense,
    `adaptive` (ADAPTIVE) and `conf_top` the scores each leg's confidence looks at; for RRF, `rrf_k` and
    `rrf_weights`. `relevance_alpha` mixes the fixed [0, 1] scores into the relevance that floors compare."""

    method: str = "convex"
    norm: str = "fixed"
    alpha: float = 0.5
    adaptive: str = "none"
    conf_top: int = 10
    rrf_k: float = 60.0
    rrf_weights: tuple[tuple[str, float], ...] = ()
    relevance_alpha: float = 0.5

    def check(self) -> None:
        member(Fusion, self.method, "fusion")
        member(Norm, self.norm, "fusion normalisation")
        member(Adaptive, self.adaptive, "adaptive weighting")
        if not 0.0 <= self.alpha <= 1.0 or not 0.0 <= self.relevance_alpha <= 1.0:
            raise ValueError("fusion alpha must be between 0 and 1")
        if self.conf_top < 2:
            raise ValueError("conf_top must be at least 2")


@dataclass(frozen=True)
class _Legs:
    """What one fusion call orders: each leg's fixed [0, 1] scores, own ranking and raw scores, the relevance
    already mixed from them, and the fusion's parameters."""

    normalized: Mapping[str, Mapping[int, float]]
    ranked: Mapping[str, Sequence[int]]
    raw: Mapping[str, Mapping[int, float]] | None
    relevance: dict[int, float]
    alpha: float
    rrf_k: float
    weights: Mapping[str, float] | None
    norm: str
    adaptive: str
    conf_top: int


def _order_rrf(legs: _Legs) -> tuple[dict[int, float], dict[str, float]]:
    """Reciprocal rank fusion of the legs' own rankings."""
    ranked = {name: legs.ranked.get(name, ()) for name in legs.normalized}
    return rrf(ranked, k=legs.rrf_k, weights=legs.weights), {}


def _order_convex(legs: _Legs) -> tuple[dict[int, float], dict[str, float]]:
    """The convex mix: of the fixed scores at the prior weights, or of `norm`-normalised scores at weights that
    `adaptive` adjusts to each leg's confidence."""
    normalized, raw, alpha = legs.normalized, legs.raw, legs.alpha
    if len(normalized) != 2:
        return convex(normalized, alpha), {}
    if legs.norm == Norm.FIXED and legs.adaptive == Adaptive.NONE:
        return convex(normalized, alpha), {"dense": alpha, "lexical": 1.0 - alpha}
    if legs.norm != Norm.FIXED and raw is None:
        raise ValueError(f"the '{legs.norm}' normalisation needs the legs' raw scores")
    normed = {
        name: normalize(raw[name] if raw is not None else {}, legs.norm, leg=name, ranked=legs.ranked.get(name, ()),
                        fixed=normalized[name])
        for name in normalized
    }
    src = raw if raw is not None and legs.adaptive not in ON_FIXED else normalized
    best_first = {name: [src[name][c] for c in legs.ranked.get(name, ()) if c in src[name]] for name in normalized}
    used = leg_weights(alpha, best_first, legs.adaptive, legs.conf_top)
    ids = set().union(*(set(v) for v in normed.values()))
    floor = {name: min(v.values()) if v else 0.0 for name, v in normed.items()}  # z-scores can be negative
    return {i: math.fsum(used[name] * normed[name].get(i, floor[name]) for name in normed) for i in ids}, used


def _order_single(legs: _Legs) -> tuple[dict[int, float], dict[str, float]]:
    """One leg: its fixed score orders it (the relevance itself)."""
    return legs.relevance, {}


_ORDER: dict[Fusion | None, Callable[[_Legs], tuple[dict[int, float], dict[str, float]]]] = {
    Fusion.RRF: _order_rrf, Fusion.CONVEX: _order_convex, None: _order_single,
}


def fuse(
    normalized: Mapping[str, Mapping[int, float]], ranked: Mapping[str, Sequence[int]], method: str | None = "convex",
    alpha: float = 0.5, rrf_k: float = 60.0, weights: Mapping[str, float] | None = None, *,
    raw: Mapping[str, Mapping[int, float]] | None = None, norm: str = "fixed", adaptive: str = "none",
    conf_top: int = 10, relevance_alpha: float | None = None,
) -> Fused:
    """Fuse the legs. `normalized` maps a leg name to the fixed [0, 1] scores of every candidate, `ranked` to the
    leg's own ranking (best first), `raw` to its raw scores of every candidate (cosine, BM25; needed by every `norm`
    but "fixed"). `method` "rrf" orders by reciprocal rank fusion of `ranked`; "convex" orders by the weighted sum of
    the `norm`-normalised scores, weights `alpha` / 1 - alpha adjusted by `adaptive`; None (a single leg) by its
    fixed score. The relevance is always the convex mix of the fixed scores (weight `relevance_alpha`, default
    `alpha`, on dense)."""
    if method is not None and method not in METHODS:
        raise ValueError(f"unknown fusion {method!r}: use rrf or convex")
    relevance = convex(normalized, alpha if relevance_alpha is None else relevance_alpha)
    legs = _Legs(normalized, ranked, raw, relevance, alpha, rrf_k, weights, norm, adaptive, conf_top)
    scores, used = _ORDER[None if method is None else Fusion(method)](legs)
    return Fused(relevance=relevance, scores=scores, order=ranking(scores), weights=used)
