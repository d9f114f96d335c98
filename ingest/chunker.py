"""Sentence-aware chunking with a token budget measured by the embedding model's own tokenizer.

Sentences come from index.text.split_sentences in paragraph mode: a blank line or a list item starts a new one,
single line breaks stay inside.

A chunk never exceeds the model's max sequence length (the embedder would silently truncate it). Sentences are
packed greedily; a sentence longer than the budget (a 5 MB line, a flood of symbols) is cut at token
boundaries using the tokenizer's offsets, so every input yields normal-size chunks in linear time.
"""

from __future__ import annotations

import copy
import hashlib
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from localrag.index.text import sentence_spans
from localrag.ingest.document import Unit

_WINDOW = 20_000
CHARS_PER_TOKEN_CAP = 12  # a chunk holds at most budget * 12 characters, whatever the tokenizer says


@dataclass(slots=True)
class ChunkDraft:
    text: str
    n_tokens: int
    page: int | None = None
    kg_uri: str | None = None
    label: str | None = None
    section: str | None = None  # heading path where the chunk starts, "Guide › Safety › Tides"
    ocr: bool = False  # the text was read by OCR from a page image

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


class Tokenizer:
    """The subset of a Hugging Face fast tokenizer the chunker needs, computed in batches."""

    def __init__(self, hf_tokenizer) -> None:  # noqa: ANN001 - transformers tokenizer, no stable type
        backend = getattr(hf_tokenizer, "backend_tokenizer", None)
        if backend is not None:
            # a private copy: the shared one may carry truncation/padding settings that would hide long input
            backend = copy.deepcopy(backend)
            backend.no_truncation()
            backend.no_padding()
        self._tok = backend
        self._hf = hf_tokenizer

    def counts(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        if self._tok is not None:
            return [len(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]
        enc = self._hf(list(texts), add_special_tokens=False, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        if self._tok is not None:
            return list(self._tok.encode(text, add_special_tokens=False).offsets)
        enc = self._hf(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
        return [tuple(o) for o in enc["offset_mapping"]]


def _cut_long(text: str, budget: int, tok: Tokenizer, max_chars: int) -> list[tuple[str, int, int]]:
    """Cut a piece into pieces of at most `budget` tokens and `max_chars` characters, at token boundaries; each
    piece with its token count and where it starts in `text`.

    Works window by window, so a 5 MB line costs linear time. A single "token" spanning more than `max_chars`
    characters (an unknown 5 MB word is one [UNK]) is sliced by characters.
    """
    pieces: list[tuple[str, int, int]] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + _WINDOW)
        if end < len(text):  # do not cut a window inside a word
            space = text.rfind(" ", start + _WINDOW // 2, end)
            end = space + 1 if space > 0 else end
        window = text[start:end]
        spans: list[tuple[int, int]] = []
        for a, b in tok.offsets(window):
            if b <= a:
                continue
            spans.extend((x, min(b, x + max_chars)) for x in range(a, b, max_chars))
        i = 0
        while i < len(spans):
            j = i + 1
            while j < len(spans) and j - i < budget and spans[j][1] - spans[i][0] <= max_chars:
                j += 1
            a = spans[i][0]
            b = spans[j][0] if j < len(spans) else len(window)
            if b - a > max_chars:
                b = spans[j - 1][1]
            raw = window[a:b]
            piece = raw.strip()
            if piece:
                pieces.append((piece, j - i, start + a + len(raw) - len(raw.lstrip())))
            i = j
        start = end
    return pieces


def chunk_units(
    units: Sequence[Unit],
    tokenizer: Tokenizer,
    chunk_tokens: int,
    overlap: int,
    max_model_tokens: int,
    progress: Callable[[int], None] | None = None,
) -> list[ChunkDraft]:
    """Chunk every unit separately (a chunk never spans two PDF pages or two RDF nodes). Each chunk's section is
    the unit's section path in effect at the chunk's first character (`Unit.section_at`)."""
    budget = max(8, min(chunk_tokens, max_model_tokens - 2))  # [CLS] and [SEP] take two positions
    overlap = min(overlap, budget // 2)
    max_chars = budget * CHARS_PER_TOKEN_CAP
    out: list[ChunkDraft] = []
    where: list[tuple[Unit, list[tuple[int, int]]]] = []  # per chunk: its unit and its pieces' (chunk, unit) offsets
    for unit in units:
        # single line breaks stay inside a sentence
        spans = sentence_spans(unit.text, paragraphs=True)
        sentences = [unit.text[a:b] for a, b in spans]
        counts = tokenizer.counts(sentences)
        pieces: list[tuple[str, int, int]] = []
        for s, n, (a, _) in zip(sentences, counts, spans, strict=True):
            if n == 0:
                continue
            if n > budget or len(s) > max_chars:  # oversized
                pieces.extend((p, m, a + at) for p, m, at in _cut_long(s, budget, tokenizer, max_chars))
            else:
                pieces.append((s, n, a))
        for text, n, starts in _pack(pieces, budget, overlap, max_chars):
            out.append(ChunkDraft(text=text, n_tokens=n, page=unit.page, kg_uri=unit.kg_uri, label=unit.label,
                                  section=unit.section_at(starts[0][1]), ocr=unit.ocr))
            where.append((unit, starts))
        if progress:
            progress(len(out))
    # The sum of sentence counts can differ slightly from the count of the joined text; verify and re-cut.
    exact = tokenizer.counts([c.text for c in out])
    fixed: list[ChunkDraft] = []
    for c, n, (unit, starts) in zip(out, exact, where, strict=True):
        if n <= budget:
            c.n_tokens = n
            fixed.append(c)
        else:
            for text, m, at in _cut_long(c.text, budget, tokenizer, max_chars):
                fixed.append(ChunkDraft(text=text, n_tokens=m, page=c.page, kg_uri=c.kg_uri, label=c.label,
                                        section=unit.section_at(_unit_offset(starts, at)), ocr=c.ocr))
    return fixed


def _unit_offset(starts: list[tuple[int, int]], at: int) -> int:
    """The unit offset of character `at` of a chunk whose pieces start at (chunk offset, unit offset) `starts`."""
    i = max(0, bisect_right(starts, at, key=lambda s: s[0]) - 1)
    return starts[i][1] + at - starts[i][0]


def _pack(
    pieces: list[tuple[str, int, int]], budget: int, overlap: int, max_chars: int,
) -> list[tuple[str, int, list[tuple[int, int]]]]:
    """Greedy packing of sentences up to `budget` tokens, repeating trailing sentences up to `overlap` tokens.
    `pieces` are (text, tokens, offset in the unit); each chunk comes with its pieces' (offset in the chunk text,
    offset in the unit)."""
    chunks: list[tuple[str, int, list[tuple[int, int]]]] = []
    cur: list[tuple[str, int, int]] = []
    total = 0
    chars = 0

    def close() -> None:
        starts: list[tuple[int, int]] = []
        at = 0
        for p, _, offset in cur:
            starts.append((at, offset))
            at += len(p) + 1
        chunks.append((" ".join(p for p, _, _ in cur), total, starts))

    for piece, n, offset in pieces:
        if cur and (total + n > budget or chars + len(piece) > max_chars):
            close()
            keep: list[tuple[str, int, int]] = []
            kept = 0
            for p, m, o in reversed(cur):
                if kept + m > overlap or kept + m + n > budget or len(p) + len(piece) > max_chars // 2:
                    break
                keep.insert(0, (p, m, o))
                kept += m
            cur, total = keep, kept
            chars = sum(len(p) + 1 for p, _, _ in cur)
        cur.append((piece, n, offset))
        total += n
        chars += len(piece) + 1
    if cur:
        close()
    return chunks
