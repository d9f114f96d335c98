"""Inline [n] citations: read from a draft, checked against the sources, quoted, or added after the fact."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from localrag.app.answering.sources import REMOVED_MARK, Source, restore_fences
from localrag.eval.answer_format import MARKER, marker_numbers, move_citations_before_stop
from localrag.index.text import content_words, numbers, sentence_spans, split_sentences
from localrag.retrieval.types import Location


# --- citations -------------------------------------------------------------------------------------------------
@dataclass
class Citation:
    n: int
    chunk_id: int
    source: str
    page: int | None
    kg_uri: str | None
    quote: str  # the source sentence that best supports the sentence citing it
    section: str | None = None  # heading path of the cited chunk, "Guide › Safety › Tides"
    ocr: bool = False  # the cited text was read by OCR from a page image

    @classmethod
    def of(cls, s: Source, quote: str) -> Citation:
        """A citation of source `s` with `quote`."""
        return cls(n=s.n, chunk_id=s.chunk_id, source=s.source, page=s.page, kg_uri=s.kg_uri,
                   quote=restore_fences(quote),
                   section=s.section, ocr=s.ocr)

    @property
    def location(self) -> str:
        """"Guide › Safety › Tides, p. 4" (retrieval.types.cite_location), else the node URI."""
        return Location.of(self).text


# the ways small models write a citation other than "[n]": "(source 2)", "[Source 2]", "(Sources 1 and 3)", "[^2]",
# "【2】", "[[2]]", "Source: [2]" — each read as the marker "[2]" / "[1 and 3]"
_NUMS = r"(\d{1,4}(?:\s*(?:,|;|and|&|-|–)\s*\d{1,4})*)"
_HABITS = [
    re.compile(r"\(\s*(?:source|src|doc(?:ument)?)s?\s*(?:#|no\.?|number)?\s*:?\s*" + _NUMS + r"\s*\)", re.I),
    re.compile(r"\[\s*(?:source|src|doc(?:ument)?)s?\s*(?:#|no\.?|number)?\s*:?\s*" + _NUMS + r"\s*\]", re.I),
    re.compile(r"\[\s*\^\s*" + _NUMS + r"\s*\]"),
    re.compile(r"【\s*" + _NUMS + r"\s*】"),
    re.compile(r"\[\[\s*" + _NUMS + r"\s*\]\]"),
    re.compile(r"\b(?:source|sources)\s*:\s*\[\s*" + _NUMS + r"\s*\]", re.I),
]


# a marker written before its sentence ("[1] Med-Gemini outperforms ... tasks.") goes to the sentence's end
_LEADING = re.compile(r"(^|(?<=[.!?])\s+)(\[\d{1,4}(?:\s*[,;]\s*\d{1,4})*\])\s+([^\[\]\n]*?[^\s.!?])([.!?])(?=\s|$)")


def normalize_citations(text: str) -> str:
    """A draft's citations in the one format the rest reads: the habits above become "[n]" ("[2][3]" and "[2, 3]"
    already are: each marker is read); markers written after a sentence's full stop ("... paper. [3]") or before
    the sentence ("[3] The paper ...") move before its full stop ("... paper [3].") so that they stay with the
    sentence they cite."""
    for rx in _HABITS:
        text = rx.sub(lambda m: "[" + re.sub(r"\s*&\s*", " and ", m.group(1)) + "]", text)
    text = _LEADING.sub(lambda m: f"{m.group(1)}{m.group(3)} {m.group(2)}{m.group(4)}", text)
    return move_citations_before_stop(text)


def parse_citations(text: str, k: int) -> tuple[str, list[tuple[int, int]], list[str]]:
    """Find [n], [n, m], [n-m] markers. Markers naming numbers outside 1..k are removed (or trimmed to their valid
    numbers). Returns the cleaned text, (n, character offset) of each valid citation, and the invalid markers."""
    invalid: list[str] = []
    found: list[tuple[int, int]] = []
    out: list[str] = []
    pos = 0
    for m in MARKER.finditer(text):
        nums = marker_numbers(m.group(1))
        good = [n for n in dict.fromkeys(nums) if 1 <= n <= k]
        if len(good) != len(nums):
            invalid.append(m.group(0))
        out.append(text[pos:m.start()])
        if good:
            start = sum(len(p) for p in out)
            found.extend((n, start) for n in good)
            out.append("[" + ", ".join(map(str, good)) + "]")
        else:  # drop the marker and the space before it
            if out and out[-1].endswith(" "):
                out[-1] = out[-1].rstrip(" ")
        pos = m.end()
    out.append(text[pos:])
    return "".join(out), found, invalid


def _content_words(text: str) -> set[str]:
    return set(content_words(text))


def best_quote(claim: str, source_text: str, max_chars: int = 300) -> str:
    """The source sentence that shares the most of the claim's distinctive words: stemmed content words, each
    weighted by how rare it is among the source's sentences (a name the claim adds outweighs the subject that every
    sentence of the source repeats). Lexical: cheap and explainable."""
    sents = [x for x in split_sentences(source_text) if x != REMOVED_MARK]
    if not sents:
        return ""
    claim_words = set(content_words(claim, stemmed=True))
    sent_words = [set(content_words(x, stemmed=True)) for x in sents]
    weight = {w: math.log(1 + len(sents) / (1 + sum(w in sw for sw in sent_words))) for w in claim_words}
    total = sum(weight.values()) or 1.0
    best, best_score = "", -1.0
    for sent, sw in zip(sents, sent_words, strict=True):
        score = sum(weight[w] for w in claim_words & sw) / total + 1e-3 * min(len(sw), 20)
        if score > best_score:
            best, best_score = sent, score
    return best if len(best) <= max_chars else best[: max_chars - 1].rstrip() + "…"


def _sentence_around(text: str, offset: int) -> str:
    """The sentence that `offset` (a citation marker) is in, up to the marker."""
    start = max((a for a, _ in sentence_spans(text) if a <= offset), default=0)
    return text[start:offset].strip()


def make_citations(text: str, found: list[tuple[int, int]], sources: Sequence[Source]) -> list[Citation]:
    by_n = {s.n: s for s in sources}
    cites: dict[int, Citation] = {}
    for n, offset in found:
        if n in cites:
            continue
        s = by_n[n]
        claim = _sentence_around(text, offset) or text
        cites[n] = Citation.of(s, best_quote(claim, s.text))
    return [cites[n] for n in sorted(cites)]


def attribute(text: str, sources: Sequence[Source], min_recall: float = 0.5) -> str | None:
    """Post-hoc citations for an answer whose model wrote none: each sentence gets the source that contains the
    largest share of its content words among the sources that contain all of its numbers. None when a sentence
    with content has no such source containing at least `min_recall` of its words (the sentence is then
    unsupported, and the answer must not pass as cited)."""
    words_by_n = {s.n: _content_words(s.text) for s in sources}
    nums_by_n = {s.n: numbers(s.text, spelled=True) for s in sources}
    out: list[str] = []
    pos = 0
    any_cited = False
    for a, b in sentence_spans(text):
        out.append(text[pos:a])
        pos = b
        sentence = text[a:b]
        said = _content_words(sentence)
        if len(said) < 2:
            out.append(sentence)
            continue
        best_n, best = 0, 0.0
        nums = numbers(sentence)
        for n, sw in words_by_n.items():
            if not nums <= nums_by_n[n]:
                continue  # a source that lacks a number the sentence states does not support it
            r = len(said & sw) / len(said)
            if r > best:
                best_n, best = n, r
        if best < min_recall:
            return None
        end = len(sentence) - len(sentence.rstrip(".!?"))
        out.append(f"{sentence[:len(sentence) - end]} [{best_n}]{sentence[len(sentence) - end:]}")
        any_cited = True
    out.append(text[pos:])
    return "".join(out).strip() if any_cited else None
