"""Plain text and Markdown loading, plus the text clean-up shared by every loader.

Decoding has to cope with whatever people drop into a folder: BOM-marked UTF-8/16/32, plain UTF-8, legacy
8-bit files (Windows-1252 is by far the most common), UTF-16 without a BOM, and binary files that merely
carry a text suffix. Cleaning makes sure nothing downstream (tokenizers, SQLite, JSON) ever sees NUL bytes,
control characters, lone surrogates, or pathological runs of combining marks.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import re
import unicodedata
import warnings
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from localrag.ingest.document import Kind, LoadedDocument, LoadError, Unit
from localrag.ingest.sections import HeadingPath

# A base character keeps at most this many combining marks: real scripts need 1-4; more is "Zalgo" text that
# only slows down normalization and tokenizers.
MAX_COMBINING_MARKS = 8
# Content whose share of control characters (other than tab/newline/CR/form feed) exceeds this is binary.
BINARY_CONTROL_RATIO = 0.05
# Share of NUL bytes above which a file without BOM is tried as UTF-16 (ASCII-range UTF-16 is ~50% NULs).
UTF16_NUL_RATIO = 0.2
# Leading indentation kept per line (code blocks, nested lists); longer runs are cut to this many spaces.
MAX_INDENT = 32

EMPTY_MESSAGE = "empty file: nothing to ingest"

# Order matters: the UTF-32 LE BOM starts with the UTF-16 LE BOM.
_BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]

# Well-known binary signatures, so the error can say what the file really is.
_MAGIC: list[tuple[bytes, str]] = [
    (b"%PDF-", "it is a PDF file; give it a .pdf suffix"),
    (b"PK\x03\x04", "it is a ZIP archive, e.g. .docx/.pptx/.xlsx/.odt; export it as PDF or text"),
    (b"\x1f\x8b", "it is gzip-compressed; decompress it first"),
    (b"\x89PNG", "it is a PNG image"),
    (b"\xff\xd8\xff", "it is a JPEG image"),
    (b"GIF8", "it is a GIF image"),
    (b"\x7fELF", "it is an executable"),
    (b"7z\xbc\xaf\x27\x1c", "it is a 7-Zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "it is an old Microsoft Office file; export it as PDF or text"),
]

# C0 controls except \t \n \f \r (kept: they are whitespace), DEL.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F])
# In decoded text additionally: C1 controls, lone surrogates, and U+FEFF (BOM / zero-width no-break space).
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufeff]")
_ANSI_ESCAPE_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")
# Runs to collapse: a space followed by more whitespace, or any other whitespace character (tab, NBSP...).
_INNER_SPACE_RE = re.compile(r"(?<=\S)(?: [^\S\n]+|[^\S\n ][^\S\n]*)")
_TRAILING_SPACE_RE = re.compile(r"[^\S\n]+(?=\n|\Z)")
_INDENT_RE = re.compile(r"^[^\S\n]+", re.MULTILINE)
_MANY_NEWLINES_RE = re.compile(r"\n{3,}")
# In cp1252 text, Cyrillic/Greek/etc. bytes become words made only of accented Latin letters.
_ACCENT_RUN_RE = re.compile("[\u00c0-\u00ff]{3,}")
_WORD_RE = re.compile(r"\w+")
# `_looks_western` judges a prefix of this many characters: enough to see the script, cheap on 100 MB files.
_WESTERN_SAMPLE_CHARS = 256 * 1024


@dataclass(slots=True)
class CleanStats:
    """What `clean_text` removed, summed over a document so that warnings are reported once, not per page."""

    nul: int = 0
    control: int = 0
    combining: int = 0

    def __iadd__(self, other: CleanStats) -> CleanStats:
        self.nul += other.nul
        self.control += other.control
        self.combining += other.combining
        return self

    def warnings(self) -> list[str]:
        out = []
        if self.nul:
            out.append(f"removed {self.nul} NUL byte(s) from the text")
        if self.control:
            out.append(f"removed {self.control} control character(s) from the text")
        if self.combining:
            out.append(
                f"removed {self.combining} excess combining mark(s) (more than {MAX_COMBINING_MARKS} on one "
                "character)"
            )
        return out


def _mark_ranges() -> list[tuple[int, int]]:
    """Code point ranges of Unicode category M (Mn, Mc, Me) in this Python's Unicode database."""
    ranges: list[tuple[int, int]] = []
    # Marks live in planes 0-1 and in plane 14 (variation selectors); scanning only those keeps this ~40 ms.
    for block in (range(0, 0x20000), range(0xE0000, 0xE1000)):
        start = None
        for cp in block:
            is_mark = unicodedata.category(chr(cp))[0] == "M"
            if is_mark and start is None:
                start = cp
            elif not is_mark and start is not None:
                ranges.append((start, cp - 1))
                start = None
        if start is not None:
            ranges.append((start, block.stop - 1))
    return ranges


def _char_class(ranges: list[tuple[int, int]]) -> str:
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges
    )


@lru_cache(maxsize=1)
def _combining_run_re() -> re.Pattern[str]:
    """A regex for runs of more than MAX_COMBINING_MARKS marks.

    The first character is matched with a BMP-only class (plus "any astral character"): a class holding the
    astral mark ranges makes `re` ~30x slower per position, which matters on a 5 MB file.
    """
    ranges = _mark_ranges()
    all_marks = _char_class(ranges)
    bmp_marks = _char_class([r for r in ranges if r[1] <= 0xFFFF])
    return re.compile(f"[{bmp_marks}\U00010000-\U0010ffff][{all_marks}]{{{MAX_COMBINING_MARKS},}}")


def _cap_combining(text: str) -> tuple[str, int]:
    if text.isascii():
        return text, 0
    removed = 0

    def cap(match: re.Match[str]) -> str:
        nonlocal removed
        run = match.group()
        head = "" if unicodedata.category(run[0])[0] == "M" else run[0]
        marks = run[len(head) :]
        if len(marks) <= MAX_COMBINING_MARKS:
            return run
        removed += len(marks) - MAX_COMBINING_MARKS
        return head + marks[:MAX_COMBINING_MARKS]

    return _combining_run_re().sub(cap, text), removed


def clean_text(text: str) -> tuple[str, CleanStats]:
    """Make extracted text safe and uniform for chunking and indexing.

    Removes NULs, control characters and lone surrogates; caps combining-mark floods *before* NFC (CPython's
    canonical reordering is quadratic on long mixed runs); applies NFC; unifies line ends; collapses runs of
    spaces inside a line while keeping (capped) indentation and paragraph breaks. Linear time.
    """
    stats = CleanStats()
    stats.nul = text.count("\x00")
    if stats.nul:
        text = text.replace("\x00", "")
    if "\x1b" in text:
        text = _ANSI_ESCAPE_RE.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n\n")
    text = text.replace("\u2028", "\n").replace("\u2029", "\n\n").replace("\x85", "\n")
    before = len(text)
    bom_like = text.count("\ufeff")  # invisible leftovers of editors: removed without a warning
    text = _CONTROL_RE.sub("", text)
    stats.control = before - len(text) - bom_like
    text, stats.combining = _cap_combining(text)
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    text = _INNER_SPACE_RE.sub(" ", text)
    text = _TRAILING_SPACE_RE.sub("", text)
    text = _INDENT_RE.sub(lambda m: " " * min(len(m.group().expandtabs(4)), MAX_INDENT), text)
    text = _MANY_NEWLINES_RE.sub("\n\n", text)
    return text.strip("\n"), stats


def _binary_error(detail: str) -> LoadError:
    return LoadError(f"not text: looks like binary data ({detail}); check that this is really a text file")


def _control_share(data: bytes) -> float:
    return (len(data) - len(data.translate(None, _CONTROL_BYTES))) / len(data)


def _guess_utf16(data: bytes) -> str | None:
    """UTF-16 without BOM: ASCII-range text has a NUL in every odd (LE) or even (BE) byte."""
    even, odd = data[0::2], data[1::2]
    if not even or not odd:
        return None
    even_nul, odd_nul = even.count(0) / len(even), odd.count(0) / len(odd)
    if odd_nul > 0.6 and even_nul < 0.1:
        return "utf-16-le"
    if even_nul > 0.6 and odd_nul < 0.1:
        return "utf-16-be"
    return None


def _guessed(encoding: str) -> str:
    return f"not UTF-8; encoding guessed as {encoding}: check accented letters, or save the file as UTF-8"


def _looks_western(text: str) -> bool:
    """Whether a cp1252 decoding is plausible: accented letters sit inside mostly-ASCII words.

    Text in other 8-bit code pages (KOI8-R, cp1251, ISO-8859-7...) decoded as cp1252 turns into whole words
    of accented Latin letters ("ðÒÉ×ÅÔ"), which this rejects.
    """
    text = text[:_WESTERN_SAMPLE_CHARS]
    letters = sum(1 for ch in text if ch.isalpha())
    non_ascii = sum(1 for ch in text if ord(ch) > 0x7F and ch.isalpha())
    if letters == 0 or non_ascii / letters > 0.3:
        return False
    words = max(1, len(_WORD_RE.findall(text)))
    return len(_ACCENT_RUN_RE.findall(text)) / words < 0.05


def decode_bytes(data: bytes) -> tuple[str, str, list[str]]:
    """Decode a text file's bytes: returns (text, encoding name, warnings), or raises LoadError.

    Order: BOM, magic numbers of binary formats, BOM-less UTF-16, strict UTF-8, then legacy 8-bit guessing
    (cp1252 when plausible, else charset_normalizer). A guessed encoding is reported as a warning, because
    a wrong guess silently garbles accented letters.
    """
    if not data.strip():
        raise LoadError(EMPTY_MESSAGE)
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                return body.decode(encoding), encoding, []
            except UnicodeDecodeError:
                text = body.decode(encoding, errors="replace")
                bad = text.count("\ufffd")
                return text, encoding, [f"{bad} invalid {encoding} byte sequence(s) replaced by U+FFFD"]
    for magic, what in _MAGIC:
        if data.startswith(magic):
            raise _binary_error(what)

    nul_share = data.count(0) / len(data)
    if nul_share > UTF16_NUL_RATIO:
        utf16 = _guess_utf16(data)
        if utf16 is not None:
            try:
                text = data.decode(utf16)
            except UnicodeDecodeError:
                pass
            else:
                share = len(_CONTROL_RE.findall(text)) / max(1, len(text))
                if share <= BINARY_CONTROL_RATIO:
                    return text, utf16, [f"no byte order mark; encoding guessed as {utf16.upper()}"]
        raise _binary_error(f"{nul_share:.0%} NUL bytes")

    share = _control_share(data)
    if share > BINARY_CONTROL_RATIO:
        raise _binary_error(f"{share:.0%} control bytes")
    try:
        return data.decode("utf-8"), "utf-8", []
    except UnicodeDecodeError:
        pass

    western: str | None
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and _looks_western(western):
        return western, "cp1252", [_guessed("cp1252 (Western European)")]
    import charset_normalizer  # only legacy-encoded files need it

    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise _binary_error("no text encoding fits the bytes")
    guessed = str(best)
    share = len(_CONTROL_RE.findall(guessed)) / max(1, len(guessed))
    if share > BINARY_CONTROL_RATIO:
        raise _binary_error(f"{share:.0%} control characters")
    return guessed, best.encoding, [_guessed(best.encoding)]


_ATX_HEADING_RE = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
_FENCE_RE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def split_markdown(text: str) -> list[Unit]:
    """One Unit per top-level section (the smallest ATX heading level used), labelled with its heading.

    Headings inside fenced code blocks are ignored. Text before the first heading is its own unit. Every heading
    (all levels) gives a section path, "Guide › Safety › Tides": a unit's `section` is the path at its first line,
    and the deeper headings inside it are its `section_starts`, so each chunk gets the path where it starts.
    """
    lines = text.split("\n")
    headings: list[tuple[int, int, str]] = []  # (line index, level, title)
    fence: str | None = None
    for i, line in enumerate(lines):
        if not line or line[0] not in " #`~":
            continue
        fence_match = _FENCE_RE.match(line)
        if fence_match:
            marker = fence_match.group(1)
            if fence is None:
                fence = marker
            elif marker[0] == fence[0] and len(marker) >= len(fence):
                fence = None
            continue
        if fence is None:
            heading = _ATX_HEADING_RE.match(line)
            if heading:
                headings.append((i, len(heading.group(1)), heading.group(2).strip()))
    if not headings:
        return [Unit(text=text)]
    line_starts = [0]
    for line in lines[:-1]:
        line_starts.append(line_starts[-1] + len(line) + 1)
    path = HeadingPath()
    paths = [(i, path.enter(level, _heading_plain(title))) for i, level, title in headings]  # in document order
    heading_lines = [i for i, _ in paths]

    def unit(first: int, end: int, label: str | None) -> Unit | None:
        joined = "\n".join(lines[first:end])
        body = joined.strip("\n")
        if not body.strip():
            return None
        base = line_starts[first] + len(joined) - len(joined.lstrip("\n"))  # where `body` starts in `text`
        made = Unit(text=body, label=label)
        lo, hi = bisect_left(heading_lines, first), bisect_left(heading_lines, end)
        made.section = paths[lo - 1][1] if lo else None  # in effect above the unit
        for i, p in paths[lo:hi]:
            offset = line_starts[i] - base
            if offset <= 0:
                made.section = p
            else:
                made.section_starts.append((offset, p))
        return made

    top = min(level for _, level, _ in headings)
    starts = [(i, title) for i, level, title in headings if level == top]
    units: list[Unit] = []
    if starts[0][0] > 0 and (preamble := unit(0, starts[0][0], None)) is not None:
        units.append(preamble)
    for n, (start, title) in enumerate(starts):
        end = starts[n + 1][0] if n + 1 < len(starts) else len(lines)
        if (section := unit(start, end, title or None)) is not None:
            units.append(section)
    return units


_MD_LINK_RE = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS_RE = re.compile(r"[*`]+|(?<!\w)_+|_+(?!\w)")


def _heading_plain(title: str) -> str:
    """A Markdown heading's words for its section path: links and images as their text, emphasis and code marks
    dropped ("**Safety** at [sea](x.md)" -> "Safety at sea")."""
    return _MD_EMPHASIS_RE.sub("", _MD_LINK_RE.sub(r"\1", title)).strip()


def load_text(data: bytes, kind: Kind) -> LoadedDocument:
    """Load a .txt or .md file: decode, clean, and return one unit (or one per Markdown section)."""
    text, encoding, warns = decode_bytes(data)
    text, stats = clean_text(text)
    warns.extend(stats.warnings())
    if not text.strip():
        raise LoadError(EMPTY_MESSAGE)
    meta = {"encoding": encoding}
    if kind is Kind.MARKDOWN:
        units = split_markdown(text)
        titled = [u.label for u in units if u.label]
        if titled:
            meta["title"] = titled[0]
    else:
        units = [Unit(text=text)]
    return LoadedDocument(kind=kind, units=units, warnings=warns, meta=meta)


class _CollectingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            with contextlib.suppress(Exception):
                self.messages.append(record.getMessage())


@contextlib.contextmanager
def captured_library_noise(*logger_names: str) -> Iterator[list[str]]:
    """Collect a library's logging warnings and Python warnings instead of letting them reach stderr.

    pypdf and rdflib log a line for every quirk they work around; in a batch ingest that is noise, so the
    loaders turn the collected list into at most one summary warning on the document.
    """
    handler = _CollectingHandler()
    loggers = [logging.getLogger(name) for name in logger_names]
    saved = [logger.propagate for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.propagate = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield handler.messages
            # Deprecation notices concern our use of the library, not the file.
            handler.messages.extend(
                str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)
            )
    finally:
        for logger, propagate in zip(loggers, saved, strict=True):
            logger.removeHandler(handler)
            logger.propagate = propagate


def summarize_noise(library: str, messages: list[str]) -> list[str]:
    """At most one warning that says a library had to work around problems, with the first message."""
    if not messages:
        return []
    first = messages[0].strip().splitlines()[0][:160] if messages[0].strip() else "?"
    more = f" and {len(messages) - 1} more" if len(messages) > 1 else ""
    return [f"{library} worked around problems in the file: '{first}'{more}"]
