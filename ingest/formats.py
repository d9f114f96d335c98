"""File suffixes and the document kind each one means: no parser imports, so the ingestion job and the loader
worker can decide what a file is without loading every parser library."""

from __future__ import annotations

from localrag.ingest.document import Kind

# RDF syntax per suffix (keys of RDF_FORMAT_NAMES).
RDF_FORMATS: dict[str, str] = {
    ".ttl": "turtle",
    ".turtle": "turtle",
    ".rdf": "xml",
    ".owl": "xml",
    ".xml": "xml",  # only when the content is RDF/XML (sniffed in load_rdf); other XML is refused clearly
    ".nt": "nt",
    ".nq": "nquads",
    ".trig": "trig",
    ".jsonld": "json-ld",
    ".json-ld": "json-ld",
    ".n3": "n3",
}
RDF_FORMAT_NAMES: dict[str, str] = {
    "turtle": "Turtle", "xml": "RDF/XML", "nt": "N-Triples", "nquads": "N-Quads", "trig": "TriG",
    "json-ld": "JSON-LD", "n3": "N3",
}

SUPPORTED_SUFFIXES: dict[str, Kind] = {
    ".pdf": Kind.PDF,
    ".txt": Kind.TEXT,
    ".text": Kind.TEXT,
    ".md": Kind.MARKDOWN,
    ".markdown": Kind.MARKDOWN,
    ".html": Kind.HTML,
    ".htm": Kind.HTML,
    ".xhtml": Kind.HTML,
    ".docx": Kind.DOCX,
    **{suffix: Kind.RDF for suffix in RDF_FORMATS},
}
