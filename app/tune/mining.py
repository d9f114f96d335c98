"""Stages 2 and 3 of `localrag tune`: keep a question only when the current search already finds its own chunk in
the top `top` of BM25 or of the dense vectors (consistency filter: a question the chunk does not really answer is
dropped), and pick one hard negative per kept question: the best BM25 or dense hit that is not the source chunk
and not a near-duplicate of it (the same text, or cosine above `dup_cosine`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Example", "mine"]


@dataclass(frozen=True)
class Example:
    """One training example: a question, its source chunk, and a hard negative chunk (None when none was found)."""

    question: str
    chunk_id: int
    negative_id: int | None


def _dense_top(qvecs: np.ndarray, ids: np.ndarray, vecs: np.ndarray, k: int) -> np.ndarray:
    """Top-k chunk ids per question by inner product (exact: tuning runs on one collection's chunks)."""
    out = np.zeros((len(qvecs), min(k, len(ids))), np.int64)
    for start in range(0, len(qvecs), 256):
        sims = qvecs[start : start + 256] @ vecs.T
        top = np.argsort(-sims, axis=1, kind="stable")[:, : out.shape[1]]
        out[start : start + 256] = ids[top]
    return out


def mine(questions: dict[int, str], ids: np.ndarray, vecs: np.ndarray, texts: dict[int, str], lexical: object,
         encode: object, top: int = 20, dup_cosine: float = 0.95) -> tuple[list[Example], list[int]]:
    """(kept examples, dropped chunk ids). `ids`/`vecs`: every chunk of the collection and its current (base
    model) vector; `lexical`: the collection's LexicalIndex; `encode`: texts -> normalized vectors."""
    order = sorted(questions)
    qvecs = np.asarray(encode([questions[c] for c in order]), np.float32)  # type: ignore[operator]
    dense = _dense_top(qvecs, ids, vecs, top)
    pos = {int(c): n for n, c in enumerate(ids)}
    kept, dropped = [], []
    for row, cid in enumerate(order):
        if cid not in pos:  # chunk removed since its question was written
            continue
        _, lex_ids = lexical.top(questions[cid], top)  # type: ignore[attr-defined]
        lex = [int(i) for i in lex_ids]
        dn = [int(i) for i in dense[row]]
        if cid not in dn and cid not in lex:
            dropped.append(cid)
            continue
        source_vec = vecs[pos[cid]]
        negative = None
        for cand in _interleave(dn, lex):
            if cand == cid or cand not in pos:
                continue
            if texts.get(cand, "").strip() == texts.get(cid, "").strip():
                continue
            if float(vecs[pos[cand]] @ source_vec) > dup_cosine:
                continue
            negative = cand
            break
        kept.append(Example(questions[cid], cid, negative))
    return kept, dropped


def _interleave(a: list[int], b: list[int]) -> list[int]:
    """a[0], b[0], a[1], b[1], ... without repeats: the best hits of either search first."""
    out: list[int] = []
    seen: set[int] = set()
    for pair in zip(a, b + [-1] * max(0, len(a) - len(b)), strict=False):
        for x in pair:
            if x >= 0 and x not in seen:
                seen.add(x)
                out.append(x)
    for x in a + b:
        if x not in seen:
            seen.add(x)
            out.append(x)
    return out
