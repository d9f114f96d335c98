"""RDF loading (Turtle, N-Triples, N-Quads, TriG, RDF/XML, JSON-LD, N3) with input guards, and graph-to-text.

Parsing is done by pyoxigraph (Rust, streaming, linear time: a 2 MB literal on one line or a deeply nested
Turtle collection reads in milliseconds), and its terms become rdflib terms: rdflib stays the graph model.
rdflib's own parsers are used only for N3 files with formulas or rules, which pyoxigraph does not read; they
are quadratic on long lines, so that path keeps the line-length guard.

Guards that run on the raw bytes before any parser: XML with a DOCTYPE/ENTITY declaration is refused
(pyoxigraph expands internal entities: billion laughs), and JSON-LD is scanned for remote @context/@import
references and excessive nesting (pyoxigraph has no document loader, so it cannot fetch them either).

Each subject with a label or description becomes one Unit whose text reads like a short encyclopedia entry
(label, types, descriptions, one-hop facts as sentences), so that plain text retrieval finds graph content.
A named node that has facts but no label or description gets a unit too, its URI's local name standing for
the label.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyoxigraph as ox
from rdflib import RDF, RDFS, XSD, BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DC, DCTERMS, FOAF, OWL, SKOS
from rdflib.term import Node

from localrag.ingest.document import KgEdge, KgNode, Kind, LoadedDocument, LoadError, Unit
from localrag.ingest.formats import RDF_FORMAT_NAMES, RDF_FORMATS
from localrag.ingest.text import EMPTY_MESSAGE, CleanStats, captured_library_noise, clean_text, summarize_noise

FORMAT_NAMES = RDF_FORMAT_NAMES
OX_FORMATS: dict[str, ox.RdfFormat] = {
    "turtle": ox.RdfFormat.TURTLE,
    "xml": ox.RdfFormat.RDF_XML,
    "nt": ox.RdfFormat.N_TRIPLES,
    "nquads": ox.RdfFormat.N_QUADS,
    "trig": ox.RdfFormat.TRIG,
    "json-ld": ox.RdfFormat.JSON_LD,
    "n3": ox.RdfFormat.N3,
}
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"

# Only for the rdflib fallback (N3 with formulas): rdflib's line reader is quadratic in line length
# (2 MB line: ~20 s); 256 KB reads in ~0.25 s. pyoxigraph has no such limit.
MAX_RDF_LINE_BYTES = 256 * 1024
# Checked on the parsed JSON before rdflib's recursive JSON-LD processing sees it.
MAX_JSONLD_DEPTH = 200
# One node's text lists at most this many facts; the rest stay in `edges`.
MAX_FACTS_PER_NODE = 50
# Literals quoted inside fact sentences are shortened to this many characters.
MAX_FACT_LITERAL_CHARS = 300
# Items shown for an RDF list or an unlabelled blank node inside a fact.
MAX_INLINE_ITEMS = 10

SDO_HTTP = Namespace("http://schema.org/")
SDO_HTTPS = Namespace("https://schema.org/")

# Label candidates, best first.
LABEL_PREDICATES: tuple[URIRef, ...] = (
    SKOS.prefLabel,
    RDFS.label,
    SDO_HTTPS.name,
    SDO_HTTP.name,
    FOAF.name,
    DCTERMS.title,
    DC.title,
)
ALT_LABEL_PREDICATES: tuple[URIRef, ...] = (SKOS.altLabel,)
DESCRIPTION_PREDICATES: tuple[URIRef, ...] = (
    DCTERMS.description,
    DC.description,
    SKOS.definition,
    SDO_HTTPS.description,
    SDO_HTTP.description,
    RDFS.comment,
)
TEXT_PREDICATES = frozenset(LABEL_PREDICATES + ALT_LABEL_PREDICATES + DESCRIPTION_PREDICATES)
# Types that say nothing to a reader.
IGNORED_TYPES = frozenset({OWL.NamedIndividual, OWL.Thing, RDFS.Resource})
RDF_TYPE, RDF_FIRST, RDF_REST, RDF_NIL = RDF.type, RDF.first, RDF.rest, RDF.nil

_DTD_RE = re.compile(rb"<!\s*(?:doctype|entity)", re.IGNORECASE)
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_AUXILIARIES = frozenset({"is", "was", "are", "were", "has", "had", "have", "can", "does", "did", "will"})
_PREPOSITIONS = frozenset(
    {"by", "of", "in", "at", "on", "to", "for", "from", "with", "as", "into", "near", "about", "under"}
)
_IRREGULAR_PARTICIPLES = frozenset(
    {"built", "made", "written", "known", "born", "held", "drawn", "done", "given", "taken", "led", "kept",
     "run", "shown", "sung", "told", "found", "sold", "paid", "won", "begun", "grown", "thrown", "seen"}
)


def _remote_context_message(ref: str) -> str:
    return (
        f"JSON-LD refers to a remote @context ({ref[:200]}); localrag never fetches from the network: "
        "inline the context in the file"
    )


def _human_size(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n // 1024} KB"
    return f"{n} bytes"


def _check_line_lengths(data: bytes) -> None:
    """Reject lines rdflib would read in quadratic time, before it starts (rdflib fallback only)."""
    if len(data) <= MAX_RDF_LINE_BYTES:
        return
    for number, line in enumerate(data.split(b"\n"), start=1):
        if len(line) > MAX_RDF_LINE_BYTES:
            raise LoadError(
                f"line {number} is {_human_size(len(line))} long (limit {_human_size(MAX_RDF_LINE_BYTES)}): "
                "rdflib reads such lines too slowly, and N3 with formulas needs rdflib; put long texts in a "
                ".txt/.md file"
            )


def _has_dtd(data: bytes) -> bool:
    """Whether XML bytes declare a DOCTYPE or ENTITY, also when the file is UTF-16/32 encoded."""
    if _DTD_RE.search(data):
        return True
    if b"\x00" in data[:1024]:
        for encoding in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"):
            decoded = data.decode(encoding, errors="ignore").encode("utf-8", errors="ignore")
            if _DTD_RE.search(decoded):
                return True
    return False


def _check_jsonld(doc: Any) -> None:
    """Iteratively check nesting depth and find every context reference before rdflib could follow it."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_JSONLD_DEPTH:
            raise LoadError(f"JSON-LD nested too deeply (more than {MAX_JSONLD_DEPTH} levels)")
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "@context":
                    refs = [item] if not isinstance(item, list) else item
                    for ref in refs:
                        if isinstance(ref, str):
                            raise LoadError(_remote_context_message(ref))
                elif key == "@import" and isinstance(item, str):
                    raise LoadError(_remote_context_message(item))
                if isinstance(item, dict | list):
                    stack.append((item, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, depth + 1) for item in value if isinstance(item, dict | list))


# --- sniffing ----------------------------------------------------------------------------------------------

_XML_DECL_OR_MISC_RE = re.compile(rb"\s*(?:<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>\[]*(?:\[.*?\])?\s*>|\s+)*", re.DOTALL)
_ROOT_TAG_RE = re.compile(rb"<([A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?)([^<>]*)>", re.DOTALL)
_JSON_START_RE = re.compile(rb'(?:\[\s*)?\{\s*(?:"|\})')  # '{"' or '[{"': TriG/N3 braces hold IRIs, not strings
_TURTLE_START_RE = re.compile(rb"\s*(?:@prefix|@base|prefix\s|base\s)", re.IGNORECASE)
_BINARY_KINDS: list[tuple[bytes, str, str]] = [
    (b"%PDF-", "a PDF file", "give it a .pdf suffix"),
    (b"PK\x03\x04", "a ZIP archive (e.g. .docx/.xlsx/.odt)", "give it its real suffix"),
    (b"\x1f\x8b", "gzip-compressed", "decompress it first"),
    (b"\x89PNG", "a PNG image", "images are not ingested"),
    (b"\xff\xd8\xff", "a JPEG image", "images are not ingested"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Microsoft Office file", "export it as PDF or text"),
]
_BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]


def _to_utf8(data: bytes) -> bytes:
    """RDF parsers read UTF-8: drop a UTF-8 BOM and transcode UTF-16/32 files that carry a BOM."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            if encoding == "utf-8":
                return body
            try:
                text = body.decode(encoding)
            except UnicodeDecodeError:
                raise LoadError(f"not valid {encoding.upper()} text (it starts with a {encoding} BOM)") from None
            if text.lstrip().startswith("<?xml"):  # the declaration would still name the old encoding
                text = re.sub(r"""^(\s*<\?xml[^>]*?)\s+encoding=["'][^"']*["']""", r"\1", text, count=1)
            return text.encode("utf-8")
    return data


def xml_root(data: bytes) -> tuple[str, str] | None:
    """(qualified name, attributes text) of the root element of XML bytes, or None when it is not XML."""
    head = data[: 64 * 1024]
    misc = _XML_DECL_OR_MISC_RE.match(head)
    rest = head[misc.end() if misc else 0 :]
    if not rest.startswith(b"<"):
        return None
    tag = _ROOT_TAG_RE.match(rest)
    if tag is None:
        return None
    name = tag.group(1).decode("ascii", errors="replace")
    if ":" in name and name.split(":", 1)[0].lower() in {"http", "https", "urn", "file", "ftp", "mailto", "tag"}:
        return None  # an IRI in angle brackets: N-Triples/Turtle
    attrs = tag.group(2).decode("utf-8", errors="replace")
    if not head.lstrip().startswith((b"<?xml", b"<!")) and "xmlns" not in attrs:
        return None  # '<x> <y> <z> .' is N-Triples, not an XML element
    return name, attrs


def sniff_rdf(data: bytes) -> str | None:
    """The RDF syntax the content shows (a key of FORMAT_NAMES), or None when it cannot tell.

    Raises LoadError when the content is clearly something else: a binary format, an HTML page, XML that is
    not RDF/XML.
    """
    for magic, what, todo in _BINARY_KINDS:
        if data.startswith(magic):
            raise LoadError(f"the content is {what}, not RDF: {todo}")
    stripped = data.lstrip()
    lowered = stripped[:512].lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        raise LoadError("the content is an HTML page, not RDF (a saved web page?): give it a .html suffix")
    root = xml_root(data)
    if root is not None:
        name, attrs = root
        local = name.split(":")[-1]
        if local == "RDF" or (RDF_NS in attrs and local == "Description"):
            return "xml"
        if local.lower() == "html":
            raise LoadError("the content is an (X)HTML page, not RDF: give it a .html suffix")
        if local == "Ontology" and "http://www.w3.org/2002/07/owl#" in attrs:
            raise LoadError(
                "OWL/XML is not supported (root element <Ontology>): save the ontology as RDF/XML or Turtle "
                "(e.g. in Protégé: File › Save as)"
            )
        raise LoadError(
            f"XML, but not RDF/XML (the root element is <{name[:80]}>, not <rdf:RDF>): only RDF/XML is "
            "ingested from XML files; export the content as text or PDF"
        )
    if _JSON_START_RE.match(stripped[:256]):
        return "json-ld"
    if _TURTLE_START_RE.match(stripped[:256]):
        return "turtle"
    return None


def _compatible(declared: str, sniffed: str | None) -> bool:
    """Whether content of syntax `sniffed` is readable with the parser for `declared`."""
    if sniffed is None or sniffed == declared:
        return True
    turtle_family = {"turtle", "trig", "n3"}
    return declared in turtle_family and sniffed == "turtle"


# --- parsing -------------------------------------------------------------------------------------------

XSD_STRING = str(XSD.string)
Triple = tuple[Node, Node, Node]


class _TermConverter:
    """pyoxigraph terms to rdflib terms, IRIs interned (predicates and types repeat on every line)."""

    def __init__(self) -> None:
        self.iris: dict[str, URIRef] = {}
        self.bnodes: dict[str, BNode] = {}

    def __call__(self, term: object) -> Node | None:
        kind = type(term)
        if kind is ox.NamedNode:
            value = term.value  # type: ignore[attr-defined]
            node = self.iris.get(value)
            if node is None:
                node = self.iris[value] = URIRef(value)
            return node
        if kind is ox.Literal:
            value, language = term.value, term.language  # type: ignore[attr-defined]
            if language:
                return Literal(value, lang=language)
            datatype = term.datatype.value  # type: ignore[attr-defined]
            if datatype == XSD_STRING:
                return Literal(value)
            iri = self.iris.get(datatype)
            if iri is None:
                iri = self.iris[datatype] = URIRef(datatype)
            return Literal(value, datatype=iri)
        if kind is ox.BlankNode:
            value = term.value  # type: ignore[attr-defined]
            blank = self.bnodes.get(value)
            if blank is None:
                blank = self.bnodes[value] = BNode(value)
            return blank
        return None  # RDF-star quoted triples: not a node a reader can use


def _syntax_error(err: SyntaxError, name: str, data: bytes) -> LoadError:
    message = str(err.msg if getattr(err, "msg", None) else err).strip()
    why = message.split(": ", 1)[1] if message.startswith("Parser error at line") and ": " in message else message
    why = why.splitlines()[0][:200] if why else "invalid syntax"
    line, column = getattr(err, "lineno", None), getattr(err, "offset", None)
    if line is None and name == "RDF/XML":
        line, column = _xml_error_position(data)
    if line is None:
        return LoadError(f"{name} syntax error: {why}")
    where = f" (column {column})" if column else ""
    return LoadError(f"{name} syntax error at line {line}: {why}{where}")


def _xml_error_position(data: bytes) -> tuple[int | None, int | None]:
    """Where XML stops being well-formed (expat, which never resolves external entities); (None, None) when
    it is well-formed and only its RDF structure is wrong."""
    import xml.parsers.expat

    parser = xml.parsers.expat.ParserCreate()
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as err:
        return err.lineno, err.offset + 1
    return None, None


def _ox_triples(data: bytes, fmt: str, base: str, convert: _TermConverter) -> Iterator[Triple]:
    for quad in ox.parse(data, format=OX_FORMATS[fmt], base_iri=base):
        s, p, o = convert(quad.subject), convert(quad.predicate), convert(quad.object)
        if s is not None and p is not None and o is not None:
            yield s, p, o


def _rdflib_n3(data: bytes, base: str) -> list[Triple]:
    """N3 with formulas/rules, which pyoxigraph does not read: rdflib, behind the line-length guard."""
    from rdflib.plugins.parsers.notation3 import BadSyntax

    _check_line_lengths(data)
    graph = Graph()
    try:
        graph.parse(data=data, format="n3", publicID=base)
    except BadSyntax as err:
        why = getattr(err, "_why", None) or str(err).splitlines()[-1]
        raise LoadError(f"N3 syntax error at line {err.lines + 1}: {why}") from None
    return list(graph)


def parse_rdf(data: bytes, fmt: str, base: str) -> tuple[list[Triple], list[str]]:
    """Guard the bytes, then parse them with pyoxigraph; returns the distinct triples (rdflib terms, in file
    order, named graphs merged into one) and library warnings.

    Raises LoadError with a line number where the parser gives one.
    """
    name = FORMAT_NAMES[fmt]
    data = _to_utf8(data)
    if not data.strip():
        raise LoadError(EMPTY_MESSAGE)
    if (fmt == "xml" or data.lstrip().startswith(b"<?xml")) and _has_dtd(data):
        raise LoadError(
            f"{name} with DOCTYPE/ENTITY declarations is rejected (entity expansion and local-file "
            "reads are unsafe); remove the DTD"
        )
    if fmt == "xml" and not data.lstrip().startswith(b"<"):
        raise LoadError("not RDF/XML: the file does not start with '<' (if it is Turtle, rename it to .ttl)")
    if fmt == "json-ld":
        _check_jsonld_bytes(data)
    convert = _TermConverter()
    with captured_library_noise("rdflib") as noise:
        try:
            triples = list(dict.fromkeys(_ox_triples(data, fmt, base, convert)))
        except SyntaxError as err:
            if fmt == "n3" and "not allowed in regular RDF" in str(err):
                triples = _rdflib_n3(data, base)
            elif fmt == "json-ld" and "remote context" in str(err).lower():  # missed by the scan: still refused
                raise LoadError(
                    "JSON-LD refers to a remote @context; localrag never fetches from the network: inline the "
                    "context in the file"
                ) from None
            else:
                raise _syntax_error(err, name, data) from None
        except LoadError:
            raise
        except RecursionError:
            raise LoadError(f"{name} nested too deeply to read") from None
        except Exception as err:  # the parser's other failures (I/O-like errors, ValueError)
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise LoadError(f"could not parse {name}: {detail}") from None
    return triples, summarize_noise("rdflib", noise)


def _check_jsonld_bytes(data: bytes) -> None:
    """JSON syntax, nesting depth and context references, checked before the JSON-LD processor runs."""
    try:
        doc = json.loads(data)
    except RecursionError:
        raise LoadError(f"JSON-LD nested too deeply (more than {MAX_JSONLD_DEPTH} levels)") from None
    except json.JSONDecodeError as err:
        raise LoadError(f"not valid JSON-LD: line {err.lineno} column {err.colno}: {err.msg}") from None
    except UnicodeDecodeError:
        raise LoadError("not valid JSON-LD: the file is not UTF-8 text; save it as UTF-8") from None
    _check_jsonld(doc)

def _local_name(uri: str) -> str:
    """The last path/fragment segment of a URI, URL-decoded, underscores as spaces."""
    trimmed = uri.rstrip("/#")
    name = re.split(r"[#/:]", trimmed)[-1] if trimmed else uri
    return unquote(name).replace("_", " ").strip() or uri


def _split_words(name: str) -> str:
    """'builtBy' -> 'built By'; 'date-of-birth' -> 'date of birth'; 'ISBNCode' -> 'ISBN Code'."""
    return " ".join(_CAMEL_RE.sub(" ", name.replace("-", " ").replace("_", " ")).split())


def _lower_words(phrase: str) -> str:
    """Lower-case a phrase but keep acronyms: 'ISBN Code' -> 'ISBN code'."""
    return " ".join(w if len(w) > 1 and w.isupper() else w.lower() for w in phrase.split())


def _verb_phrase(phrase: str) -> str:
    """Turn a predicate name into something that reads as a verb: 'built by' -> 'was built by'."""
    words = phrase.split()
    if not words:
        return phrase
    first, last = words[0].lower(), words[-1].lower()
    if first in _AUXILIARIES:
        return phrase
    if first.endswith("s") and not first.endswith(("ss", "us", "is")):
        return phrase  # 'knows', 'contains', 'links to', 'belongs to'
    if last in _PREPOSITIONS:  # 'located in', 'built by', 'near'
        if first.endswith("ed") or first in _IRREGULAR_PARTICIPLES:
            return ("was " if last == "by" else "is ") + phrase
        return "is " + phrase
    return "has " + phrase


def _term_key(term: Node) -> str:
    if isinstance(term, BNode):
        return "[]"
    return term.n3() if hasattr(term, "n3") else str(term)


def _preferred(literals: Iterable[Literal]) -> list[Literal]:
    """Language-less or English literals when there are any, else all; sorted for a stable choice."""
    items = list(literals)
    english = [lit for lit in items if lit.language is None or lit.language.lower().split("-")[0] == "en"]
    chosen = english or items
    return sorted(chosen, key=lambda lit: (lit.language is not None, lit.language or "", str(lit)))


class _GraphText:
    """Turns triples of rdflib terms (an rdflib Graph, or parse_rdf's list) into units, nodes and edges.

    The graph is read once into plain adjacency lists: rdflib's store lookups cost microseconds each and
    this code does several per node, which made text building slower than parsing on large graphs.
    """

    def __init__(self, graph: Iterable[Triple], doc_id: str) -> None:
        self.doc_id = doc_id
        self.out: dict[Node, list[tuple[Node, Node]]] = {}
        self.inc: dict[Node, list[tuple[Node, Node]]] = {}  # only for blank nodes (their ids need it)
        for s, p, o in graph:
            self.out.setdefault(s, []).append((p, o))
            if isinstance(o, BNode):
                self.inc.setdefault(o, []).append((s, p))
        self.bnode_ids: dict[BNode, str] = {}
        self.label_cache: dict[Node, str | None] = {}
        self.text_cache: dict[Node, dict[Node, list[Literal]]] = {}
        self.capped_nodes = 0
        self.unlabelled = 0  # named nodes with facts but no label or description
        self.stats = CleanStats()

    def assign_bnode_ids(self) -> None:
        """Name blank nodes by what surrounds them, so the same bytes give the same ids in every process.

        rdflib's blank node labels are random and its iteration order varies with PYTHONHASHSEED, so neither
        can be used. The id is a hash of the node's outgoing and incoming triples (other blank nodes as
        '[]'), prefixed with the document hash so that ids never collide across documents. Blank nodes
        with equal signatures are interchangeable; they get -2, -3... suffixes.
        """
        bnodes = {n for n in (*self.out, *self.inc) if isinstance(n, BNode)}
        signatures: dict[BNode, str] = {}
        for node in bnodes:
            out = sorted(f"{_term_key(p)} {_term_key(o)}" for p, o in self.out.get(node, ()))
            inc = sorted(f"{_term_key(s)} {_term_key(p)}" for s, p in self.inc.get(node, ()))
            text = "\n".join([*out, "|", *inc]).encode("utf-8", errors="surrogatepass")
            signatures[node] = hashlib.sha1(text, usedforsecurity=False).hexdigest()[:12]
        counts: dict[str, int] = {}
        for node in sorted(bnodes, key=signatures.__getitem__):
            signature = signatures[node]
            counts[signature] = counts.get(signature, 0) + 1
            suffix = f"-{counts[signature]}" if counts[signature] > 1 else ""
            self.bnode_ids[node] = f"_:{self.doc_id}_{signature}{suffix}"

    def node_id(self, node: Node) -> str:
        """URIs as they are; blank nodes by their content-based id (see assign_bnode_ids)."""
        if isinstance(node, BNode):
            return self.bnode_ids[node]
        return str(node)

    def value(self, node: Node, predicate: Node) -> Node | None:
        return next((o for p, o in self.out.get(node, ()) if p == predicate), None)

    def text_literals(self, node: Node) -> dict[Node, list[Literal]]:
        """A node's label/description literals by predicate."""
        found = self.text_cache.get(node)
        if found is None:
            found = {}
            for p, o in self.out.get(node, ()):
                if p in TEXT_PREDICATES and isinstance(o, Literal) and str(o).strip():
                    found.setdefault(p, []).append(o)
            self.text_cache[node] = found
        return found

    def literals(self, node: Node, predicates: Iterable[URIRef]) -> list[Literal]:
        """Literals of the given predicates, in predicate order, preferred language first."""
        by_predicate = self.text_literals(node)
        out: list[Literal] = []
        for predicate in predicates:
            if predicate in by_predicate:
                out.extend(_preferred(by_predicate[predicate]))
        return out

    def clean(self, text: str) -> str:
        cleaned, stats = clean_text(text)
        self.stats += stats
        return cleaned

    def label(self, node: Node) -> str | None:
        if node not in self.label_cache:
            found = self.literals(node, LABEL_PREDICATES) or self.literals(node, ALT_LABEL_PREDICATES)
            self.label_cache[node] = " ".join(self.clean(str(found[0])).split()) if found else None
        return self.label_cache[node]

    def name(self, node: Node) -> str:
        """How a node is called in a sentence: its label, else its local name."""
        label = self.label(node)
        if label:
            return label
        return _local_name(str(node)) if isinstance(node, URIRef) else "Unnamed item"

    def predicate_phrase(self, predicate: Node) -> str:
        label = self.label(predicate)
        phrase = label if label else _lower_words(_split_words(_local_name(str(predicate))))
        return _verb_phrase(phrase)

    def type_name(self, node: Node) -> str:
        label = self.label(node)
        return label if label else _split_words(_local_name(str(node)))

    def literal_text(self, literal: Literal) -> str:
        text = " ".join(self.clean(str(literal)).split())
        if len(text) > MAX_FACT_LITERAL_CHARS:
            text = text[: MAX_FACT_LITERAL_CHARS - 1].rstrip() + "…"
        return text

    def object_text(self, obj: Node) -> str | None:
        """Text for a fact's object; None when there is nothing a reader could use."""
        if isinstance(obj, Literal):
            return self.literal_text(obj) or None
        label = self.label(obj)
        if label:
            return label
        if isinstance(obj, URIRef):
            return _local_name(str(obj)) if obj != RDF_NIL else None
        if isinstance(obj, BNode):
            return self.inline_bnode(obj)
        return None

    def list_items(self, node: Node) -> list[Node]:
        """The first MAX_INLINE_ITEMS + 1 items of an RDF list (stops at cycles)."""
        items: list[Node] = []
        seen: set[Node] = set()
        current: Node | None = node
        while current is not None and current != RDF_NIL and current not in seen:
            seen.add(current)
            first = self.value(current, RDF_FIRST)
            if first is not None:
                items.append(first)
                if len(items) > MAX_INLINE_ITEMS:
                    break
            current = self.value(current, RDF_REST)
        return items

    def inline_bnode(self, node: BNode) -> str | None:
        """An unlabelled blank node, shown inline: an RDF list as its items, else its literal properties."""
        if self.value(node, RDF_FIRST) is not None:
            items = self.list_items(node)
            shown = [
                self.literal_text(i) if isinstance(i, Literal) else self.label(i) or _local_name(str(i))
                for i in items[:MAX_INLINE_ITEMS]
                if not isinstance(i, BNode)
            ]
            if len(items) > MAX_INLINE_ITEMS:
                shown.append("…")
            return ", ".join(shown) or None
        parts = []
        for p, o in self.out.get(node, [])[:MAX_INLINE_ITEMS]:
            if isinstance(o, Literal) and p != RDF_TYPE and str(o).strip():
                parts.append(f"{_lower_words(_split_words(_local_name(str(p))))}: {self.literal_text(o)}")
        return "(" + "; ".join(sorted(parts)) + ")" if parts else None

    def facts(self, subject: Node, name: str) -> list[str]:
        by_predicate: dict[Node, list[Node]] = {}
        for p, o in self.out.get(subject, ()):
            if p == RDF_TYPE or p in TEXT_PREDICATES or not isinstance(p, URIRef):
                continue
            by_predicate.setdefault(p, []).append(o)
        sentences: list[str] = []
        for predicate in sorted(by_predicate, key=str):
            objects = by_predicate[predicate]
            literals = [o for o in objects if isinstance(o, Literal)]
            kept = _preferred(literals) + [o for o in objects if not isinstance(o, Literal)]
            phrase = self.predicate_phrase(predicate)
            texts = sorted({t for t in (self.object_text(o) for o in kept) if t})
            sentences.extend(f"{name} {phrase} {t}." for t in texts)
        if len(sentences) > MAX_FACTS_PER_NODE:
            self.capped_nodes += 1
            sentences = sentences[:MAX_FACTS_PER_NODE]
        return sentences

    def long_texts(self, subject: Node, name: str) -> list[str]:
        """Literals too long to quote in a fact sentence (an abstract, a full text), in full, each as its own
        paragraph after a heading line, so that every part of them is searchable."""
        by_predicate: dict[Node, list[Literal]] = {}
        for p, o in self.out.get(subject, ()):
            if isinstance(p, URIRef) and p not in TEXT_PREDICATES and isinstance(o, Literal):
                by_predicate.setdefault(p, []).append(o)
        out: list[str] = []
        for predicate in sorted(by_predicate, key=str):
            for literal in _preferred(by_predicate[predicate]):
                if len(literal) <= MAX_FACT_LITERAL_CHARS:
                    continue
                text = self.clean(str(literal)).strip()
                if text:
                    heading = _split_words(_local_name(str(predicate))).capitalize()
                    out.append(f"\n{heading} of {name}:\n{text}")
        return out

    def build(self) -> tuple[list[Unit], list[KgNode], list[KgEdge]]:
        units: list[Unit] = []
        nodes: list[KgNode] = []
        edges: list[KgEdge] = []
        self.assign_bnode_ids()
        # N3 formulas/variables and generalized RDF subjects are not nodes. Sorted: stable output order.
        subjects = [s for s in self.out if isinstance(s, URIRef | BNode)]
        for subject in sorted(subjects, key=self.node_id):
            uri = self.node_id(subject)
            label = self.label(subject)
            types = sorted(
                {o for p, o in self.out[subject] if p == RDF_TYPE and isinstance(o, URIRef)}, key=str
            )
            descriptions = [self.clean(str(d)) for d in self.literals(subject, DESCRIPTION_PREDICATES)]
            descriptions = [d for d in dict.fromkeys(descriptions) if d.strip()]
            if label or types or descriptions:
                nodes.append(
                    KgNode(
                        uri=uri,
                        label=label,
                        types=[str(t) for t in types],
                        description=descriptions[0] if descriptions else None,
                    )
                )
            node_edges = []
            for p, o in self.out[subject]:
                if p in TEXT_PREDICATES or not isinstance(o, URIRef | BNode | Literal):
                    continue
                is_node = not isinstance(o, Literal)
                node_edges.append(KgEdge(uri, str(p), self.node_id(o) if is_node else str(o), is_node))
            edges.extend(sorted(node_edges, key=lambda e: (e.predicate, e.object, e.object_is_uri)))
            if not (label or descriptions):
                # facts but no label: the URI's local name stands for it (blank nodes are shown inline instead)
                if not isinstance(subject, URIRef) or not any(p != RDF_TYPE or o not in IGNORED_TYPES
                                                              for p, o in self.out[subject]):
                    continue
                self.unlabelled += 1
                if not (label or types or descriptions):
                    nodes.append(KgNode(uri=uri, label=None))
            name = label or self.name(subject)
            lines = [name]
            others = [
                " ".join(self.clean(str(lit)).split())
                for lit in self.literals(subject, LABEL_PREDICATES + ALT_LABEL_PREDICATES)
            ]
            aliases = [a for a in dict.fromkeys(others) if a and a != name]
            if aliases:
                lines.append("Also known as: " + "; ".join(aliases))
            shown_types = [self.type_name(t) for t in types if t not in IGNORED_TYPES]
            if shown_types:
                lines.append("Type: " + ", ".join(dict.fromkeys(shown_types)))
            lines.extend(descriptions)
            lines.extend(self.facts(subject, name))
            lines.extend(self.long_texts(subject, name))
            units.append(Unit(text="\n".join(lines), kg_uri=uri, label=name))
        return units, nodes, edges


def load_rdf(path: Path, data: bytes) -> LoadedDocument:
    """Load an RDF file into one unit per node with a label, description or facts, plus nodes and edges.

    The suffix names the syntax, but the content decides: RDF in another syntax than its suffix says is read as
    what it is (with a warning); XML that is not RDF/XML, HTML and binary files are refused with a clear reason.
    """
    declared = RDF_FORMATS.get(path.suffix.lower())
    if declared is None:
        raise LoadError(f"not an RDF suffix: '{path.suffix}' (RDF suffixes: {', '.join(RDF_FORMATS)})")
    head = _to_utf8(data[: 64 * 1024])
    sniffed = sniff_rdf(head)
    warns: list[str] = []
    fmt = declared
    if not _compatible(declared, sniffed):
        assert sniffed is not None
        fmt = sniffed
        warns.append(
            f"the content is {FORMAT_NAMES[sniffed]} although the suffix '{path.suffix}' says "
            f"{FORMAT_NAMES[declared]}; read it as {FORMAT_NAMES[sniffed]} (rename the file to fix this)"
        )
    base = path.resolve().as_uri()
    triples, parse_warns = parse_rdf(data, fmt, base)
    warns.extend(parse_warns)
    doc_id = hashlib.sha1(data, usedforsecurity=False).hexdigest()[:10]
    builder = _GraphText(triples, doc_id)
    units, nodes, edges = builder.build()
    if not triples:
        raise LoadError(f"no triples in this {FORMAT_NAMES[fmt]} file: nothing to ingest")
    if not units:
        count = f"{len(triples)} triple" + ("s" if len(triples) != 1 else "")
        raise LoadError(
            f"nothing to search in this graph ({count}): it has no named node with a label, description "
            "or facts (only blank nodes?); give the things you want to find URIs or rdfs:label"
        )
    if builder.unlabelled:
        warns.append(
            f"{builder.unlabelled} node(s) have facts but no label or description; the last part of their "
            "URI stands for the label (add rdfs:label for better names)"
        )
    if builder.capped_nodes:
        warns.append(
            f"{builder.capped_nodes} node(s) have more than {MAX_FACTS_PER_NODE} facts; their text lists "
            f"the first {MAX_FACTS_PER_NODE} (all are kept as graph edges)"
        )
    warns.extend(builder.stats.warnings())
    meta = {
        "format": FORMAT_NAMES[fmt],
        "triples": str(len(triples)),
        "nodes": str(len(nodes)),
    }
    return LoadedDocument(kind=Kind.RDF, units=units, warnings=warns, nodes=nodes, edges=edges, meta=meta)
