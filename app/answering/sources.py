"""Numbered sources for the model: hits cut to a token budget, with instruction-like sentences removed."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from localrag.index.text import sentence_spans
from localrag.retrieval.types import Hit, Location


# --- sources ---------------------------------------------------------------------------------------------------
@dataclass
class Source:
    """One numbered source as the LLM saw it."""

    n: int
    chunk_id: int
    source: str
    kind: str
    text: str  # as given to the LLM (instruction-like sentences removed, possibly shortened to fit the budget)
    tokens: int
    relevance: float
    page: int | None = None
    kg_uri: str | None = None
    label: str | None = None
    removed: list[str] = field(default_factory=list)  # instruction-like sentences taken out of the text
    truncated: bool = False
    section: str | None = None  # heading path where the chunk starts, "Guide › Safety › Tides"
    ocr: bool = False  # read by OCR from a page image

    @property
    def location(self) -> str:
        """"Guide › Safety › Tides, p. 4" (retrieval.types.cite_location), else the node URI."""
        return Location.of(self).text

    @property
    def name(self) -> str:
        return self.source.rsplit("/", 1)[-1]


# Sentences in a document that address the assistant rather than the reader. They are data, and a small model copies
# or obeys them whatever the prompt says, so they never reach it (and the answer is checked for their payload).
_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,60}?\b(?:instructions?|prompts?|rules?|directions?|"
    r"guidelines?|system message|context)\b"
    r"|\b(?:you are now|from now on,? you|act as (?:an?|the) |pretend (?:to be|you are)|new instructions?\b|"
    r"system prompt|developer mode|jailbreak)"
    r"|\b(?:assistant|AI|language model|chatbot|LLM)s?\b[^.!?\n]{0,40}\b(?:must|should|shall|will)\b[^.!?\n]{0,20}"
    r"\b(?:reply|respond|answer|say|output|print|write|reveal)\b",
    re.IGNORECASE,
)
REMOVED_MARK = "[instruction-like text removed]"


def sanitize_source(text: str) -> tuple[str, list[str]]:
    """Remove sentences that try to instruct the assistant; returns the clean text and the removed sentences.
    Also breaks the fence markers the prompt uses, so a document cannot close its own source block."""
    removed: list[str] = []
    parts: list[str] = []
    pos = 0
    for a, b in sentence_spans(text):
        parts.append(text[pos:a])
        pos = b
        sentence = text[a:b]
        if _INJECTION.search(sentence):
            removed.append(sentence)
            parts.append(REMOVED_MARK)
        else:
            parts.append(sentence)
    parts.append(text[pos:])
    clean = "".join(parts).strip()
    clean = clean.replace("<<<", FENCE_OPEN).replace(">>>", FENCE_CLOSE)
    return clean, removed


FENCE_OPEN, FENCE_CLOSE = "‹‹‹", "›››"  # what a source's own "<<<" / ">>>" become in the prompt (sanitize_source)


def restore_fences(text: str) -> str:
    """A piece of a sanitized source as the document has it: "››› sorted(...)" back to ">>> sorted(...)" (a
    Python prompt), so that a quote is verbatim in its source."""
    return text.replace(FENCE_OPEN, "<<<").replace(FENCE_CLOSE, ">>>")


def _fit(text: str, budget: int, count_tokens: Callable[[str], int]) -> str:
    """The longest prefix of `text`, cut at a sentence (else a word) boundary, that fits `budget` tokens."""
    lo, hi = 0, len(text)
    while lo < hi:  # binary search on characters: count_tokens is cheap but not free
        mid = (lo + hi + 1) // 2
        if count_tokens(text[:mid]) <= budget:
            lo = mid
        else:
            hi = mid - 1
    cut = text[:lo]
    for boundary in (". ", "\n", " "):
        i = cut.rfind(boundary)
        if i > len(cut) // 2:
            return cut[: i + 1].rstrip() + " …"
    return cut.rstrip() + " …"


def _source_header(n: int, s: Source | Hit) -> str:
    where = s.page if s.page is not None else None
    name = s.source.rsplit("/", 1)[-1]
    bits = [name]
    if where is not None:
        bits.append(f"page {where}")
    if s.kg_uri:
        bits.append(f"node {s.label or s.kg_uri}")
    return f"<<<SOURCE {n} | {' | '.join(bits)}>>>"


def _hit_text(h: Hit) -> str:
    if not h.neighbours:
        return h.text
    facts = [f"{nb.label or nb.uri} ({nb.relation}): {nb.text}" for nb in h.neighbours]
    return h.text + "\nLinked: " + "\n".join(facts)


def assemble_context(
    hits: Sequence[Hit], count_tokens: Callable[[str], int], budget: int, min_piece: int = 48,
) -> tuple[list[Source], list[str]]:
    """Number the hits [1]..[k] in rank order until `budget` tokens (LLM tokenizer, headers included) are used.
    A hit that does not fit whole is shortened when at least `min_piece` tokens remain; later ones are dropped.
    Returns the sources and notes on what was left out."""
    sources: list[Source] = []
    notes: list[str] = []
    used = 0
    dropped = 0
    for h in hits:
        text, removed = sanitize_source(_hit_text(h))
        if removed:
            notes.append(f"{len(removed)} instruction-like sentence(s) in {h.source.rsplit('/', 1)[-1]} were not "
                         "shown to the model")
        n = len(sources) + 1
        header = _source_header(n, h)
        overhead = count_tokens(header) + count_tokens(f"<<<END SOURCE {n}>>>") + 2
        tokens = count_tokens(text)
        truncated = False
        if used + overhead + tokens > budget:
            room = budget - used - overhead
            if room < min_piece:
                dropped += 1
                continue
            text = _fit(text, room, count_tokens)
            tokens = count_tokens(text)
            truncated = True
        used += overhead + tokens
        sources.append(Source(
            n=n, chunk_id=h.chunk_id, source=h.source, kind=h.kind, text=text, tokens=tokens, relevance=h.relevance,
            page=h.page, kg_uri=h.kg_uri, label=h.label, removed=removed, truncated=truncated, section=h.section,
            ocr=h.ocr,
        ))
    if dropped:
        notes.append(f"{dropped} lower-ranked hit(s) did not fit the context budget of {budget} tokens")
    return sources, notes
