"""Semantic answer cache: reuse an answer for the same question, or for a reworded one, without a wrong reuse.

Lookup order: exact match on the normalized question, then the most similar stored questions (cosine over
MiniLM vectors) at or above `threshold`, each checked by `verify_equivalent`. Embedding similarity alone is not
enough: "first keeper" / "last keeper", "before 2016" / "after 2016" or "Did A open before B" / "Did B open
before A" score 0.95-0.997 with MiniLM, so a candidate is accepted only when no negation, number, qualifier,
entity, question-focus or rare-term difference separates it from the question asked.

Entries are scoped by collection, corpus_version, answering model and prompt version (other scopes are invisible
and pruned by `put`), expire after `ttl_s`, and are capped at `max_entries` (least recently used go first).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, or_, select, true, update

from localrag.index.embedder import Embedder
from localrag.index.store import AnswerCacheRow, ChunkRow, Store, utcnow

log = logging.getLogger(__name__)

RARE_DF = 0.05  # a word in fewer than this share of a collection's chunks (or in none) is a rare term ...
RARE_MIN_CHUNKS = 30  # ... or in fewer than this many: in a small corpus every topic word is in few chunks
MAX_DF_CHUNKS = 20_000  # document frequencies are estimated on at most this many chunks
MAX_CANDIDATES = 5  # semantic candidates checked per lookup, best first


# ------------------------------------------------------------------------------------------------------------
# Normalization and tokens


_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
_TRAILING = " \t\r\n?!.,;:\u2026\u00bf\u00a1\"'`)]}"
_LEADING = " \t\r\n\u00bf\u00a1\"'`([{"


def normalize_question(text: str) -> str:
    """Key for exact hits: NFKC, casefold, straight quotes, one space, no trailing ?!. etc."""
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES).casefold()
    t = " ".join(t.split())
    return t.strip(_TRAILING).lstrip(_LEADING).strip()


def _question_key(normalized: str) -> str:
    return hashlib.sha256(normalized.encode("utf-8")).hexdigest()


# a word, number or code: letters/digits joined by ' - . , : / (isn't, KW-3, 1,150, 07:30, 2.4); optional currency
_TOKEN = re.compile(r"[£$€]?[^\W_]+(?:['\-.,:/][^\W_]+)*", re.UNICODE)


@dataclass
class _Tok:
    text: str  # as written, minus currency sign and possessive 's
    low: str  # casefolded
    stem: str
    start: bool  # first word of a sentence


_IRREGULAR = {
    "chose": "choose", "chosen": "choose", "came": "come", "built": "build", "held": "hold", "made": "make",
    "took": "take", "taken": "take", "gave": "give", "given": "give", "led": "lead", "paid": "pay", "sold": "sell",
    "bought": "buy", "told": "tell", "ran": "run", "won": "win", "grew": "grow", "grown": "grow", "knew": "know",
    "known": "know", "kept": "keep", "left": "leave", "lost": "lose", "met": "meet", "sent": "send", "spent": "spend",
    "stood": "stand", "went": "go", "gone": "go", "wrote": "write", "written": "write", "saw": "see", "seen": "see",
    "brought": "bring", "caught": "catch", "found": "find", "drew": "draw", "drawn": "draw", "flew": "fly",
    "hung": "hang", "laid": "lay", "lit": "light", "shone": "shine", "sank": "sink", "sunk": "sink", "swam": "swim",
    "threw": "throw", "wore": "wear", "did": "do", "done": "do", "had": "have", "has": "have", "was": "be",
    "were": "be", "been": "be", "is": "be", "are": "be", "am": "be",
}


def _stem(word: str) -> str:
    """A light suffix stripper (plural, -ing, -ed, common irregular verbs): "founded"/"founding", "chose"/"choose"."""
    w = word.casefold()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith("sses"):
        return w[:-2]
    if w.endswith("es") and w[-3] in "sxz" and len(w) > 4:
        return w[:-2]
    if w.endswith("s") and not w.endswith(("ss", "us", "is", "ous")):
        w = w[:-1]
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":  # stopped -> stopp -> stop
        w = w[:-1]
    return w


def _tokens(text: str) -> list[_Tok]:
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    out: list[_Tok] = []
    for m in _TOKEN.finditer(text):
        raw = m.group(0).lstrip("£$€")
        if raw.lower().endswith("'s"):
            raw = raw[:-2]
        if not raw:
            continue
        before = text[: m.start()].rstrip()
        start = not before or before[-1] in ".?!;:"
        out.append(_Tok(raw, raw.casefold(), _stem(raw), start))
    for i, tok in enumerate(out):  # "take place", "happen", "occur" and "be held" ask the same thing
        if tok.stem == "take" and i + 1 < len(out) and out[i + 1].low == "place":
            tok.stem, out[i + 1].stem = "happen", "happen"
        elif tok.stem in ("happen", "occur", "hold") and (tok.stem != "hold" or tok.low == "held"):
            tok.stem = "happen"
    return out


# ------------------------------------------------------------------------------------------------------------
# Word lists for verify_equivalent

STOPWORDS = frozenset(
    """a an the this that these those there here it its it's they them their he him his she her we us our you your i me
    my mine and or but if so as than then also too very just really please kindly tell give show explain describe
    let know about of in on at to for from by with into onto upon within around across through during via per
    be is am are was were been being do does did done doing have has had having can could would will shall should
    may might must ought get gets got getting use uses used make makes made any some each every all both either
    own such same other another what which what's whats that's there's name named called call currently
    please anything something someone somebody kind sort type ever exactly approximately roughly about nearly
    time times apply applies applied need needs needed list summarise summarize define identify mention find""".split()
)

_NEGATIONS = {
    "not": "not", "cannot": "not", "can't": "not", "won't": "not", "no": "no", "never": "never", "none": "none",
    "nobody": "nobody", "nothing": "nothing", "nowhere": "nowhere", "neither": "neither", "nor": "nor",
    "without": "without", "except": "except", "excluding": "except", "apart": "except", "besides": "except",
}

# Qualifiers that flip an answer. "strict": any difference rejects (first vs nothing is a different question);
# "soft": only the opposite value on the other side rejects (north vs south, but "on the north face" vs nothing is
# the same question).
_STRICT: dict[str, str] = {}
for _cls, _words in {
    "first": "first earliest initial initially original originally start started starts starting begin began begun "
    "beginning begins",
    "last": "last latest final finally end ended ends ending finish finished finishes lastly",
    "before": "before earlier prior previous previously until till pre formerly former ago",
    "after": "after later since following afterwards subsequently post latter next",
    "most": "highest maximum max most largest biggest greatest peak top longest tallest heaviest best oldest record",
    "least": "lowest minimum min least smallest fewest shortest youngest worst bottom newest",
    "more": "more higher larger bigger greater over above exceed exceeds exceeded longer taller older increase "
    "increased increases rise rose risen rises",
    "less": "less fewer lower smaller below under shorter younger decrease decreased decreases fall fell fallen "
    "falls decline declined drop dropped",
    "high": "high",
    "low": "low",
    "springs": "spring springs",
    "neaps": "neap neaps",
    "flood": "flood",
    "ebb": "ebb",
    "against": "against oppose opposed",
    "only": "only sole solely",
    "still": "still",
    "all": "all every entire whole",
    "must": "must required require requires obliged mandatory compulsory",
}.items():
    for _w in _words.split():
        _STRICT[_w] = _cls

_SOFT_PAIRS = [
    ("north", "north northern northerly", "south", "south southern southerly"),
    ("east", "east eastern easterly", "west", "west western westerly"),
    ("inside", "inside inner interior internal", "outside", "outside outer exterior external beyond"),
    ("open", "open opens", "closed", "closed close closes shut"),
    ("allowed", "allowed permitted legal lawful", "prohibited", "prohibited banned forbidden illegal"),
    ("day", "day daytime", "night", "night nighttime"),
    ("present", "is are am does do has have", "past", "was were did had"),  # "who is" vs "who was" the keeper
]
_SOFT: dict[str, str] = {}
_OPPOSITE: dict[str, str] = {}
for _pos, _pos_words, _neg, _neg_words in _SOFT_PAIRS:
    _SOFT.update({w: _pos for w in _pos_words.split()} | {w: _neg for w in _neg_words.split()})
    _OPPOSITE[_pos], _OPPOSITE[_neg] = _neg, _pos

# what the question asks for
_HOW = {
    "many": "count", "much": "amount", "tall": "height", "high": "height", "long": "length", "far": "distance",
    "old": "age", "big": "size", "large": "size", "deep": "depth", "wide": "width", "broad": "width",
    "often": "frequency", "frequently": "frequency", "fast": "speed", "quickly": "speed", "heavy": "weight",
    "hot": "temperature", "warm": "temperature", "cold": "temperature", "early": "time", "late": "time",
    "soon": "time",
}
_FOCUS_WORDS = {
    "when": "time", "where": "place", "whereabouts": "place", "located": "place", "location": "place",
    "situated": "place", "who": "person", "whom": "person", "whose": "person", "why": "reason", "reason": "reason",
    "reasons": "reason", "cause": "reason", "because": "reason", "height": "height", "length": "length",
    "duration": "length", "distance": "distance", "age": "age", "size": "size", "capacity": "size",
    "depth": "depth", "width": "width", "number": "count", "count": "count", "population": "count",
    "amount": "amount", "cost": "amount", "costs": "amount", "price": "amount", "prices": "amount",
    "pay": "amount", "paid": "amount", "pays": "amount", "frequency": "frequency", "speed": "speed",
    "weight": "weight", "weigh": "weight", "weighs": "weight", "temperature": "temperature",
}
_FOCUS_HINTS = {"rent": "amount", "rents": "amount", "fee": "amount", "fees": "amount", "charge": "amount",
                "charges": "amount", "fare": "amount", "fares": "amount", "wage": "amount", "salary": "amount"}
_WH_NOUN = {"year": "year", "years": "year", "date": "date", "day": "date", "time": "clock", "hour": "clock",
            "month": "month", "place": "place", "person": "person"}
_TIME_FAMILY = {"year", "date", "clock", "month"}

_RATE_UNITS = {"second", "minute", "hour", "day", "night", "week", "month", "year", "metre", "meter", "person",
               "head", "boat", "tonne", "kwh", "kg", "litre", "mile", "km", "visit", "landing", "loaf"}
_RATE_ADJ = {"annual": "year", "annually": "year", "yearly": "year", "monthly": "month", "weekly": "week",
             "daily": "day", "nightly": "night", "hourly": "hour"}

_CALENDAR = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february april june july august september "
    "october november december spring summer autumn winter".split()
)

_UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
          "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12, "once": 1, "twice": 2,
          "thrice": 3, "half": 0.5, "quarter": 0.25, "single": 1, "double": 2, "triple": 3, "couple": 2}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
_ORDINALS = {"second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9,
             "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15,
             "twentieth": 20, "thirtieth": 30, "hundredth": 100, "thousandth": 1000}
_ORDINAL_SUFFIX = ("st", "nd", "rd", "th")
_NUMERIC = re.compile(r"^(\d+(?:[.,:]\d+)*)([a-z°%]*)$")
_NUMERIC_RANGE = re.compile(r"^\d+(?:[.,:]\d+)*(?:[-/]\d+(?:[.,:]\d+)*)+$")
# suffixes that make two words one term: design/designer, automate(d)/automation, lead/leader, direct/director
_MORPH = ("e", "r", "er", "ers", "or", "ors", "ion", "ions", "ation", "ations", "ment", "ments", "al", "ly", "ity",
          "ist", "ists", "ship", "ance", "ence")


# words that may open a question capitalized without being a name
_FUNCTION_WORDS = frozenset(STOPWORDS | set(_NEGATIONS) | set(_STRICT) | set(_SOFT) | set(_FOCUS_WORDS) | set(_HOW)
                            | set(_UNITS) | set(_SCALES) | set(_ORDINALS) | set(_RATE_ADJ) | {"how", "in", "since"})


def _fmt_number(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:g}" if value != int(value) else str(int(value))


def _canon_number(num: str, suffix: str = "") -> str:
    """'1,150' -> '1150', '3.20' -> '3.2', '07:30' -> '7:30', '2nd' -> '#2', '1990s' -> '1990s'."""
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", num):
        num = num.replace(",", "")
    if ":" in num:  # a clock time
        value = ":".join(str(int(p)) for p in num.split(":") if p.isdigit())
    else:
        try:
            value = _fmt_number(float(num.replace(",", ".")) if num.count(",") == 1 else float(num))
        except ValueError:
            value = num
    if suffix in _ORDINAL_SUFFIX:
        return "#" + value
    if suffix == "s" and len(num) == 4:
        return value + "s"
    return value


def _numbers(toks: list[_Tok]) -> tuple[Counter[str], set[int]]:
    """Numbers (digits, number words, ordinals) as canonical strings, and the token positions they used."""
    found: Counter[str] = Counter()
    used: set[int] = set()
    i = 0
    while i < len(toks):
        low = toks[i].low
        m = _NUMERIC.match(low)
        if m:
            found[_canon_number(*m.groups())] += 1
            used.add(i)
            i += 1
            continue
        if _NUMERIC_RANGE.match(low):  # 1867-1894, 2023-01-07, 24/7
            for part in re.split(r"[-/]", low):
                found[_canon_number(part)] += 1
            used.add(i)
            i += 1
            continue
        if low in _ORDINALS:
            found["#" + str(_ORDINALS[low])] += 1
            used.add(i)
            i += 1
            continue
        if all(p in _UNITS or p in _SCALES for p in low.split("-")):
            # a run of number words: "one hundred and fifty", "twenty-one"; "twenty, one" are two numbers
            total, current, j = 0.0, 0.0, i
            while j < len(toks):
                ps = toks[j].low.split("-")
                if toks[j].low == "and" and j > i and j + 1 < len(toks) and toks[j + 1].low in _UNITS:
                    j += 1
                    continue
                if not all(p in _UNITS or p in _SCALES for p in ps):
                    break
                fits = True
                for p in ps:
                    if p in _UNITS:
                        v = _UNITS[p]
                        small = current % 100
                        fits = j == i or small == 0 or (small % 10 == 0 and small >= 20 and v < 10)
                    else:
                        fits = j == i or current > 0
                    if not fits:
                        break
                    if p in _UNITS:
                        current += _UNITS[p]
                    else:
                        current = max(current, 1) * _SCALES[p]
                        if _SCALES[p] >= 1000:
                            total, current = total + current, 0.0
                if not fits:
                    break
                used.add(j)
                j += 1
            value = _fmt_number(total + current)
            weak = j == i + 1 and low == "one"  # "one" is often a pronoun or an article: counted as weak
            found[("~" if weak else "") + value] += 1
            i = max(j, i + 1)
            continue
        i += 1
    return found, used


def _is_entity(tok: _Tok) -> bool:
    t = tok.text
    if tok.low in _CALENDAR:
        return True
    if any(c.isdigit() for c in t) and any(c.isalpha() for c in t):
        return not _NUMERIC.match(tok.low)  # KW-3, WREN-1, CTD-48 but not 15s, 2nd, 1990s
    letters = [c for c in t if c.isalpha()]
    if not letters or t == "I":
        return False
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return tok.low not in STOPWORDS or not tok.start  # acronym (an all-caps question makes every word one)
    if t[0].isupper():
        if not tok.start:
            return tok.low not in ("i",)
        return tok.low not in _FUNCTION_WORDS
    return False


def _entity_spans(toks: list[_Tok]) -> list[list[int]]:
    spans: list[list[int]] = []
    prev = -2
    for i, tok in enumerate(toks):
        if _is_entity(tok):
            if i == prev + 1 and spans:
                spans[-1].append(i)
            else:
                spans.append([i])
            prev = i
    return spans


def _acronym_span(acronym: str, toks: list[_Tok]) -> list[int] | None:
    """Positions of the words whose initials spell `acronym` (PWMRS = Port Wren Marine Research Station)."""
    letters = acronym.casefold()
    words = [i for i, t in enumerate(toks) if t.low not in ("of", "and", "the", "for", "&")]
    for s in range(len(words) - len(letters) + 1):
        if "".join(toks[i].low[0] for i in words[s : s + len(letters)]) == letters:
            return list(range(words[s], words[s + len(letters) - 1] + 1))
    return None


def _acronym_links(ta: list[_Tok], tb: list[_Tok]) -> tuple[dict[int, int], dict[int, int]]:
    """For each side, {position: counterpart position} of acronyms spelled out on the other side, and of the
    spelled-out words: "PWMRS" in one question and "Port Wren Marine Research Station" in the other name one thing."""
    links_a: dict[int, int] = {}
    links_b: dict[int, int] = {}
    for x, y, lx, ly in ((ta, tb, links_a, links_b), (tb, ta, links_b, links_a)):
        for i, tok in enumerate(x):
            if len(tok.text) >= 2 and tok.text.isalpha() and tok.text.isupper() and tok.low not in {t.low for t in y}:
                span = _acronym_span(tok.text, y)
                if span:
                    lx[i] = span[-1]
                    for j in span:
                        ly.setdefault(j, i)
    return links_a, links_b


def _entity_check(ta: list[_Tok], tb: list[_Tok], links: tuple[dict[int, int], dict[int, int]]) -> str | None:
    for x, y, link in ((ta, tb, links[0]), (tb, ta, links[1])):
        spans = _entity_spans(x)
        positions: list[int] = []
        for span in spans:
            pos = None
            for i in span:
                tok = x[i]
                if i in link:
                    pos = link[i]
                    continue
                found = next((k for k, t in enumerate(y) if tok.low in (t.low, t.stem) or tok.stem in (t.low, t.stem)),
                             None)
                if found is None:
                    x_lows = {t.low for t in x}
                    other = [y[j].text for s in _entity_spans(y) for j in s if y[j].low not in x_lows]
                    if other:
                        return f"entities differ: {tok.text!r} vs {other[0]!r}"
                    return f"entity {tok.text!r} only in one question"
                pos = found
            if pos is not None:
                positions.append(pos)
        if any(b < a for a, b in zip(positions, positions[1:], strict=False)):
            names = [" ".join(x[i].text for i in s) for s in spans]
            return "entity order differs: " + " / ".join(repr(n) for n in names)
    return None


def _focus(toks: list[_Tok]) -> set[str]:
    out: set[str] = set()
    lows = [t.low for t in toks]
    for i, w in enumerate(lows):
        nxt = lows[i + 1] if i + 1 < len(lows) else ""
        if w == "how":
            out.add(_HOW.get(nxt, "manner"))
        elif w in ("what", "which") and nxt in _WH_NOUN:
            out.add(_WH_NOUN[nxt])
        elif w in _FOCUS_WORDS:
            out.add(_FOCUS_WORDS[w])
        elif w in _FOCUS_HINTS:
            out.add(_FOCUS_HINTS[w])
        elif w in ("lasted", "lasts") or (w == "last" and i == len(lows) - 1):
            out.add("length")  # "how long did it last"
    return out


def _focus_compatible(f: str, other: set[str]) -> bool:
    return (f == "time" and bool(other & _TIME_FAMILY)) or (f in _TIME_FAMILY and "time" in other)


def _rates(toks: list[_Tok]) -> tuple[set[str], set[int]]:
    """'per night', 'a year', 'each month', 'annual' -> {'night'}, {'year'}... and the token positions used."""
    rates: set[str] = set()
    used: set[int] = set()
    for i, t in enumerate(toks):
        if t.low in _RATE_ADJ:
            rates.add(_RATE_ADJ[t.low])
            used.add(i)
        elif t.low in ("per", "a", "an", "each", "every") and i + 1 < len(toks) and toks[i + 1].stem in _RATE_UNITS:
            rates.add(toks[i + 1].stem)
            used.update((i, i + 1))
    return rates, used


def _related(w: str, others: Iterable[str]) -> bool:
    """True when w and one of others are forms of one word (design/designer, automat/automation)."""
    for o in others:
        short, long_ = (w, o) if len(w) <= len(o) else (o, w)
        if len(short) >= 4 and long_.startswith(short) and long_[len(short) :] in _MORPH:
            return True
        stem = short[:-1]
        if len(short) >= 4 and short.endswith("e") and long_.startswith(stem) and long_[len(stem) :] in _MORPH:
            return True
    return False


def _first(words: Iterable[str]) -> str:
    return next(iter(sorted(words)), "")


def verify_equivalent(a: str, b: str, rare_terms: Container[str] | None = None) -> str | None:
    """None if the two questions may share an answer; otherwise a short human reason.

    Embeddings place "first"/"last", "not", "1867"/"1865" and swapped names close together; these rules catch
    them. `rare_terms` says which words are rare in the corpus (`word in rare_terms`; a set works, and
    `CorpusTerms` counts absent words as rare); a differing rare content word rejects, a differing common one does
    not. Without it, every differing content word rejects.
    """
    ta, tb = _tokens(a), _tokens(b)

    # negation
    neg_a = Counter(_NEGATIONS.get(t.low, "not" if t.low.endswith("n't") else "") for t in ta)
    neg_b = Counter(_NEGATIONS.get(t.low, "not" if t.low.endswith("n't") else "") for t in tb)
    neg_a.pop("", None)
    neg_b.pop("", None)
    if neg_a != neg_b:
        diff = (neg_a - neg_b) or (neg_b - neg_a)
        return f"negation differs ({', '.join(repr(w) for w in sorted(diff))})"

    # numbers
    num_a, used_a = _numbers(ta)
    num_b, used_b = _numbers(tb)
    strong_a = Counter({k: v for k, v in num_a.items() if not k.startswith("~")})
    strong_b = Counter({k: v for k, v in num_b.items() if not k.startswith("~")})
    if strong_a or strong_b:
        # a lone "one" beside real numbers counts; "a share" vs "one share" with no other numbers does not
        num_a = strong_a + Counter({k[1:]: v for k, v in num_a.items() if k.startswith("~")})
        num_b = strong_b + Counter({k[1:]: v for k, v in num_b.items() if k.startswith("~")})
    elif bool(num_a) != bool(num_b):
        num_a = num_b = Counter()
    if num_a != num_b:
        sa = ", ".join(sorted(num_a - num_b)) or "none"
        sb = ", ".join(sorted(num_b - num_a)) or "none"
        return f"numbers differ ({sa} vs {sb})"

    # rates ("per night" vs "per week")
    rate_a, rused_a = _rates(ta)
    rate_b, rused_b = _rates(tb)
    if rate_a != rate_b:
        return f"rates differ (per {_first(rate_a - rate_b) or '-'} vs per {_first(rate_b - rate_a) or '-'})"

    # qualifiers: first/last, before/after, highest/lowest, springs/neaps ...
    def quals(toks: list[_Tok], skip: set[int]) -> tuple[set[str], set[str], set[int]]:
        strict, soft, used = set(), set(), set()
        for i, t in enumerate(toks):
            w = t.low
            if i in skip or (t.text[:1].isupper() and not t.start):
                continue  # a rate, or part of a name ("Mole End")
            if i > 0 and toks[i - 1].low == "how":
                continue  # "how high": asks for a height (see _focus)
            if w in ("last", "lasts", "lasted") and (i == len(toks) - 1 or w != "last"):
                continue  # "how long did it last?": the verb
            if w in _STRICT:
                strict.add(_STRICT[w])
                used.add(i)
            elif w in _SOFT:
                soft.add(_SOFT[w])
                used.add(i)
        return strict, soft, used

    strict_a, soft_a, qused_a = quals(ta, rused_a)
    strict_b, soft_b, qused_b = quals(tb, rused_b)
    if strict_a != strict_b:
        return f"qualifiers differ ({_first(strict_a - strict_b) or 'none'} vs {_first(strict_b - strict_a) or 'none'})"
    for s in soft_a:
        if _OPPOSITE[s] in soft_b and s not in soft_b and _OPPOSITE[s] not in soft_a:
            return f"{'tense' if s in ('present', 'past') else 'qualifiers'} differ ({s} vs {_OPPOSITE[s]})"

    # entities: capitalized names, acronyms, codes, days and months; same ones, in the same order
    links = _acronym_links(ta, tb)
    reason = _entity_check(ta, tb, links)
    if reason:
        return reason

    # what is asked: when / where / who / how many / height ...
    foc_a, foc_b = _focus(ta), _focus(tb)
    for f in foc_a ^ foc_b:
        other = foc_b if f in foc_a else foc_a
        if not _focus_compatible(f, other):
            return f"asks for different things ({_first(foc_a - foc_b) or '-'} vs {_first(foc_b - foc_a) or '-'})"

    # content words: a differing rare word means a different subject
    def content(toks: list[_Tok], used: set[int]) -> dict[str, str]:
        out = {}
        for i, t in enumerate(toks):
            w = t.low
            if i in used or w in STOPWORDS or w in _NEGATIONS or w.endswith("n't") or w in _FOCUS_WORDS:
                continue
            if w in ("lasted", "lasts") or (w == "last" and i == len(toks) - 1):
                continue
            if w in _HOW or w == "how" or (i > 0 and toks[i - 1].low == "how"):
                continue
            if w in _WH_NOUN and i > 0 and toks[i - 1].low in ("what", "which"):
                continue
            if not any(c.isalnum() for c in w):
                continue
            out.setdefault(t.stem, t.low)
        return out

    ca = content(ta, used_a | rused_a | qused_a | set(links[0]))
    cb = content(tb, used_b | rused_b | qused_b | set(links[1]))
    only_a = {s: w for s, w in ca.items() if s not in cb and not _related(s, cb)}
    only_b = {s: w for s, w in cb.items() if s not in ca and not _related(s, ca)}

    def rare(stem: str, word: str) -> bool:
        if rare_terms is None:
            return True
        if isinstance(rare_terms, CorpusTerms):
            return word in rare_terms
        return word in rare_terms or stem in rare_terms

    rare_a = sorted(w for s, w in only_a.items() if rare(s, w))
    rare_b = sorted(w for s, w in only_b.items() if rare(s, w))
    if rare_a or rare_b:
        if rare_a and rare_b:
            return f"terms differ: {rare_a[0]!r} vs {rare_b[0]!r}"
        return f"term only in one question: {(rare_a or rare_b)[0]!r}"
    return None


class CorpusTerms:
    """Document frequencies of word stems over a collection's chunks; `word in terms` is True for rare words.

    A word that is in fewer than `rare_df` of the chunks, or in none, names something specific (a bird, a rule,
    a person); questions that differ in such a word usually have different answers.
    """

    def __init__(self, texts: Iterable[str], rare_df: float = RARE_DF, min_chunks: int = RARE_MIN_CHUNKS) -> None:
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            n += 1
            df.update({t.stem for t in _tokens(text)})
        self.n_chunks = n
        self.df = df
        self.min_df = max(1.0, rare_df * n, float(min_chunks))

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        return self.df.get(_stem(word), 0) < self.min_df

    def frequency(self, word: str) -> float:
        return self.df.get(_stem(word), 0) / max(1, self.n_chunks)


# ------------------------------------------------------------------------------------------------------------
# The cache


@dataclass
class CacheHit:
    payload: dict  # what put() stored, unchanged (JSON round-trip)
    kind: str  # "exact" or "semantic"
    similarity: float  # 1.0 for exact
    matched_question: str  # the stored question that matched
    entry_id: int
    age_s: float


@dataclass
class _ScopeVectors:
    """The stored vectors of one scope, kept in memory while the scope's (count, max id) is unchanged."""

    signature: tuple[int, int]
    ids: np.ndarray
    created: np.ndarray  # seconds since the epoch (naive UTC)
    questions: list[str]
    matrix: np.ndarray  # float32 (n, dim)


@dataclass
class _Counters:
    lookups: int = 0
    exact_hits: int = 0
    semantic_hits: int = 0
    rejected: int = 0  # semantic candidates over the threshold that verification refused
    misses: int = 0
    puts: int = 0
    reasons: Counter = field(default_factory=Counter)


def _epoch(dt: datetime) -> float:
    return (dt - datetime(1970, 1, 1)).total_seconds()


class SemanticCache:
    """Answers keyed by question: exact, then similar-and-verified; scoped, expiring, capped; thread-safe."""

    def __init__(self, store: Store, embedder: Embedder, *, threshold: float = 0.95,
                 ttl_s: float | None = 7 * 24 * 3600, max_entries: int = 10_000) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.store = store
        self.embedder = embedder
        self.threshold = threshold
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.RLock()
        self._terms: dict[int, tuple[int, CorpusTerms]] = {}
        self._terms_lock = threading.Lock()
        self._vectors: dict[tuple, _ScopeVectors] = {}
        self._counters: dict[int, _Counters] = {}

    # --- helpers --------------------------------------------------------------------------------------------
    def _scope(self, collection_id: int, corpus_version: int, model_id: str, prompt_version: str) -> Any:
        return and_(
            AnswerCacheRow.collection_id == collection_id,
            AnswerCacheRow.corpus_version == corpus_version,
            AnswerCacheRow.model_id == model_id,
            AnswerCacheRow.prompt_version == prompt_version,
        )

    def _cutoff(self, now: datetime) -> datetime | None:
        return None if self.ttl_s is None else now - timedelta(seconds=self.ttl_s)

    def _count(self, collection_id: int) -> _Counters:
        with self._lock:
            return self._counters.setdefault(collection_id, _Counters())

    def _vector(self, question: str, embedding: np.ndarray | None) -> np.ndarray:
        if embedding is None:
            vec = self.embedder.encode([question])[0]
        else:
            vec = np.asarray(embedding, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm == 0.0:
            raise ValueError("question embedding is zero or not finite")
        return (vec / norm).astype(np.float32)

    def rare_terms(self, collection_id: int, corpus_version: int) -> CorpusTerms:
        """Document frequencies for one collection, computed once per corpus_version."""
        with self._terms_lock:
            cached = self._terms.get(collection_id)
            if cached and cached[0] == corpus_version:
                return cached[1]
            with self.store.session() as s:
                n = int(s.scalar(select(func.count()).where(ChunkRow.collection_id == collection_id)) or 0)
                if n > MAX_DF_CHUNKS:  # a stride sample estimates document frequencies well enough
                    step = -(-n // MAX_DF_CHUNKS)
                    texts = list(s.scalars(select(ChunkRow.text).where(
                        ChunkRow.collection_id == collection_id, ChunkRow.id % step == 0)))
                else:
                    texts = None
            if texts is None:
                texts = self.store.chunk_texts(collection_id)[1]
            terms = CorpusTerms(texts)
            self._terms[collection_id] = (corpus_version, terms)
            return terms

    def _scope_vectors(self, collection_id: int, corpus_version: int, model_id: str,
                       prompt_version: str) -> _ScopeVectors | None:
        key = (collection_id, corpus_version, model_id, prompt_version, self.embedder.model_id)
        where = and_(self._scope(collection_id, corpus_version, model_id, prompt_version),
                     AnswerCacheRow.embedding_model == self.embedder.model_id)
        with self.store.session() as s:
            count, max_id = s.execute(
                select(func.count(AnswerCacheRow.id), func.max(AnswerCacheRow.id)).where(where)).one()
            signature = (int(count or 0), int(max_id or 0))
            if not count:
                return None
            with self._lock:
                cached = self._vectors.get(key)
            if cached is not None and cached.signature == signature:
                return cached
            rows = s.execute(
                select(AnswerCacheRow.id, AnswerCacheRow.created, AnswerCacheRow.question, AnswerCacheRow.embedding)
                .where(where).order_by(AnswerCacheRow.id)
            ).all()
        dims = {len(r[3]) for r in rows}
        if len(dims) != 1:  # mixed dimensions: keep the most common one
            dim = Counter(len(r[3]) for r in rows).most_common(1)[0][0]
            rows = [r for r in rows if len(r[3]) == dim]
        vecs = _ScopeVectors(
            signature=signature,
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            created=np.array([_epoch(r[1]) for r in rows], dtype=np.float64),
            questions=[r[2] for r in rows],
            matrix=np.stack([np.frombuffer(r[3], dtype=np.float16) for r in rows]).astype(np.float32),
        )
        with self._lock:
            self._vectors = {k: v for k, v in self._vectors.items() if k[0] != key[0] or k == key}
            self._vectors[key] = vecs
        return vecs

    def _take(self, entry_id: int, question: str, now: datetime) -> tuple[dict, datetime] | None:
        """Count a hit on an entry and return its payload, or None if it vanished (or changed) meanwhile."""
        with self.store.session() as s:
            done = s.execute(update(AnswerCacheRow)
                             .where(AnswerCacheRow.id == entry_id, AnswerCacheRow.question == question)
                             .values(hits=AnswerCacheRow.hits + 1, last_hit=now))
            if not done.rowcount:
                return None
            payload, created = s.execute(select(AnswerCacheRow.payload, AnswerCacheRow.created)
                                         .where(AnswerCacheRow.id == entry_id)).one()
        return json.loads(payload), created

    # --- API ------------------------------------------------------------------------------------------------
    def lookup(self, collection_id: int, corpus_version: int, model_id: str, prompt_version: str, question: str,
               embedding: np.ndarray | None = None) -> CacheHit | None:
        """A stored answer for this question in this scope, or None; semantic candidates must pass verification."""
        counters = self._count(collection_id)
        with self._lock:
            counters.lookups += 1
        norm = normalize_question(question)
        if not norm:
            with self._lock:
                counters.misses += 1
            return None
        now = utcnow()
        cutoff = self._cutoff(now)
        scope = self._scope(collection_id, corpus_version, model_id, prompt_version)
        fresh = AnswerCacheRow.created >= cutoff if cutoff is not None else true()

        # 1. exact
        with self.store.session() as s:
            row = s.execute(
                select(AnswerCacheRow.id, AnswerCacheRow.question).where(
                    scope, fresh, AnswerCacheRow.question_key == _question_key(norm))
                .order_by(AnswerCacheRow.id.desc()).limit(1)
            ).first()
        if row is not None and normalize_question(row[1]) == norm:
            taken = self._take(row[0], row[1], now)
            if taken is not None:
                with self._lock:
                    counters.exact_hits += 1
                return CacheHit(taken[0], "exact", 1.0, row[1], int(row[0]), (now - taken[1]).total_seconds())

        # 2. similar and verified
        vecs = self._scope_vectors(collection_id, corpus_version, model_id, prompt_version)
        if vecs is not None:
            q = self._vector(question, embedding)
            if q.shape[0] == vecs.matrix.shape[1]:
                sims = vecs.matrix @ q
                if cutoff is not None:
                    sims = np.where(vecs.created >= _epoch(cutoff), sims, -1.0)
                order = np.argsort(-sims)[:MAX_CANDIDATES]
                for n in order:
                    sim = float(sims[n])
                    if sim < self.threshold:
                        break
                    stored = vecs.questions[n]
                    reason = verify_equivalent(question, stored, self.rare_terms(collection_id, corpus_version))
                    if reason is not None:
                        log.debug("semantic cache: rejected %r for %r (cosine %.4f): %s", stored, question, sim, reason)
                        with self._lock:
                            counters.rejected += 1
                            counters.reasons[reason.split(" (")[0].split(":")[0]] += 1
                        continue
                    taken = self._take(int(vecs.ids[n]), stored, now)
                    if taken is None:
                        continue
                    with self._lock:
                        counters.semantic_hits += 1
                    return CacheHit(taken[0], "semantic", min(sim, 1.0), stored, int(vecs.ids[n]),
                                    (now - taken[1]).total_seconds())
            else:
                log.warning("semantic cache: question embedding has %d dimensions, stored ones %d; skipped",
                            q.shape[0], vecs.matrix.shape[1])
        with self._lock:
            counters.misses += 1
        return None

    def put(self, collection_id: int, corpus_version: int, model_id: str, prompt_version: str, question: str,
            payload: dict, embedding: np.ndarray | None = None) -> int:
        """Store an answer; replaces the same question's entry, prunes stale scopes, and keeps the size cap."""
        norm = normalize_question(question)
        if not norm:
            raise ValueError("cannot cache an answer for an empty question")
        try:
            data = json.dumps(payload, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"cache payload must be JSON-serializable: {exc}") from exc
        vec = self._vector(question, embedding)
        now = utcnow()
        cutoff = self._cutoff(now)
        with self.store.session() as s:
            # older corpus versions, other models or prompts, expired entries; never a newer corpus version (a
            # slow request that started before an ingest must not wipe the answers cached after it)
            stale = or_(
                AnswerCacheRow.corpus_version < corpus_version,
                and_(AnswerCacheRow.corpus_version == corpus_version,
                     or_(AnswerCacheRow.model_id != model_id, AnswerCacheRow.prompt_version != prompt_version)),
                *([AnswerCacheRow.created < cutoff] if cutoff is not None else []),
            )
            s.execute(delete(AnswerCacheRow).where(AnswerCacheRow.collection_id == collection_id, stale))
            s.execute(delete(AnswerCacheRow).where(
                self._scope(collection_id, corpus_version, model_id, prompt_version),
                AnswerCacheRow.question_key == _question_key(norm)))
            row = AnswerCacheRow(
                collection_id=collection_id, corpus_version=corpus_version, model_id=model_id,
                prompt_version=prompt_version, embedding_model=self.embedder.model_id, question=question,
                question_key=_question_key(norm), embedding=vec.astype(np.float16).tobytes(), payload=data,
                created=now, hits=0,
            )
            s.add(row)
            s.flush()
            entry_id = int(row.id)
            total = int(s.scalar(select(func.count(AnswerCacheRow.id))) or 0)
            if total > self.max_entries:
                recency = func.coalesce(AnswerCacheRow.last_hit, AnswerCacheRow.created)
                victims = list(s.scalars(
                    select(AnswerCacheRow.id).where(AnswerCacheRow.id != entry_id)
                    .order_by(recency.asc(), AnswerCacheRow.id.asc()).limit(total - self.max_entries)))
                s.execute(delete(AnswerCacheRow).where(AnswerCacheRow.id.in_(victims)))
        with self._lock:
            self._count(collection_id).puts += 1
        return entry_id

    def clear(self, collection_id: int | None = None) -> int:
        """Remove all entries, or one collection's; returns how many were removed."""
        with self.store.session() as s:
            stmt = delete(AnswerCacheRow)
            if collection_id is not None:
                stmt = stmt.where(AnswerCacheRow.collection_id == collection_id)
            removed = int(s.execute(stmt).rowcount or 0)
        with self._lock:
            self._vectors = {k: v for k, v in self._vectors.items()
                             if collection_id is not None and k[0] != collection_id}
        return removed

    def stats(self, collection_id: int | None = None) -> dict:
        """Stored entries (count, hits, oldest/newest) plus this process's lookup counters."""
        with self.store.session() as s:
            q = select(func.count(AnswerCacheRow.id), func.coalesce(func.sum(AnswerCacheRow.hits), 0),
                       func.min(AnswerCacheRow.created), func.max(AnswerCacheRow.created))
            if collection_id is not None:
                q = q.where(AnswerCacheRow.collection_id == collection_id)
            count, hits, oldest, newest = s.execute(q).one()
        with self._lock:
            parts = [c for cid, c in self._counters.items() if collection_id is None or cid == collection_id]
            reasons: Counter = Counter()
            for c in parts:
                reasons.update(c.reasons)
            return {
                "entries": int(count or 0),
                "hits": int(hits or 0),
                "oldest": oldest.isoformat() if oldest else None,
                "newest": newest.isoformat() if newest else None,
                "lookups": sum(c.lookups for c in parts),
                "exact_hits": sum(c.exact_hits for c in parts),
                "semantic_hits": sum(c.semantic_hits for c in parts),
                "rejected": sum(c.rejected for c in parts),
                "misses": sum(c.misses for c in parts),
                "puts": sum(c.puts for c in parts),
                "rejection_reasons": dict(reasons),
                "threshold": self.threshold,
                "ttl_s": self.ttl_s,
                "max_entries": self.max_entries,
            }
