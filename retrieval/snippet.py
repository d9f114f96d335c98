"""Snippets for display: a window of a hit's text around the query's terms, with the term spans to highlight."""

from __future__ import annotations

import re
import unicodedata

from localrag.index.lexical import tokenize


def query_terms(query: str) -> list[str]:
    """The query's searchable words (what BM25 matches), longest first so that spans prefer whole words."""
    return sorted(set(tokenize(query)), key=lambda t: (-len(t), t))


def snippet(text: str, query: str, width: int = 280) -> tuple[str, list[tuple[int, int]]]:
    """A window of `text` of about `width` characters starting near the first query term, and the (start, end)
    spans of query terms inside that window. Matching is case-insensitive and on whole words."""
    text = " ".join(text.split())
    terms = query_terms(query)
    spans: list[tuple[int, int]] = []
    if terms:
        pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(t) for t in terms) + r")(?!\w)", re.IGNORECASE)
        folded = unicodedata.normalize("NFKC", text)
        if len(folded) == len(text):  # spans index the original only when normalization kept the length
            spans = [m.span() for m in pattern.finditer(folded)]
    start = 0
    if spans and len(text) > width:
        start = max(0, spans[0][0] - width // 4)
        while start > 0 and not text[start - 1].isspace():  # begin at a word
            start -= 1
    end = min(len(text), start + width)
    if end < len(text):
        cut = text.rfind(" ", start, end)
        end = cut if cut > start + width // 2 else end
    window = text[start:end]
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    inside = [(a + shift, b + shift) for a, b in spans if a >= start and b <= end]
    return prefix + window + suffix, inside
