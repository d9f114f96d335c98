"""RDF loading (Turtle, RDF/XML, N-Triples, JSON-LD, N3) with input guards, and graph-to-text conversion.

rdflib is not safe on untrusted input: it fetches remote JSON-LD contexts over the network, builds
billion-laughs entity expansions for minutes, and reads very long N-Triples lines in quadratic time. Every
guard here therefore runs on the raw bytes *before* rdflib sees them.

Each subject with a label or description becomes one Unit whose text reads like a short encyclopedia entry
(label, types, descriptions, one-hop facts as sentences), so that plain text retrieval finds graph content.
"""

from __future__ import annotations

import hashlib
import json
import re
import xml.sax
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from rdflib import RDF, RDFS, BNode, Graph, Literal, Namespace, URIRef
from rdflib.exceptions import ParserError
from rdflib.namespace import DC, DCTERMS, FOAF, OWL, SKOS
from rdflib.plugins.parsers.notation3 import BadSyntax
from rdflib.term import Node

from localrag.ingest.document import KgEdge, KgNode, Kind, LoadedDocument, LoadError, Unit
from localrag.ingest.text import EMPTY_MESSAGE, CleanStats, captured_library_noise, clean_text, summarize_noise

RDF_FORMATS: dict[str, str] = {
    ".ttl": "turtle",
    ".turtle": "turtle",
    ".rdf": "xml",
    ".owl": "xml",
    ".nt": "nt",
    ".jsonld": "json-ld",
    ".json-ld": "json-ld",
    ".n3": "n3",
}
FORMAT_NAMES = {"turtle": "Turtle", "xml": "RDF/XML", "nt": "N-Triples", "json-ld": "JSON-LD", "n3": "N3"}

# rdflib's N-Triples reader is quadratic in line length (2 MB line: ~20 s); 256 KB reads in ~0.25 s.
MAX_RDF_LINE_BYTES = 256 * 1024
LINE_LIMITED_FORMATS = frozenset({"nt", "turtle", "n3"})
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


class _NoFetchCache(dict):
    """Stands in for rdflib's JSON-LD context cache: rdflib consults it before any fetch, so fail there.

    Second line of defence after `_check_jsonld`; it covers contexts reached in ways the scan did not foresee.
    """

    def __contains__(self, key: object) -> bool:
        raise LoadError(_remote_context_message(str(key)))


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
    """Reject lines rdflib would read in quadratic time, before it starts."""
    if len(data) <= MAX_RDF_LINE_BYTES:
        return
    for number, line in enumerate(data.split(b"\n"), start=1):
        if len(line) > MAX_RDF_LINE_BYTES:
            raise LoadError(
                f"line {number} is {_human_size(len(line))} long (limit {_human_size(MAX_RDF_LINE_BYTES)}): "
                "very long literals are not supported in RDF files; put long texts in a .txt/.md file"
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


def _parse_jsonld(data: bytes, base: str) -> Graph:
    try:
        doc = json.loads(data)
    except RecursionError:
        raise LoadError(f"JSON-LD nested too deeply (more than {MAX_JSONLD_DEPTH} levels)") from None
    except json.JSONDecodeError as err:
        raise LoadError(f"not valid JSON-LD: line {err.lineno} column {err.colno}: {err.msg}") from None
    except UnicodeDecodeError:
        raise LoadError("not valid JSON-LD: the file is not UTF-8 text; save it as UTF-8") from None
    _check_jsonld(doc)
    # A plain (not context-aware) Graph: rdflib then merges named @graph content into it, as wanted here.
    graph = Graph()
    try:
        # Hand rdflib the already-parsed document: it never opens a URL or a file for the input itself.
        from rdflib.plugins.parsers.jsonld import Parser as JsonLdParser
        from rdflib.plugins.shared.jsonld.context import Context

        context = Context(base=base)
        context._context_cache = _NoFetchCache()  # shared with every sub-context rdflib derives
        JsonLdParser().parse(doc, context, graph)
    except ImportError:  # pragma: no cover - rdflib moved its internals; the scan above still applies
        graph = Graph().parse(data=json.dumps(doc), format="json-ld", base=base)
    return graph


def _nt_error_line(data: bytes, rest: str) -> int | None:
    """rdflib's N-Triples errors quote only the unparsed rest of the bad line; find which line that was."""
    from rdflib.plugins.parsers.ntriples import W3CNTriplesParser

    class _Sink:
        def triple(self, *_: object) -> None:
            pass

    rest = rest.strip()
    for number, raw in enumerate(data.split(b"\n"), start=1):
        line = raw.decode("utf-8", errors="replace").strip()
        if not line or line.startswith("#") or (rest and not line.endswith(rest)):
            continue
        try:
            W3CNTriplesParser(sink=_Sink()).parsestring(line)  # type: ignore[arg-type]
        except Exception:  # any failure marks the bad line
            return number
    return None


def parse_rdf(data: bytes, fmt: str, base: str) -> tuple[Graph, list[str]]:
    """Guard the bytes, then parse them with rdflib; returns the graph and library warnings.

    Raises LoadError with a line number where rdflib gives one.
    """
    name = FORMAT_NAMES[fmt]
    if not data.strip():
        raise LoadError(EMPTY_MESSAGE)
    if fmt in LINE_LIMITED_FORMATS:
        _check_line_lengths(data)
    stripped = data.lstrip(b"\xef\xbb\xbf\xff\xfe \t\r\n\x00")
    if fmt == "xml" or stripped.startswith(b"<?xml"):
        if _has_dtd(data):
            raise LoadError(
                "RDF/XML with DOCTYPE/ENTITY declarations is rejected (entity expansion and local-file "
                "reads are unsafe); remove the DTD"
            )
        if fmt == "xml" and not stripped.startswith(b"<"):
            raise LoadError(
                "not RDF/XML: the file does not start with '<' (if it is Turtle, rename it to .ttl)"
            )
    with captured_library_noise("rdflib") as noise:
        try:
            if fmt == "json-ld":
                graph = _parse_jsonld(data, base)
            else:
                graph = Graph()
                graph.parse(data=data, format=fmt, publicID=base)
        except LoadError:
            raise
        except BadSyntax as err:
            why = getattr(err, "_why", None) or str(err).splitlines()[-1]
            raise LoadError(f"{name} syntax error at line {err.lines + 1}: {why}") from None
        except xml.sax.SAXParseException as err:
            raise LoadError(
                f"{name} syntax error at line {err.getLineNumber()} column {err.getColumnNumber()}: "
                f"{err.getMessage()}"
            ) from None
        except ParserError as err:
            message = str(err)
            line = None
            if fmt == "nt" and message.startswith("Invalid line:"):
                line = _nt_error_line(data, message.removeprefix("Invalid line:"))
            where = f" at line {line}" if line else ""
            raise LoadError(f"{name} syntax error{where}: {message[:200]}") from None
        except RecursionError:
            raise LoadError(f"{name} nested too deeply: rdflib cannot read it") from None
        except UnicodeDecodeError:
            raise LoadError(
                f"not UTF-8 text: {name} files must be UTF-8; convert it (e.g. iconv -f latin1 -t utf-8)"
            ) from None
        except Exception as err:  # rdflib raises many types on malformed input
            detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            raise LoadError(f"could not parse {name}: {detail}") from None
    return graph, summarize_noise("rdflib", noise)


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
    """Turns an rdflib Graph into units, nodes and edges.

    The graph is read once into plain adjacency lists: rdflib's store lookups cost microseconds each and
    this code does several per node, which made text building slower than parsing on large graphs.
    """

    def __init__(self, graph: Graph, doc_id: str) -> None:
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
                continue
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
            units.append(Unit(text="\n".join(lines), kg_uri=uri, label=name))
        return units, nodes, edges


def load_rdf(path: Path, data: bytes) -> LoadedDocument:
    """Load an RDF file into one unit per described node, plus the graph's nodes and edges."""
    fmt = RDF_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise LoadError(f"not an RDF suffix: '{path.suffix}' (RDF suffixes: {', '.join(RDF_FORMATS)})")
    base = path.resolve().as_uri()
    graph, warns = parse_rdf(data, fmt, base)
    doc_id = hashlib.sha1(data, usedforsecurity=False).hexdigest()[:10]
    builder = _GraphText(graph, doc_id)
    units, nodes, edges = builder.build()
    if not units:
        triples = f"{len(graph)} triple" + ("s" if len(graph) != 1 else "")
        raise LoadError(
            f"no nodes with labels or descriptions in this graph ({triples}); "
            "add rdfs:label or rdfs:comment to the things you want to find"
        )
    if builder.capped_nodes:
        warns.append(
            f"{builder.capped_nodes} node(s) have more than {MAX_FACTS_PER_NODE} facts; their text lists "
            f"the first {MAX_FACTS_PER_NODE} (all are kept as graph edges)"
        )
    warns.extend(builder.stats.warnings())
    meta = {
        "format": FORMAT_NAMES[fmt],
        "triples": str(len(graph)),
        "nodes": str(len(nodes)),
    }
    return LoadedDocument(kind=Kind.RDF, units=units, warnings=warns, nodes=nodes, edges=edges, meta=meta)
