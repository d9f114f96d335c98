"""Section paths: where a piece of text sits in its document's headings ("Guide › Safety › Tides").

Every kind with headings gives its units a section path (`Unit.section`, and `Unit.section_starts` for headings
that begin inside a unit's text); the chunker gives each chunk the path in effect at the chunk's first character
(`Unit.section_at`), so a chunk can be cited with where it sits in the document.

- HTML and DOCX loaders produce a flat list of blocks in reading order (`Block`); `blocks_to_units` starts a new
  unit at each heading.
- Markdown (ingest.text.split_markdown) keeps one unit per top-level section; the deeper headings inside it become
  `section_starts`.
- PDF outlines (bookmarks) give each page the path in effect there, and a path that starts inside a page where the
  page's text has the entry's title on a line of its own (ingest.loaders).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from localrag.ingest.document import Unit

SECTION_SEPARATOR = " › "
MAX_HEADING_CHARS = 200


def heading_title(text: str) -> str:
    """A heading's text as one line of at most MAX_HEADING_CHARS characters."""
    return " ".join(text.split())[:MAX_HEADING_CHARS]


class HeadingPath:
    """The headings above the current position. `enter(level, title)` closes the headings of the same or a deeper
    level (a `##` ends the previous `##` and its `###`s) and opens this one; an empty title opens nothing."""

    def __init__(self) -> None:
        self._open: list[tuple[int, str]] = []

    def enter(self, level: int, title: str) -> str | None:
        while self._open and self._open[-1][0] >= level:
            self._open.pop()
        title = heading_title(title)
        if title:
            self._open.append((level, title))
        return self.path

    @property
    def path(self) -> str | None:
        return SECTION_SEPARATOR.join(t for _, t in self._open) or None


@dataclass(slots=True)
class Block:
    text: str
    level: int = 0  # 1-6 for headings, 0 for body text


def blocks_to_units(blocks: list[Block]) -> list[Unit]:
    """One unit per heading (with the text up to the next heading); text before the first heading is its own
    unit without a section. Headings without any text under them still make a unit (the heading line)."""
    units: list[Unit] = []
    path = HeadingPath()
    lines: list[str] = []
    label: str | None = None
    section: str | None = None

    def flush() -> None:
        text = "\n\n".join(lines).strip()
        if text:
            units.append(Unit(text=text, label=label, section=section))

    for block in blocks:
        text = block.text.strip()
        if not text:
            continue
        if block.level:
            flush()
            title = heading_title(text)
            label, section = title, path.enter(block.level, title)
            lines = [title]
        else:
            lines.append(text)
    flush()
    return units


def clean_blocks_to_units(blocks: list[Block], warnings: list[str]) -> list[Unit]:
    """`blocks_to_units` over the blocks' text cleaned by ingest.text.clean_text; its warnings go to `warnings`."""
    from localrag.ingest.text import clean_text  # ingest.text imports this module (markdown sections)

    cleaned: list[Block] = []
    for block in blocks:
        text, stats = clean_text(block.text)
        warnings.extend(stats.warnings())
        cleaned.append(Block(text, block.level))
    return blocks_to_units(cleaned)


# --- PDF outlines ----------------------------------------------------------------------------------------------
MAX_OUTLINE_DEPTH = 32  # deeper nesting is a broken or hostile outline: its deeper entries are ignored
MAX_OUTLINE_ENTRIES = 10_000


@dataclass(slots=True)
class OutlineEntry:
    page: int  # 1-based
    title: str
    path: str


def flatten_outline(items: list, page_of, depth: int = 0, parents: tuple[str, ...] = (),  # noqa: ANN001
                    out: list[OutlineEntry] | None = None) -> list[OutlineEntry]:
    """pypdf's nested outline (an entry, then a list with its children) as entries in document order, each with
    its full path. `page_of(item)` is the entry's 0-based page or None; entries without a page or title are
    skipped (their children still count, under the parent path)."""
    out = [] if out is None else out
    if depth > MAX_OUTLINE_DEPTH:
        return out
    last = parents
    for item in items:
        if len(out) >= MAX_OUTLINE_ENTRIES:
            break
        if isinstance(item, list):  # the children of the preceding entry
            flatten_outline(item, page_of, depth + 1, last, out)
            continue
        title = heading_title(str(getattr(item, "title", "") or ""))
        if not title:
            last = parents
            continue
        last = (*parents, title)
        page = page_of(item)
        if page is not None and page >= 0:
            out.append(OutlineEntry(page + 1, title, SECTION_SEPARATOR.join(last)))
    return out


_NUMBERING = r"(?:[0-9IVXivx]{1,4}(?:\.[0-9]{1,3})*\.?[ \t]+|[A-Z]\.[ \t]+)?"


def title_offset(text: str, title: str) -> int | None:
    """Where `title` begins a line of `text` (case and white space ignored, a section number such as "2.3" may
    come first); None when it does not, e.g. a bookmark whose title is not printed on the page."""
    words = title.split()
    if not words:
        return None
    pattern = r"(?im)^[ \t]*" + _NUMBERING + r"\s+".join(map(re.escape, words)) + r"(?!\w)"
    m = re.search(pattern, text)
    return m.start() if m else None


def page_sections(entries: list[OutlineEntry], pages: dict[int, str]) -> dict[int, tuple[str | None, list]]:
    """For each page number in `pages` (its text), the section path in effect at its first character and the paths
    that start inside it as (offset, path). An entry starts where its title begins a line of its page's text, else
    at the top of its page."""
    by_page: dict[int, list[tuple[int, str]]] = {}
    for e in entries:
        text = pages.get(e.page)
        starts = by_page.setdefault(e.page, [])
        offset = (title_offset(text, e.title) or 0) if text is not None else 0
        # in outline order an entry never starts before the one listed above it on the same page (an entry whose
        # title is not found starts with the one above it)
        starts.append((max(offset, starts[-1][0] if starts else 0), e.path))
    out: dict[int, tuple[str | None, list]] = {}
    current: str | None = None
    for number in sorted(set(pages) | set(by_page)):
        at_top = current
        inside: list[tuple[int, str | None]] = []
        for offset, path in by_page.get(number, []):
            if offset == 0:
                at_top = path
            else:
                inside.append((offset, path))
            current = path
        if number in pages:
            out[number] = (at_top, inside)
    return out
