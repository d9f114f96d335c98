"""Harmonic robustness: non-semantic perturbations of a question (spacing, punctuation, zero-width joiners, case,
padding) and how far the answers to them spread around their centroid (mean cosine deviation; 0 = the same
answer every time)."""

from __future__ import annotations

import random

import numpy as np

__all__ = ["PERTURBATIONS", "ZWJ", "perturb", "spread"]

PERTURBATIONS = ("spaces", "punctuation", "zero-width", "case", "padding")
ZWJ = "\u200d"


def perturb(question: str, i: int, seed: int | str = 0) -> str:
    """The i-th non-semantic variant of a question (deterministic per seed): the meaning stays, the characters
    change, so a robust system gives (nearly) the same answer."""
    rng = random.Random(f"{seed}:{i}")
    kind = PERTURBATIONS[i % len(PERTURBATIONS)]
    words = question.split(" ")
    if kind == "spaces" and len(words) > 1:
        gaps = rng.sample(range(len(words) - 1), k=max(1, (len(words) - 1) // 3))
        out = "".join(w + (" " * rng.choice((2, 3)) if j in gaps else " " if j < len(words) - 1 else "")
                      for j, w in enumerate(words))
    elif kind == "punctuation":
        out = question.rstrip(" ?.!") + rng.choice(("??", "?!", " ?", "...?", "?.", "???"))
    elif kind == "zero-width":
        long = [j for j, w in enumerate(words) if len(w) >= 4] or list(range(len(words)))
        for j in rng.sample(long, k=min(len(long), 2)):
            w = words[j]
            at = rng.randrange(1, len(w)) if len(w) > 1 else 1
            words[j] = w[:at] + ZWJ + w[at:]
        out = " ".join(words)
    elif kind == "case":
        out = rng.choice((str.lower, str.upper, lambda s: s[:1].swapcase() + s[1:]))(question)
    else:
        out = rng.choice(("  ", "\t", "\n")) + question + rng.choice(("  ", " \n", "\t"))
    return out if out != question else question + " "


def spread(vectors: np.ndarray) -> float:
    """Mean cosine deviation of unit vectors from their (normalized) centroid: 0 when all are identical."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    c = v.mean(axis=0)
    c = c / max(float(np.linalg.norm(c)), 1e-12)
    return float(np.mean(1.0 - np.clip(v @ c, -1.0, 1.0)))
