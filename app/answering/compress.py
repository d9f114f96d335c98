"""Compressed context for small models on a CPU: the model reads the sentences of each numbered source that the
extractive scorer finds supporting (with a neighbour on each side), not the whole chunks.

Prefill is what a CPU pays for (about 125 prompt tokens/s for a 0.5B model on 2 cores), so ~2,000 tokens of
chunks cost seconds before the first word. The sources keep their numbers (citation [n] still means source n),
every source keeps at least its best sentence, and each piece is a verbatim span of the source's text, joined
with " … " where sentences were left out. What it costs in recall of the evidence is measured by
`python -m bench.answer_grid --compression` (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import replace

import numpy as np

from localrag.app.answering.extractive import (
    EncoderLike,
    ExtractiveParams,
    _Cand,
    _dense_scores,
    _score_candidates,
    candidate_sentences,
)
from localrag.app.answering.sources import Source

__all__ = ["compress_sources"]

GAP = " … "


def compress_sources(
    question: str, sources: Sequence[Source], embedder: EncoderLike, count_tokens: Callable[[str], int],
    budget: int = 450, neighbours: int = 1, params: ExtractiveParams | None = None,
    cache: MutableMapping[str, np.ndarray] | None = None,
) -> list[Source]:
    """The sources as the model reads them: the best-scoring sentences (each with `neighbours` sentences either
    side) until `budget` tokens, at least the best sentence of each source, in reading order per source. A source
    whose text already fits is kept whole when everything fits."""
    if not sources or sum(count_tokens(s.text) for s in sources) <= budget:
        return list(sources)
    p = (params or ExtractiveParams()).with_(min_words=1)
    cands = candidate_sentences(sources, p)
    if not cands:
        return list(sources)
    scored = _score_candidates(question, cands, sources, _dense_scores(question, cands, embedder, p, cache, {}), p)
    by_source: dict[int, list[int]] = {}
    for i, c in enumerate(cands):
        by_source.setdefault(c.n, []).append(i)
    keep: dict[int, set[int]] = {s.n: set() for s in sources}
    best_of: dict[int, int] = {}
    for _, i, _ in scored:
        best_of.setdefault(cands[i].n, i)
    used = 0
    for i in best_of.values():  # every source shows its best sentence
        keep[cands[i].n].add(i)
        used += count_tokens(cands[i].text)
    for _, i, _ in scored:
        around = _around(i, cands, by_source, neighbours)
        new = [j for j in around if j not in keep[cands[i].n]]
        cost = sum(count_tokens(cands[j].text) for j in new)
        if used + cost > budget:
            continue
        keep[cands[i].n].update(new)
        used += cost
    return [replace(s, text=_pieces_text(s, cands, sorted(keep[s.n], key=lambda j: cands[j].start)))
            if keep[s.n] else s for s in sources]


def _around(i: int, cands: Sequence[_Cand], by_source: dict[int, list[int]], neighbours: int) -> list[int]:
    """Candidate i and up to `neighbours` candidates before and after it in the same source."""
    order = by_source[cands[i].n]
    pos = order.index(i)
    return order[max(0, pos - neighbours): pos + neighbours + 1]


def _pieces_text(s: Source, cands: Sequence[_Cand], kept: list[int]) -> str:
    """The kept sentences of a source, verbatim from its text: consecutive ones as the text has them, a gap as
    ' … '."""
    out: list[str] = []
    prev_end: int | None = None
    for j in kept:
        c = cands[j]
        if prev_end is not None and s.text[prev_end:c.start].strip() == "":
            out.append(s.text[prev_end:c.end])
        else:
            if out:
                out.append(GAP)
            out.append(s.text[c.start:c.end])
        prev_end = c.end
    text = "".join(out).strip()
    if kept and cands[kept[-1]].end < len(s.text.rstrip()):
        text += GAP.rstrip()
    return text
