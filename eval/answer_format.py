"""The answer format, in one place: citation markers and the abstention sentence.

An answer cites its numbered sources inline, after the sentence they support: ``[1]``, ``[1, 3]``, ``[2-4]`` or
``[1 and 2]``. An answer that cannot be given from the sources is the fixed sentence `IDK`; a model that writes its
own "I don't know ..." (or "I do not know") abstains as well. The app writes answers in this format (app.answer)
and eval judges them (eval.proxy, eval.judge); both read it with these helpers, which is why it lives here, in the
lower of the two layers.
"""

from __future__ import annotations

import re

from localrag.index.text import normalize, split_sentences

__all__ = [
    "ABSTAIN_PREFIXES", "IDK", "MARKER", "MARKER_PATTERN", "cited_numbers", "cited_sentences", "is_abstention",
    "is_idk", "marker_numbers", "move_citations_before_stop", "plain_sentences", "strip_citations",
]

IDK = "I don't know: the documents I searched do not answer this question."
ABSTAIN_PREFIXES = ("i don't know", "i do not know")

# one marker: [n], [n, m], [n; m], [n-m], [n–m], [n and m]; numbers of 1-4 digits
MARKER_PATTERN = r"\[\s*(\d{1,4}(?:\s*(?:[,;]|[-–]|and)\s*\d{1,4})*)\s*\]"
MARKER = re.compile(MARKER_PATTERN)  # group 1: the marker's body ("1, 3")
_MARKERS_AFTER_STOP = re.compile(r"([.!?])((?:\s*" + MARKER_PATTERN.replace("(", "(?:", 1) + r")+)")
MAX_RANGE = 20  # [n-m] names every number from n to m only when the range spans at most this many


def is_abstention(text: str | None) -> bool:
    """True when a text is the abstention: the fixed `IDK` or a model's own "I don't know ..." / "I do not know
    ..." (NFKC, any apostrophe, case and leading markup or quotes ignored)."""
    t = normalize(text or "").strip().lower().lstrip("*_\"' ")
    return t.startswith(ABSTAIN_PREFIXES)


is_idk = is_abstention  # the name app code uses


def marker_numbers(body: str) -> list[int]:
    """The source numbers a marker's body names, in order: "1, 3" → [1, 3], "2-4" → [2, 3, 4] ("2-40": a range
    wider than MAX_RANGE is read as its two ends, [2, 40])."""
    nums: list[int] = []
    for part in re.split(r"\s*(?:[,;]|and)\s*", body):
        part = part.strip()
        if re.fullmatch(r"\d+\s*[-–]\s*\d+", part):
            a, b = (int(x) for x in re.split(r"\s*[-–]\s*", part))
            nums.extend(range(a, b + 1) if 0 <= b - a <= MAX_RANGE else [a, b])
        elif part.isdigit():
            nums.append(int(part))
    return nums


def cited_numbers(text: str) -> list[int]:
    """Every source number the markers in `text` name, sorted, each once."""
    return sorted({n for m in MARKER.finditer(text or "") for n in marker_numbers(m.group(1))})


def strip_citations(text: str | None) -> str:
    """The text without citation markers, and without the space a marker leaves before punctuation or beside
    another space: "Yes [2,3], it is [1]." → "Yes, it is."."""
    out = MARKER.sub("", text or "")
    out = re.sub(r"[ \t]+([.,;:!?])", r"\1", out)
    return re.sub(r"[ \t]{2,}", " ", out).strip()


def move_citations_before_stop(text: str) -> str:
    """Markers written after a sentence's full stop belong to that sentence: "in 1867. [2] Then" → "in 1867 [2].
    Then"."""
    return _MARKERS_AFTER_STOP.sub(lambda m: m.group(2) + m.group(1), text or "")


def cited_sentences(text: str | None) -> list[tuple[str, list[int]]]:
    """The sentences of an answer (or any text) without markup and citation markers, each with the source numbers
    it cited. Markers after a full stop stay with the sentence before them; Markdown bullets, emphasis and tables
    are read as text; hard-wrapped lines are joined (index.text.split_sentences)."""
    out: list[tuple[str, list[int]]] = []
    for s in split_sentences(move_citations_before_stop(text or ""), markup=True):
        clean = strip_citations(s)
        if re.search(r"[^\W_]", clean):
            out.append((clean, cited_numbers(s)))
    return out


def plain_sentences(text: str | None) -> list[str]:
    """The sentences of a text as the judges compare them: markup and citation markers removed (`cited_sentences`
    without the numbers). Good enough for support matching; not a linguistic parser."""
    return [s for s, _ in cited_sentences(text)]
