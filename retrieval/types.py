"""What a search returns: hits with per-stage scores, ranks and timings, and the notes of the run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

KINDS = ("pdf", "text", "markdown", "rdf", "html", "docx")


def cite_location(section: str | None = None, page: int | None = None, ocr: bool = False) -> str:
    """Where a passage sits in its document, as citations show it: "Guide › Safety › Tides, p. 4", with " (OCR)"
    when its text was read from a page image; "" when there is nothing to say. The one place this format lives:
    hits, answer sources and citations (and through their `location` in `to_dict`, the CLI and the UI) use it."""
    parts = [section] if section else []
    if page is not None:
        parts.append(f"p. {page}")
    where = ", ".join(parts)
    if ocr:
        where = f"{where} (OCR)" if where else "OCR"
    return where


class Located(Protocol):
    """Anything that sits somewhere in a document: a hit, an answer source, a citation."""

    @property
    def section(self) -> str | None: ...

    @property
    def page(self) -> int | None: ...

    @property
    def ocr(self) -> bool: ...

    @property
    def kg_uri(self) -> str | None: ...


@dataclass(frozen=True)
class Location:
    """Where a passage sits: its section path, page and OCR flag, or for a knowledge-graph unit its node URI. One
    type for hits, answer sources and citations, so that they all show a place the same way."""

    section: str | None = None
    page: int | None = None
    ocr: bool = False
    kg_uri: str | None = None

    @classmethod
    def of(cls, item: Located) -> Location:
        return cls(item.section, item.page, item.ocr, item.kg_uri)

    @property
    def text(self) -> str:
        """Section and page ("Guide › Safety › Tides, p. 4", see `cite_location`), else the node URI, else ""."""
        return cite_location(self.section, self.page, self.ocr) or self.kg_uri or ""


@dataclass
class Neighbour:
    """A knowledge-graph node linked to a hit's node (depth-1 expansion). It is context, not a search hit."""

    uri: str
    label: str | None
    relation: str  # predicate in words, e.g. "built by"
    direction: str  # "out": hit --relation--> neighbour; "in": neighbour --relation--> hit
    chunk_id: int | None
    text: str  # the neighbour's description and facts
    expansion: bool = True


@dataclass
class Hit:
    chunk_id: int
    text: str
    source: str
    kind: str
    page: int | None = None
    kg_uri: str | None = None
    label: str | None = None
    section: str | None = None  # heading path where the chunk starts, "Guide › Safety › Tides"
    ocr: bool = False  # the chunk's page was read by OCR
    score: float = 0.0  # the score the final order is by (rerank when reranked, else fused)
    relevance: float = 0.0  # normalized to [0, 1], comparable across queries: what `min_relevance` applies to
    scores: dict[str, float] = field(default_factory=dict)  # dense, lexical, dense_norm, lexical_norm, fused, rerank
    ranks: dict[str, int] = field(default_factory=dict)  # 1-based rank per stage
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (shared by the hits of one search)
    neighbours: list[Neighbour] = field(default_factory=list)

    @property
    def location(self) -> str:
        """Section and page ("Guide › Safety › Tides, p. 4"), else the node URI, for display: `Location.text`."""
        return Location.of(self).text

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["location"] = self.location
        return d


@dataclass
class Filters:
    """Restrict a search before ranking. `kinds`: document kinds (pdf, text, markdown, rdf, html, docx); `sources`: glob
    patterns matched against the stored path, its file name, or its tail (`notes/*.md`)."""

    kinds: list[str] | None = None
    sources: list[str] | None = None

    @classmethod
    def coerce(cls, value: Filters | dict[str, Any] | None) -> Filters:
        if value is None:
            return cls()
        if isinstance(value, Filters):
            f = value
        elif isinstance(value, dict):
            unknown = set(value) - {"kinds", "kind", "sources", "source"}
            if unknown:
                raise ValueError(f"unknown filter key(s) {sorted(unknown)}: use kinds and sources")
            kinds = value.get("kinds", value.get("kind"))
            sources = value.get("sources", value.get("source"))
            f = cls(
                kinds=[kinds] if isinstance(kinds, str) else kinds,
                sources=[sources] if isinstance(sources, str) else sources,
            )
        else:
            raise TypeError(f"filters must be a Filters or a dict, not {type(value).__name__}")
        if f.kinds:
            bad = [k for k in f.kinds if k not in KINDS]
            if bad:
                raise ValueError(f"unknown document kind(s) {bad}: use {', '.join(KINDS)}")
        return f

    @property
    def active(self) -> bool:
        return bool(self.kinds or self.sources)


class SearchResults(list[Hit]):
    """A list of hits, plus what the pipeline did: mode, fusion, reranker (None when none was active), notes
    (warnings a person should see), and timings per stage in seconds."""

    def __init__(self, hits: list[Hit] | None = None, **info: Any) -> None:
        super().__init__(hits or [])
        self.query: str = info.get("query", "")
        self.collection: str = info.get("collection", "")
        self.mode: str = info.get("mode", "hybrid")
        self.fusion: str | None = info.get("fusion")
        self.reranker: str | None = info.get("reranker")
        self.expanded: bool = info.get("expanded", False)
        self.corpus_version: int = info.get("corpus_version", 0)
        self.notes: list[str] = list(info.get("notes", []))
        self.timings: dict[str, float] = dict(info.get("timings", {}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query, "collection": self.collection, "mode": self.mode, "fusion": self.fusion,
            "reranker": self.reranker, "expanded": self.expanded, "corpus_version": self.corpus_version,
            "notes": self.notes, "timings": self.timings, "hits": [h.to_dict() for h in self],
        }
