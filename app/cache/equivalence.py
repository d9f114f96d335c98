"""When may two questions share an answer? The verification rules of the semantic answer cache.

Embedding similarity alone is not enough: "first keeper" / "last keeper", "before 2016" / "after 2016" or "Did A
open before B" / "Did B open before A" score 0.95-0.997 with MiniLM. `verify_equivalent` accepts a pair only when
no negation, number, rate, qualifier, entity, question-focus or rare-term difference separates them; `CorpusTerms`
says which words are rare in a collection. Words, stems and numbers come from `localrag.index.text`.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Container, Iterable, Sequence

from localrag.index.text import (
    CARDINALS,
    MULTIPLIERS,
    NEGATIONS,
    ORDINALS,
    QUESTION_STOPWORDS,
    SCALES,
    Token,
    find_numbers,
    normalize,
    stem,
    tokens,
)

__all__ = ["RARE_DF", "RARE_MIN_CHUNKS", "CorpusTerms", "defined_acronyms", "expand_acronyms", "new_words_check",
           "normalize_question", "question_tokens", "verify_equivalent"]

RARE_DF = 0.05  # a word in fewer than this share of a collection's chunks (or in none) is a rare term ...
RARE_MIN_CHUNKS = 30  # ... or in fewer than this many: in a small corpus every topic word is in few chunks


# ------------------------------------------------------------------------------------------------------------
# Normalization and tokens

_TRAILING = " \t\r\n?!.,;:\u2026\u00bf\u00a1\"'`)]}"
_LEADING = " \t\r\n\u00bf\u00a1\"'`([{"


def normalize_question(text: str) -> str:
    """Key for exact hits: NFKC, casefold, straight quotes, one space, no trailing ?!. etc."""
    t = " ".join(normalize(text).casefold().split())
    return t.strip(_TRAILING).lstrip(_LEADING).strip()


def question_tokens(text: str) -> list[Token]:
    """`tokens` of a question, with "take place", "happen", "occur" and "be held" given one stem ("happen"): they
    ask the same thing."""
    out = tokens(text)
    for i, tok in enumerate(out):
        if tok.stem == "take" and i + 1 < len(out) and out[i + 1].low == "place":
            out[i] = dataclasses.replace(tok, stem="happen")
            out[i + 1] = dataclasses.replace(out[i + 1], stem="happen")
        elif tok.stem in ("happen", "occur", "hold") and (tok.stem != "hold" or tok.low == "held"):
            out[i] = dataclasses.replace(tok, stem="happen")
    return out


# ------------------------------------------------------------------------------------------------------------
# Word lists

# negation words and what they mean; contractions ending in n't count as "not"
_NEGATIONS = {w: w for w in NEGATIONS} | {
    "cannot": "not", "can't": "not", "won't": "not", "except": "except", "excluding": "except", "apart": "except",
    "besides": "except",
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

# units a rate is given per ("per night", "a year"), as stems, and adjectives that name one ("annual")
_RATE_UNITS = {stem(w): w for w in ("second minute hour day night week month year metre meter person head boat tonne "
                                    "kwh kg litre mile km visit landing loaf").split()}
_RATE_ADJ = {"annual": "year", "annually": "year", "yearly": "year", "monthly": "month", "weekly": "week",
             "daily": "day", "nightly": "night", "hourly": "hour"}

_CALENDAR = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february april june july august september "
    "october november december spring summer autumn winter".split()
)

# suffixes that make two words one term: design/designer, automate(d)/automation, lead/leader, direct/director
_MORPH = ("e", "r", "er", "ers", "or", "ors", "ion", "ions", "ation", "ations", "ment", "ments", "al", "ly", "ity",
          "ist", "ists", "ship", "ance", "ence")

# words that may open a question capitalized without being a name
_FUNCTION_WORDS = frozenset(QUESTION_STOPWORDS | set(_NEGATIONS) | set(_STRICT) | set(_SOFT) | set(_FOCUS_WORDS)
                            | set(_HOW) | set(CARDINALS) | set(MULTIPLIERS) | set(SCALES) | set(ORDINALS)
                            | set(_RATE_ADJ) | {"how", "in", "since"})


# ------------------------------------------------------------------------------------------------------------
# The rules


def _numbers(toks: list[Token]) -> tuple[Counter[str], set[int]]:
    """Numbers as canonical strings ('#2' for an ordinal, '~1' for a lone "one"), and the token positions they
    used."""
    found: Counter[str] = Counter()
    used: set[int] = set()
    for n in find_numbers(toks):
        found[("~" if n.weak else "") + ("#" if n.ordinal else "") + n.value] += 1
        used.update(n.positions)
    return found, used


def _is_entity(tok: Token) -> bool:
    t = tok.text
    if tok.low in _CALENDAR:
        return True
    if any(c.isdigit() for c in t) and any(c.isalpha() for c in t):
        return not find_numbers([tok])  # KW-3, WREN-1, CTD-48 but not 15s, 2nd, 1990s
    letters = [c for c in t if c.isalpha()]
    if not letters or t == "I":
        return False
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return tok.low not in QUESTION_STOPWORDS or not tok.start  # acronym (an all-caps question: every word one)
    if t[0].isupper():
        if not tok.start:
            return tok.low not in ("i",)
        return tok.low not in _FUNCTION_WORDS
    return False


def _entity_spans(toks: list[Token]) -> list[list[int]]:
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


def _acronym_span(acronym: str, toks: list[Token]) -> list[int] | None:
    """Positions of the words whose initials spell `acronym` (PWMRS = Port Wren Marine Research Station)."""
    letters = acronym.casefold()
    words = [i for i, t in enumerate(toks) if t.low not in ("of", "and", "the", "for", "&")]
    for s in range(len(words) - len(letters) + 1):
        if "".join(toks[i].low[0] for i in words[s : s + len(letters)]) == letters:
            return list(range(words[s], words[s + len(letters) - 1] + 1))
    return None


def _acronym_links(ta: list[Token], tb: list[Token]) -> tuple[dict[int, int], dict[int, int]]:
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


def _entity_check(ta: list[Token], tb: list[Token], links: tuple[dict[int, int], dict[int, int]]) -> str | None:
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
        if _compares(x) and any(b < a for a, b in zip(positions, positions[1:], strict=False)):
            names = [" ".join(x[i].text for i in s) for s in spans]
            return "entity order differs: " + " / ".join(repr(n) for n in names)
    return None


_COMPARE_CLASSES = {"before", "after", "more", "less", "most", "least"}
_COMPARE_WORDS = {"than", "between", "versus", "vs", "or", "and", "compared", "compare", "from", "to"}


def _compares(toks: list[Token]) -> bool:
    """Does the question relate its names to each other ("Did A open before B", "A or B", "from A to B")? Then
    their order matters; otherwise "the Neural Engine of Apple's M4" and "Apple's M4: its Neural Engine" ask one
    thing."""
    return any(_STRICT.get(t.low) in _COMPARE_CLASSES or t.low in _COMPARE_WORDS for t in toks)


def _focus(toks: list[Token]) -> set[str]:
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


def _rates(toks: list[Token]) -> tuple[set[str], set[int]]:
    """'per night', 'a year', 'each month', 'annual' -> {'night'}, {'year'}... and the token positions used."""
    rates: set[str] = set()
    used: set[int] = set()
    for i, t in enumerate(toks):
        if t.low in _RATE_ADJ:
            rates.add(_RATE_ADJ[t.low])
            used.add(i)
        elif t.low in ("per", "a", "an", "each", "every") and i + 1 < len(toks) and toks[i + 1].stem in _RATE_UNITS:
            rates.add(_RATE_UNITS[toks[i + 1].stem])
            used.update((i, i + 1))
    return rates, used


def _qualifiers(toks: list[Token], skip: set[int]) -> tuple[set[str], set[str], set[int]]:
    """Strict and soft qualifier classes in a question, and the token positions they used."""
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


def _content(toks: list[Token], used: set[int]) -> dict[str, str]:
    """{stem: word} of the words that name the subject of a question (not used by another rule)."""
    out: dict[str, str] = {}
    for i, t in enumerate(toks):
        w = t.low
        if i in used or w in QUESTION_STOPWORDS or w in _NEGATIONS or w.endswith("n't") or w in _FOCUS_WORDS:
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


def _related(w: str, others: Iterable[str]) -> bool:
    """True when w and one of others are forms of one word (design/designer, automat/automation)."""
    for o in others:
        short, long_ = (w, o) if len(w) <= len(o) else (o, w)
        if len(short) >= 4 and long_.startswith(short) and long_[len(short) :] in _MORPH:
            return True
        base = short[:-1]
        if len(short) >= 4 and short.endswith("e") and long_.startswith(base) and long_[len(base) :] in _MORPH:
            return True
    return False


def _first(words: Iterable[str]) -> str:
    return next(iter(sorted(words)), "")


def _negations(toks: list[Token]) -> Counter[str]:
    out = Counter(_NEGATIONS.get(t.low, "not" if t.low.endswith("n't") else "") for t in toks)
    out.pop("", None)
    return out


def verify_equivalent(a: str, b: str, rare_terms: Container[str] | None = None) -> str | None:
    """None if the two questions may share an answer; otherwise a short human reason.

    Embeddings place "first"/"last", "not", "1867"/"1865" and swapped names close together; these rules catch
    them. `rare_terms` says which words are rare in the corpus (`word in rare_terms`; a set works, and
    `CorpusTerms` counts absent words as rare); a differing rare content word rejects, a differing common one does
    not. Without it, every differing content word rejects.
    """
    ta, tb = question_tokens(a), question_tokens(b)

    neg_a, neg_b = _negations(ta), _negations(tb)
    if neg_a != neg_b:
        diff = (neg_a - neg_b) or (neg_b - neg_a)
        return f"negation differs ({', '.join(repr(w) for w in sorted(diff))})"

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

    rate_a, rused_a = _rates(ta)
    rate_b, rused_b = _rates(tb)
    if rate_a != rate_b:
        return f"rates differ (per {_first(rate_a - rate_b) or '-'} vs per {_first(rate_b - rate_a) or '-'})"

    strict_a, soft_a, qused_a = _qualifiers(ta, rused_a)
    strict_b, soft_b, qused_b = _qualifiers(tb, rused_b)
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
    ca = _content(ta, used_a | rused_a | qused_a | set(links[0]))
    cb = _content(tb, used_b | rused_b | qused_b | set(links[1]))
    only_a = {s: w for s, w in ca.items() if s not in cb and not _related(s, cb)}
    only_b = {s: w for s, w in cb.items() if s not in ca and not _related(s, ca)}

    def rare(word_stem: str, word: str) -> bool:
        if rare_terms is None:
            return True
        if isinstance(rare_terms, CorpusTerms):
            return word in rare_terms
        return word in rare_terms or word_stem in rare_terms

    rare_a = sorted(w for s, w in only_a.items() if rare(s, w))
    rare_b = sorted(w for s, w in only_b.items() if rare(s, w))
    if rare_a or rare_b:
        if rare_a and rare_b:
            return f"terms differ: {rare_a[0]!r} vs {rare_b[0]!r}"
        return f"term only in one question: {(rare_a or rare_b)[0]!r}"
    return None


def _used(toks: list[Token]) -> set[int]:
    """The positions the number, rate and qualifier rules read (not content words)."""
    _, nums = _numbers(toks)
    _, rates = _rates(toks)
    return nums | rates | _qualifiers(toks, rates)[2]


def new_words_check(new: str, old: str, quotes: Sequence[str], evidence: Sequence[str],
                    rare_terms: Container[str]) -> str | None:
    """For a cached answer to `old` offered for `new` (the rules of `verify_equivalent` passed without the rare-term
    rule): None when the words only `new` has leave the answer standing, else why not.

    A rare word only in `new` is fine when the answer's `quotes` hold it (the answer is about it) but not the word
    it replaced. It refuses when the rest of the cited `evidence` holds it (the sources tell that thing apart:
    "deputy mayor" beside "mayor"); when it is absent from the evidence and adds to the question rather than
    rewording it (no word of `old` was replaced); or when the word it replaced shares a chunk with it
    (`CorpusTerms.together`: "operations engineer" for "chair"). A rare word only `old` has refuses when the
    evidence names the thing it qualifies both with and without it ("Deputy Mayor" and "Mayor")."""
    ta, tb = question_tokens(new), question_tokens(old)
    links = _acronym_links(ta, tb)
    ca, cb = _content(ta, _used(ta) | set(links[0])), _content(tb, _used(tb) | set(links[1]))
    only_new = {s: w for s, w in ca.items() if s not in cb and not _related(s, cb) and w in rare_terms}
    only_old = {s: w for s, w in cb.items() if s not in ca and not _related(s, ca) and w in rare_terms}
    quoted = {t.stem for q in quotes for t in question_tokens(q)}
    told = {t.stem for e in evidence for t in question_tokens(e)}
    together = getattr(rare_terms, "together", None)
    for s, w in sorted(only_new.items()):
        if s in quoted:
            both = [o for so, o in sorted(only_old.items()) if so in quoted]
            if both:  # the quoted sentence names both: "the chair ... and the operations engineer ..."
                return f"the answer's sentence names both {w!r} and {both[0]!r}"
            continue
        if s in told:
            return f"the sources tell {w!r} apart from what the answer quotes"
        if not only_old:
            return f"{w!r} narrows the question"
        both = [o for o in sorted(only_old.values()) if together is not None and together(w, o)]
        if both:  # synonyms rarely share a chunk; two roles, places or things of one kind often do
            return f"the collection tells {w!r} and {both[0]!r} apart"
    if not only_new:
        told_toks = [question_tokens(e) for e in evidence]
        for s, w in sorted(only_old.items()):
            kept = _named_without(told_toks, s, set(ca))
            if kept:
                return f"the sources name {kept!r} with and without {w!r}, which this question leaves out"
    return None


def _named_without(texts: list[list[Token]], dropped: str, kept: set[str]) -> str | None:
    """A word of `kept` (stems) that the texts write beside `dropped` ("Deputy Mayor") and also without it ("the
    Mayor"): then a question that drops the word asks for the other thing."""
    beside: set[str] = set()
    for toks in texts:
        for i, t in enumerate(toks):
            if t.stem == dropped:
                beside.update(x.stem for x in toks[max(0, i - 1):i + 2] if x.stem in kept)
    for toks in texts:
        for i, t in enumerate(toks):
            if t.stem in beside and all(x.stem != dropped for x in toks[max(0, i - 1):i + 2]):
                return t.text
    return None


_DEFINED = re.compile(r"((?:[A-Z][\w'-]*[ \t]+(?:(?:of|and|the|for|&)[ \t]+)?){2,8})\(([A-Z][A-Za-z0-9]{1,9})\)")


def defined_acronyms(text: str) -> dict[str, str]:
    """Acronyms a text defines as "Port Wren Marine Research Station (PWMRS)": {"pwmrs": "Port Wren Marine Research
    Station"}; the initials must spell the acronym."""
    out: dict[str, str] = {}
    for m in _DEFINED.finditer(text):
        acronym = m.group(2)
        if sum(c.isupper() for c in acronym) < 2:
            continue
        toks = tokens(m.group(1))
        span = _acronym_span(acronym, toks)
        if span and span[-1] == len(toks) - 1:
            out[acronym.casefold()] = " ".join(t.text for t in toks[span[0]:])
    return out


def expand_acronyms(question: str, acronyms: dict[str, str]) -> str:
    """The question with each acronym the collection defines spelled out ("Who founded PWMRS?" -> "Who founded
    Port Wren Marine Research Station?"): an embedding places an acronym far from its name."""
    if not acronyms:
        return question
    return re.sub(r"\b[A-Z][A-Za-z0-9]{1,9}\b", lambda m: acronyms.get(m.group(0).casefold(), m.group(0))
                  if m.group(0).isupper() or sum(c.isupper() for c in m.group(0)) >= 2 else m.group(0), question)


class CorpusTerms:
    """Document frequencies of word stems over a collection's chunks; `word in terms` is True for rare words.

    A word that is in fewer than `rare_df` of the chunks, or in none, names something specific (a bird, a rule,
    a person); questions that differ in such a word usually have different answers.
    """

    def __init__(self, texts: Iterable[str], rare_df: float = RARE_DF, min_chunks: int = RARE_MIN_CHUNKS) -> None:
        df: Counter[str] = Counter()
        where: dict[str, list[int]] = {}
        n = 0
        acronyms: dict[str, str] = {}
        for n, text in enumerate(texts, 1):
            if "(" in text:
                acronyms.update(defined_acronyms(text))
            stems = {t.stem for t in question_tokens(text)}
            df.update(stems)
            for st in stems:
                where.setdefault(st, []).append(n)
        self.n_chunks = n
        self.df = df
        self.min_df = max(1.0, rare_df * n, float(min_chunks))
        # the chunks of each rare stem (a rare stem is in few chunks, so this stays small)
        self.chunks = {st: frozenset(ids) for st, ids in where.items() if len(ids) < self.min_df}
        self.acronyms = acronyms  # "pwmrs" -> "Port Wren Marine Research Station", as the documents define them

    def __contains__(self, word: object) -> bool:
        if not isinstance(word, str):
            return False
        return self.df.get(stem(word), 0) < self.min_df

    def together(self, a: str, b: str) -> int:
        """How many chunks hold a form of both words (rare words only; 0 otherwise)."""
        return len(self.chunks.get(stem(a), frozenset()) & self.chunks.get(stem(b), frozenset()))

    def frequency(self, word: str) -> float:
        """The share of the collection's chunks that hold a form of `word`."""
        return self.df.get(stem(word), 0) / max(1, self.n_chunks)
