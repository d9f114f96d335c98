"""Small dataclasses that flow from loaders to the chunker and the ingestion job.

Loaders run in a worker process (so a per-file time limit can kill them), hence everything here is
plain picklable data.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    PDF = "pdf"
    TEXT = "text"
    MARKDOWN = "markdown"
    RDF = "rdf"
    HTML = "html"
    DOCX = "docx"


@dataclass(slots=True)
class Unit:
    """A span of a document's text with its location: a PDF page, a whole text file, or one RDF node."""

    text: str
    page: int | None = None  # 1-based PDF page number
    kg_uri: str | None = None  # RDF node this unit describes
    label: str | None = None  # human label (RDF node label, section title)
    section: str | None = None  # heading path at the start of the text, "Guide › Safety › Tides" (ingest/sections.py)
    # sections that begin inside the text, as (character offset in `text`, heading path), in order: a chunk takes
    # the last one at or before its first character, else `section` (ingest.sections.section_at)
    section_starts: list[tuple[int, str | None]] = field(default_factory=list)
    ocr: bool = False  # the text was read from page images by OCR (Tesseract), not from the PDF's text layer

    def section_at(self, offset: int) -> str | None:
        """The section path in effect at character `offset` of `text`: the last heading that starts at or before it
        (a heading at `offset` itself counts: a chunk that starts with a heading is in that heading's section)."""
        i = bisect_right(self.section_starts, offset, key=lambda start: start[0])
        return self.section_starts[i - 1][1] if i else self.section


@dataclass(slots=True)
class KgNode:
    uri: str
    label: str | None
    types: list[str] = field(default_factory=list)  # type URIs
    description: str | None = None


@dataclass(slots=True)
class KgEdge:
    subject: str  # URI
    predicate: str  # URI
    object: str  # URI (when object_is_uri) or literal text
    object_is_uri: bool = True


@dataclass(slots=True)
class LoadedDocument:
    kind: Kind
    units: list[Unit]
    warnings: list[str] = field(default_factory=list)
    nodes: list[KgNode] = field(default_factory=list)
    edges: list[KgEdge] = field(default_factory=list)
    meta: dict[str, str] = field(default_factory=dict)  # e.g. title, encoding, page count


class LoadError(Exception):
    """A file that cannot be ingested. `str(err)` is the reason shown to a person, and says what to do."""


class UnsupportedType(LoadError):
    pass
