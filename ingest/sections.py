"""Blocks of a structured document (headings and paragraphs) to units with their section path.

HTML and DOCX loaders both produce a flat list of blocks in reading order; each heading starts a new unit whose
`label` is the heading and whose `section` is the path of headings above and including it ("Guide › Safety ›
Tides"), so a chunk can be cited with where it sits in the document.
"""

from __future__ import annotations

from dataclasses import dataclass

from localrag.ingest.document import Unit
from localrag.ingest.text import clean_text

SECTION_SEPARATOR = " › "
MAX_HEADING_CHARS = 200


@dataclass(slots=True)
class Block:
    text: str
    level: int = 0  # 1-6 for headings, 0 for body text


def blocks_to_units(blocks: list[Block]) -> list[Unit]:
    """One unit per heading (with the text up to the next heading); text before the first heading is its own
    unit without a section. Headings without any text under them still make a unit (the heading line)."""
    units: list[Unit] = []
    path: list[tuple[int, str]] = []
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
            title = " ".join(text.split())[:MAX_HEADING_CHARS]
            while path and path[-1][0] >= block.level:
                path.pop()
            path.append((block.level, title))
            label, section = title, SECTION_SEPARATOR.join(t for _, t in path)
            lines = [title]
        else:
            lines.append(text)
    flush()
    return units


def clean_blocks_to_units(blocks: list[Block], warnings: list[str]) -> list[Unit]:
    """`blocks_to_units` over the blocks' text cleaned by ingest.text.clean_text; its warnings go to `warnings`."""
    cleaned: list[Block] = []
    for block in blocks:
        text, stats = clean_text(block.text)
        warnings.extend(stats.warnings())
        cleaned.append(Block(text, block.level))
    return blocks_to_units(cleaned)
