"""Guardrails: validators of a draft answer (hard: retry, then abstain; soft: retry, then warn)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from localrag.app.answering.citations import _content_words
from localrag.app.answering.sources import Source
from localrag.eval.answer_format import MARKER, MARKER_PATTERN, is_idk, marker_numbers
from localrag.index.text import numbers, sentence_spans, split_sentences, words

Severity = Literal["hard", "soft"]

# --- guardrails ------------------------------------------------------------------------------------------------
@dataclass
class Draft:
    """One attempt's output, as the validators see it."""

    question: str
    raw: str  # what the model wrote
    text: str  # with invalid citation markers removed
    sources: list[Source]
    cited: list[int]  # valid source numbers, in order of appearance (repeats removed)
    invalid_markers: list[str]
    finish_reason: str | None
    completion_tokens: int | None
    max_tokens: int
    trimmed: bool = False  # cut at the token limit, then back to the last complete sentence

    @property
    def abstained(self) -> bool:
        return is_idk(self.text)


class Validator(Protocol):
    """A check of a draft answer. `check` returns None when the draft passes, else a message for the model (fed
    back into the retry prompt) and for the user. Hard: the answer must pass (retry, then abstain). Soft: retry,
    then answer with a warning."""

    name: str
    severity: Severity

    def check(self, draft: Draft) -> str | None: ...


@dataclass
class FunctionValidator:
    """A validator from a plain function: `FunctionValidator("no-dates", "soft", lambda d: ... or None)`."""

    name: str
    severity: Severity
    fn: Callable[[Draft], str | None]

    def check(self, draft: Draft) -> str | None:
        return self.fn(draft)


def _not_empty(d: Draft) -> str | None:
    body = MARKER.sub("", d.text).strip()
    return None if len(words(body)) >= 1 else "the answer is empty"


# a sentence's end: . ! ? with closing quotes or brackets, then any citation markers, before white space or the end
_COMPLETE = re.compile(r"[.!?][\"')\]]*(?:\s*" + MARKER_PATTERN + r")*(?=\s|$)")


def complete_sentences(text: str, max_sentences: int | None = None) -> str:
    """The text up to its last complete sentence (one ending in . ! ? or a citation after one), at most
    `max_sentences` of them, or ''."""
    last = None
    for n, m in enumerate(_COMPLETE.finditer(text), start=1):
        last = m.end()
        if max_sentences is not None and n >= max_sentences:
            break
    return text[:last].strip() if last else ""


def _not_runaway(d: Draft) -> str | None:
    if d.finish_reason == "length" and not d.trimmed:
        return (f"the answer was cut off at the token limit ({d.max_tokens} tokens): write a shorter answer, "
                "one to four sentences")
    ws = words(d.text)
    if len(ws) >= 40:
        grams = [" ".join(ws[i:i + 4]) for i in range(len(ws) - 3)]
        repeats = len(grams) - len(set(grams))
        if repeats / len(grams) > 0.3:
            return "the answer repeats itself: say each thing once"
    return None


def _citations_present(d: Draft) -> str | None:
    if d.abstained:
        return None
    if not d.cited:
        return ("the answer has no citations: end each sentence with the number of the source it comes from, "
                "like [1]")
    return None


def _citations_valid(d: Draft) -> str | None:
    if d.invalid_markers:
        k = len(d.sources)
        return (f"citation(s) {', '.join(d.invalid_markers)} do not name a source: there are only sources 1 to {k}"
                if k else "there are no sources to cite")
    return None


_PAYLOAD = re.compile(r"[\"“'‘]([^\"”'’]{2,60})[\"”'’]|\b([A-Z][A-Z0-9_]{3,})\b")


def _injection_echo(d: Draft) -> str | None:
    """The answer repeats what a removed instruction asked for (a quoted string or a shouted word) although the
    question and the shown sources never say it."""
    shown = " ".join(s.text for s in d.sources) + " " + d.question
    for s in d.sources:
        for sentence in s.removed:
            for m in _PAYLOAD.finditer(sentence):
                payload = (m.group(1) or m.group(2) or "").strip()
                if payload and payload.lower() in d.text.lower() and payload.lower() not in shown.lower():
                    return f"the answer repeats {payload!r}, which only an instruction inside a document asked for"
    return None


def unsupported(sentence: str, sources: Sequence[Source], question: str) -> str | None:
    """Why a sentence that cites sources is not supported by them (None when it is, or cites nothing): it shares no
    content word with its sources ('The answer is [1].'), or states a number they do not (a cheap lexical check;
    the scoring step measures support properly)."""
    by_n = {s.n: s for s in sources}
    nums = [n for m in MARKER.finditer(sentence) for n in marker_numbers(m.group(1)) if n in by_n]
    if not nums:
        return None
    said = _content_words(MARKER.sub("", sentence)) - {"answer", "question", "source", "sources"}
    found = set().union(*(_content_words(by_n[n].text) for n in nums))
    cited = ", ".join(f"[{n}]" for n in nums)
    plain = MARKER.sub("", sentence).strip()
    if not said & found:
        return (f"the sentence {plain[:80]!r} says nothing that its source {cited} states: answer with facts "
                "from the sources")
    stated = set().union(*(numbers(by_n[n].text, spelled=True) for n in nums))
    missing = numbers(plain) - stated - numbers(question, spelled=True)
    if missing:
        return (f"the number(s) {', '.join(sorted(missing))} in {plain[:80]!r} do not appear in source {cited}: "
                "copy numbers exactly as the sources give them")
    return None


def _citations_supported(d: Draft) -> str | None:
    for sentence in split_sentences(d.text):
        why = unsupported(sentence, d.sources, d.question)
        if why:
            return why
    return None


def cut_to_supported(text: str, sources: Sequence[Source], question: str) -> tuple[str, list[str]]:
    """The answer without its cited sentences that the sources do not support, and those sentences. An answer
    with no supported cited sentence is returned whole (the guardrails then reject it): cutting back comes before
    'I don't know', never instead of checking."""
    spans = [(a, b) for a, b in sentence_spans(text)]
    bad = [(a, b) for a, b in spans if unsupported(text[a:b], sources, question)]
    cited_ok = [(a, b) for a, b in spans if (a, b) not in bad and MARKER.search(text[a:b])]
    if not bad or not cited_ok:
        return text, []
    out, pos = [], 0
    for a, b in bad:
        out.append(text[pos:a])
        pos = b
    out.append(text[pos:])
    return re.sub(r"[ \t]{2,}", " ", "".join(out)).strip(), [text[a:b] for a, b in bad]


_PREAMBLE = re.compile(
    r"^\s*(?:according to|based on)\s+(?:the\s+)?(?:information|context|text|data)?\s*(?:provided|given)?\s*"
    r"(?:in\s+)?(?:the\s+)?(?:numbered\s+)?(?:sources?|documents?)(?:\s+provided)?\s*,\s*", re.IGNORECASE)


def drop_preamble(text: str) -> str:
    """'According to the information provided in the sources, the light ...' → 'The light ...': small models open
    with it; it says nothing and costs the reader a line."""
    m = _PREAMBLE.match(text)
    if not m or len(text) - m.end() < 8:
        return text
    rest = text[m.end():]
    return rest[:1].upper() + rest[1:]


def default_validators() -> list[Validator]:
    """Built in: the answer is not empty, not a runaway, cites at least one source, cites only real sources, each
    citing sentence shares words with its source, and it does not carry out an instruction found in a document."""
    return [
        FunctionValidator("not-empty", "hard", _not_empty),
        FunctionValidator("not-runaway", "hard", _not_runaway),
        FunctionValidator("citations-present", "hard", _citations_present),
        FunctionValidator("citations-valid", "soft", _citations_valid),
        FunctionValidator("citations-supported", "hard", _citations_supported),
        FunctionValidator("no-injected-instructions", "hard", _injection_echo),
    ]
