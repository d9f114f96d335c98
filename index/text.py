"""Text helpers shared by every layer: normalising, word tokens, stopwords, a light stemmer, numbers in text and
sentence splitting.

One implementation of each, rule-based and dependency-free, so that the chunker (ingest), the answer checks (app),
the answer cache (app.cache) and the scores (eval) see the same words, numbers and sentences:

- `normalize` - NFKC with straight quotes and apostrophes.
- `tokens` - words, numbers and codes as written (``KW-3``, ``1,150``, ``07:30``, ``24/7`` stay whole), each with
  its lower-cased form, its stem and whether it opens a sentence: for rules that care about case and order.
- `words` / `content_words` - lower-cased words for lexical comparison (contractions expanded, compounds split);
  `content_words` leaves out `STOPWORDS`, `NEGATIONS` and single letters and can stem.
- `STOPWORDS` (English function words), `NEGATIONS`, and `QUESTION_STOPWORDS` (what never changes what a question
  asks: the answer cache's list, derived from `STOPWORDS`).
- `stem` - a light suffix stripper (plurals, -ing, -ed, common irregular verbs).
- `find_numbers` / `numbers` - numbers written in digits or words, in one canonical spelling ('1,200' = '1200').
- `sentence_spans` / `split_sentences` - sentences, with two policies for line breaks (a line is a unit, or only
  paragraphs and list items are) and optional removal of Markdown markup.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CARDINALS", "MULTIPLIERS", "NEGATIONS", "ORDINALS", "QUESTION_STOPWORDS", "REQUEST_WORDS", "SCALES", "STOPWORDS",
    "Number", "Token", "canonical_number", "content_words", "find_numbers", "normalize", "numbers", "plain_text",
    "sentence_spans", "split_sentences", "stem", "tokens", "word_spans", "words",
]

# --------------------------------------------------------------------------------------------------------------
# Normalising

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})


def normalize(text: str) -> str:
    """NFKC (full-width and compatibility forms folded) with straight quotes and apostrophes (’ ‘ ʼ → ', “ ” → ")."""
    return unicodedata.normalize("NFKC", text).translate(_QUOTES)


# --------------------------------------------------------------------------------------------------------------
# Stopwords

# English function words: articles, pronouns, auxiliaries, prepositions, conjunctions, determiners, quantifiers and
# question words. They say little about what a sentence is about, so lexical comparisons (an answer sentence against
# its source, a claim against its evidence) leave them out. Negations are not here: they flip a meaning and are
# checked on their own (NEGATIONS).
STOPWORDS = frozenset("""
a an the of in on at to for and or but if then than so as by from with into onto over under about above below
after before between during since until while across around through upon within via per
is are was were be been being am do does did done doing has have had having will would shall should can could may
might must ought
it its it's this that these those there here that's there's what's their theirs they them he him his she her hers
we us our ours you your yours i me my mine
who whom whose which what when where why how whereas
also too very just only even such each every all any some both either other another more most much many few one
up out off again further once same own yet still already
somebody someone something anything yes
""".split())

NEGATIONS = frozenset("not no never none nor nothing nobody neither nowhere without".split())

# The short list the BM25 index drops (index/lexical.py). It is deliberately shorter than STOPWORDS (quantifiers and
# "one", "more", "same" can be what a keyword query is about) and part of every stored BM25 index: changing it
# changes what the indexes on disk mean, so it needs a rebuild of every collection's lexical index.
BM25_STOPWORDS = frozenset("""
a an and are as at be but by for from has have he her his i if in into is it its of on or our she so that
the their them then there these they this to was we were what when where which who why will with you your
do does did how not no can
""".split())

# Function words that can change what a QUESTION asks, so the answer cache must not ignore them: order and time
# (before / after / since / until / once / again / already / still / yet), quantity and degree (few / many / much /
# more / most / only / even / further / one), place and direction (above / below / over / under / between / up /
# out / off), contrast (while / whereas), independent possessives (hers / ours / theirs / yours). The wh-words are
# compared by the cache's own question-focus rule.
_ASKS_SOMETHING = frozenset("""
before after since until once again already still yet few many much more most only even further one
above below over under between up out off while whereas hers ours theirs yours
who whom whose when where why how
""".split())

# Words that phrase a request without naming its subject: "please tell me", "what is the name of", "roughly how",
# "what kind of", light verbs ("get", "make", "use") and "time(s)" ("what time", "how many times").
REQUEST_WORDS = frozenset("""
please kindly tell give show explain describe let know list summarise summarize define identify mention find
name named called call currently ever exactly approximately roughly nearly really kind sort type time times
apply applies applied need needs needed get gets got getting use uses used make makes made whats
""".split())

# For deciding whether two questions ask the same thing (app.cache): words that never change the question.
QUESTION_STOPWORDS = (STOPWORDS - _ASKS_SOMETHING) | REQUEST_WORDS


# --------------------------------------------------------------------------------------------------------------
# Stemming

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


def stem(word: str) -> str:
    """A light suffix stripper, so that forms of one word compare equal: plurals ("keepers" → "keeper",
    "ferries" → "ferry", "boxes" → "box"), -ing / -ed ("founded", "founding" → "found"), a final -e
    ("stones", "stone" → "ston"), doubled consonants ("stopped" → "stop") and common irregular verbs ("chose" →
    "choose", "built" → "build"). Casefolds; drops a possessive 's; words of three letters or fewer and words with
    digits or inner punctuation (KW-3, e.g) are only casefolded. Not a linguistic stemmer: the output is a key,
    not a word."""
    w = word.casefold()
    if w.endswith("'s"):
        w = w[:-2]
    w = _IRREGULAR.get(w, w)  # then on as the base form: "chose" and "choose" both end as "choos"
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("sses"):
        w = w[:-2]
    elif w.endswith("es") and w[-3] in "sxz" and len(w) > 4:
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is", "ous")):
        w = _IRREGULAR.get(w[:-1], w[:-1])  # "LEDs" is "LED"s: the same key as "LED" (which is also "led")
    if w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
    elif w.endswith("e") and len(w) > 4:
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]
    return w


# --------------------------------------------------------------------------------------------------------------
# Tokens and words

# a word, number or code: letters/digits joined by ' - . , : / (isn't, KW-3, 1,150, 07:30, 2.4, 24/7)
_TOKEN = re.compile(r"[^\W_]+(?:['\-.,:/][^\W_]+)*")
# the same without - and /: compounds and ranges fall apart into their words (second-order, 1867-1894)
_WORD = re.compile(r"[^\W_]+(?:['.,:][^\W_]+)*")
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_CONTRACTIONS = [(re.compile(r"\bcan't\b|\bcannot\b"), "can not"), (re.compile(r"\bwon't\b"), "will not"),
                 (re.compile(r"n't\b"), " not")]


@dataclass(frozen=True, slots=True)
class Token:
    """A word, number or code as written."""

    text: str  # NFKC, straight apostrophes, possessive 's removed ("Wren's" -> "Wren"); case kept
    low: str  # casefolded
    stem: str  # stem(text)
    start: bool  # the first word of a sentence: nothing but . ? ! ; : (or nothing at all) before it


def tokens(text: str) -> list[Token]:
    """Words, numbers and codes in order (see `Token`). A currency sign or a % is not part of a number."""
    text = normalize(text)
    out: list[Token] = []
    prev_end = 0
    for m in _TOKEN.finditer(text):
        raw = m.group(0)
        gap = text[prev_end:m.start()].rstrip()
        start = gap[-1] in ".?!;:" if gap else not out
        prev_end = m.end()
        if raw.lower().endswith("'s"):
            raw = raw[:-2]
        out.append(Token(raw, raw.casefold(), stem(raw), start))
    return out


def words(text: str) -> list[str]:
    """Lower-cased words and numbers for lexical comparison. NFKC and casefolded; "isn't" → "is", "not" and
    "can't" / "cannot" → "can", "not"; a possessive 's dropped; compounds split ("second-order" → "second",
    "order"; "1867-1894" → "1867", "1894"); numbers stay whole, thousands separators dropped ("1,200" → "1200";
    "3.5" and "07:30" as written)."""
    t = normalize(text or "").casefold()
    if "'" in t or "cannot" in t:
        for pattern, repl in _CONTRACTIONS:
            t = pattern.sub(repl, t)
    out = []
    for w in _WORD.findall(t):
        if w.endswith("'s"):
            w = w[:-2]
        if "," in w and _THOUSANDS.fullmatch(w):
            w = w.replace(",", "")
        out.append(w)
    return out


def word_spans(text: str) -> list[tuple[int, int]]:
    """Where the words of `text` stand, as (start, end) character offsets: the pieces `words` reads (before its
    normalisation), so a caller can mark words in the original text."""
    return [m.span() for m in _WORD.finditer(text or "")]


def content_words(text: str, *, stemmed: bool = False) -> list[str]:
    """The words of `text` that carry content, in order: `words` without `STOPWORDS`, `NEGATIONS` and single
    letters, cardinal number words as digits ("four" → "4", so they match a "4" elsewhere); with `stemmed`, each
    through `stem`."""
    out = []
    for w in words(text):
        if w in STOPWORDS or w in NEGATIONS or (len(w) == 1 and w.isalpha()):
            continue
        if w in _CARDINAL_DIGITS:
            w = _CARDINAL_DIGITS[w]
        out.append(stem(w) if stemmed else w)
    return out


# --------------------------------------------------------------------------------------------------------------
# Numbers

CARDINALS: dict[str, int] = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50,
    "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12,
}
# number words that often are not a count ("a single track", "half the harbour", "once a year" is, but rarely
# stated in digits)
MULTIPLIERS: dict[str, float] = {"once": 1, "twice": 2, "thrice": 3, "half": 0.5, "quarter": 0.25, "single": 1,
                                 "double": 2, "triple": 3, "couple": 2}
SCALES: dict[str, int] = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
ORDINALS: dict[str, int] = {
    "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
    "eleventh": 11, "twelfth": 12, "thirteenth": 13, "fourteenth": 14, "fifteenth": 15, "twentieth": 20,
    "thirtieth": 30, "hundredth": 100, "thousandth": 1000,
}  # not "first": it is far more often "earliest" than a number
_UNITS: dict[str, float] = {**CARDINALS, **MULTIPLIERS}
_CARDINAL_DIGITS = {w: str(v) for w, v in {**CARDINALS, **SCALES}.items() if w != "one"}
_ORDINAL_SUFFIX = ("st", "nd", "rd", "th")
_NUMERIC = re.compile(r"^(\d+(?:[.,:]\d+)*)([a-z°%]*)$")
_NUMERIC_RANGE = re.compile(r"^\d+(?:[.,:]\d+)*(?:[-/]\d+(?:[.,:]\d+)*)+$")
_DIGITS = re.compile(r"\d+(?:[.,:]\d+)*")


def _fmt(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:g}"


def canonical_number(num: str, suffix: str = "") -> tuple[str, bool]:
    """One spelling for a number written in digits, and whether it is an ordinal: '1,150' → '1150', '3.20' →
    '3.2', '3,5' → '3.5', '07:30' → '7:30' (a clock time), '2' + 'nd' → ('2', True), '1990' + 's' → '1990s'
    (a decade); other suffixes (units: '31' + 'm') are dropped."""
    if _THOUSANDS.fullmatch(num):
        num = num.replace(",", "")
    if ":" in num:
        value = ":".join(str(int(p)) for p in num.split(":") if p.isdigit())
    else:
        try:
            value = _fmt(float(num.replace(",", ".")) if num.count(",") == 1 else float(num))
        except ValueError:
            value = num
    if suffix in _ORDINAL_SUFFIX:
        return value, True
    if suffix == "s" and len(num) == 4:
        return value + "s", False
    return value, False


@dataclass(frozen=True, slots=True)
class Number:
    """A number stated in a text."""

    value: str  # canonical (see canonical_number); number words are added up: "one hundred and fifty" -> "150"
    positions: tuple[int, ...]  # the token positions it was read from
    ordinal: bool = False  # 2nd, second
    words: tuple[str, ...] = ()  # the number words it was written with; () when written in digits
    weak: bool = False  # a lone "one": often a pronoun or an article, not a count


def find_numbers(toks: Sequence[Token]) -> list[Number]:
    """The numbers in a token list: digits ('1,150', '3.2', '2nd', '1990s'), each end of a range ('1867-1894',
    '24/7', '2023-01-07'), ordinal words ('third') and runs of number words ('one hundred and fifty', 'twenty-one',
    'a dozen', 'twice'). Codes that mix letters and digits (KW-3) are names, not
    numbers."""
    found: list[Number] = []
    i = 0
    while i < len(toks):
        low = toks[i].low
        m = _NUMERIC.match(low)
        if m:
            value, ordinal = canonical_number(*m.groups())
            found.append(Number(value, (i,), ordinal))
            i += 1
            continue
        if _NUMERIC_RANGE.match(low):
            found.extend(Number(canonical_number(part)[0], (i,)) for part in re.split(r"[-/]", low))
            i += 1
            continue
        if low in ORDINALS:
            found.append(Number(str(ORDINALS[low]), (i,), True, (low,)))
            i += 1
            continue
        if all(p in _UNITS or p in SCALES for p in low.split("-")):
            total, current, j = 0.0, 0.0, i
            used: list[int] = []
            while j < len(toks):
                parts = toks[j].low.split("-")
                if toks[j].low == "and" and j > i and j + 1 < len(toks) and toks[j + 1].low in _UNITS:
                    j += 1
                    continue
                if not all(p in _UNITS or p in SCALES for p in parts):
                    break
                fits = True
                for p in parts:
                    if p in _UNITS:
                        small = current % 100
                        fits = j == i or small == 0 or (small % 10 == 0 and small >= 20 and _UNITS[p] < 10)
                    else:
                        fits = j == i or current > 0
                    if not fits:
                        break
                    if p in _UNITS:
                        current += _UNITS[p]
                    else:
                        current = max(current, 1) * SCALES[p]
                        if SCALES[p] >= 1000:
                            total, current = total + current, 0.0
                if not fits:
                    break
                used.append(j)
                j += 1
            found.append(Number(_fmt(total + current), tuple(used), False, tuple(toks[k].low for k in used),
                                weak=j == i + 1 and low == "one"))
            i = max(j, i + 1)
            continue
        i += 1
    return found


def numbers(text: str, *, spelled: bool = False) -> set[str]:
    """The numbers a text states, canonical so that two spellings of one value compare equal ("1,200" = "1200",
    "3.20" = "3.2", "07:30" = "7:30"; "14th" = "14", "1990s" is a decade): for checks that an answer's numbers
    appear in its sources. Codes contribute their digits (KW-3 → "3"), so a changed code number is noticed. With
    `spelled`, cardinal number words count too ("four" → "4", "one hundred" → "100"), but not a lone "one",
    ordinal words or words like "single" and "half"."""
    toks = tokens(text or "")
    out: set[str] = set()
    for n in find_numbers(toks):
        if not n.words:
            out.add(n.value)
        elif spelled and not n.weak and not n.ordinal and all(
                p in CARDINALS or p in SCALES for w in n.words for p in w.split("-")):
            out.add(n.value)
    for t in toks:
        if not _NUMERIC.match(t.low) and not _NUMERIC_RANGE.match(t.low) and any(c.isdigit() for c in t.low):
            out.update(canonical_number(d)[0] for d in _DIGITS.findall(t.low))
    return out


# --------------------------------------------------------------------------------------------------------------
# Sentences

# a sentence ends at . ! ? … (or CJK 。！？), with any closing quotes, brackets or emphasis, before white space
_STOP = re.compile(r"[.!?…。！？]+[\"'”’)\]»*_]*(?=\s)")
_LIST_ITEM = re.compile(r"\s*(?:[-*+•]|\d{1,3}[.)]|#{1,6})\s")
_LIST_NUMBER = re.compile(r"\s*(?:[-*+•]\s+)?\d{1,3}")
_ABBREVIATIONS = frozenset({
    "dr", "mr", "mrs", "ms", "cllr", "cllrs", "st", "capt", "prof", "e.g", "i.e", "etc", "approx", "vs", "cf", "jr",
    "sr", "inc", "ltd", "co", "mt", "rev", "gen", "col", "lt", "sgt", "ca", "al",
})
_ABBREVIATIONS_BEFORE_NUMBER = frozenset({"no", "nos", "fig", "figs", "vol", "p", "pp"})  # No. 5, fig. 2, p. 14
WRAP_MIN_CHARS = 60  # a line at least this long that does not end a sentence is taken as hard-wrapped


def _segments(text: str, paragraphs: bool) -> list[tuple[int, int]]:
    """Character spans of the runs of lines that may hold one sentence between them (see sentence_spans)."""
    segs: list[tuple[int, int]] = []
    start: int | None = None
    prev, prev_end, offset = "", 0, 0
    for line in text.split("\n"):
        line_start = offset
        offset += len(line) + 1
        s = line.strip()
        if not s:
            if start is not None:
                segs.append((start, prev_end))
            start, prev = None, ""
            continue
        if start is None:
            start = line_start
        else:
            new_item = bool(_LIST_ITEM.match(line))
            if paragraphs:
                joined = not new_item
            else:
                joined = (len(prev) >= WRAP_MIN_CHARS and not prev.endswith((".", "!", "?", ":", ";"))
                          and not new_item and not s.startswith("|"))
            if not joined:
                segs.append((start, prev_end))
                start = line_start
        prev, prev_end = s, line_start + len(line)
    if start is not None:
        segs.append((start, prev_end))
    return segs


def _ends_sentence(text: str, seg_start: int, stop: re.Match[str], nxt: int) -> bool:
    """Whether the stop `stop` (followed by white space, then the character at `nxt`) ends a sentence."""
    following = text[nxt]
    if following.islower():  # "3 p.m. on Monday", "e.g. the ferry"
        return False
    lo = max(seg_start, stop.start() - 16)  # a list number stands within a few characters of its line's start
    newline = text.rfind("\n", lo, stop.start())
    line_start = newline + 1 if newline >= 0 else lo if lo == seg_start else -1
    if line_start >= 0 and _LIST_NUMBER.fullmatch(text, line_start, stop.start()):  # "1. First item"
        return False
    if stop.group(0) != ".":
        return True
    lo = max(seg_start, stop.start() - 12)
    before = text[lo:stop.start()]
    cut = max(before.rfind(" "), before.rfind("\t"), before.rfind("\n"), before.rfind("("))
    if cut < 0 and lo > seg_start:
        return True  # a word longer than any abbreviation
    word = before[cut + 1:].lower()
    if word in _ABBREVIATIONS:
        return False
    return not (word in _ABBREVIATIONS_BEFORE_NUMBER and following.isdigit())


def sentence_spans(text: str, *, paragraphs: bool = False) -> list[tuple[int, int]]:
    """(start, end) character offsets of the sentences of `text`, white space excluded; `text[end:next_start]` is
    the separator, so a caller can rebuild the text around changed sentences.

    A sentence ends at . ! ? … 。！？ (with any closing quotes or brackets) before white space, unless the next word
    starts in lower case ("3 p.m. on Monday"), the stop follows a known abbreviation ("Dr.", "e.g.", "No. 5") or
    numbers a list item ("1. First"). Line breaks:

    - ``paragraphs=False`` (answers, sources, statements): a line is a unit, except that a long line that does not
      end a sentence continues on the next (hard-wrapped prose, PDF text); a list item, a table row or a heading
      always starts a new unit, and so does a blank line.
    - ``paragraphs=True`` (chunking documents): only a blank line or a list item / heading line starts a new unit;
      single line breaks inside a paragraph stay inside its sentences.

    Linear in the length of the text.
    """
    spans: list[tuple[int, int]] = []
    for seg_start, seg_end in _segments(text, paragraphs):
        pos = seg_start
        for m in _STOP.finditer(text, seg_start, seg_end):
            nxt = m.end()
            while nxt < seg_end and text[nxt].isspace():
                nxt += 1
            if nxt >= seg_end or not _ends_sentence(text, seg_start, m, nxt):
                continue
            spans.append((pos, m.end()))
            pos = nxt
        spans.append((pos, seg_end))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,3}[.)]|#{1,6})\s+")
_HAS_TEXT = re.compile(r"[^\W_]")


def plain_text(sentence: str) -> str:
    """A sentence without Markdown: list marker, emphasis, table pipes (a table row becomes its cells)."""
    s = _BULLET.sub("", sentence)
    s = s.replace("**", "").replace("__", "").replace("*", "")
    if s.startswith("|"):
        s = " ".join(c.strip() for c in s.strip("|").split("|") if c.strip() and not set(c.strip()) <= {"-", ":"})
    return s.strip()


def split_sentences(text: str, *, paragraphs: bool = False, markup: bool = False) -> list[str]:
    """The sentences of `text` (see `sentence_spans` for the rules and `paragraphs`). With `markup`, Markdown list
    markers, emphasis and table pipes are removed and units without a letter or digit (a table rule) dropped."""
    out = [text[a:b] for a, b in sentence_spans(text or "", paragraphs=paragraphs)]
    if markup:
        out = [p for p in map(plain_text, out) if _HAS_TEXT.search(p)]
    return out
