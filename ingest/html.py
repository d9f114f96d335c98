"""HTML pages: the main text, with headings as section titles; scripts, styles, navigation and page chrome dropped.

selectolax (lexbor, C) parses any HTML the way browsers do, in linear time and without touching the network or
resolving entities beyond the HTML ones. When the page marks its main content (`<main>`, `<article>`, or
role="main"), only that is read; otherwise the body minus navigation, header, footer, sidebars and forms.
"""

from __future__ import annotations

from localrag.ingest.document import Kind, LoadedDocument, LoadError
from localrag.ingest.sections import Block, clean_blocks_to_units
from localrag.ingest.text import EMPTY_MESSAGE, clean_text, decode_bytes

DROPPED_TAGS = frozenset({
    "script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "button", "select",
    "svg", "canvas", "iframe", "object", "embed", "head", "menu", "dialog", "-comment",
})
BLOCK_TAGS = frozenset({
    "p", "div", "section", "article", "main", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr", "td", "th",
    "thead", "tbody", "tfoot", "caption", "blockquote", "pre", "figure", "figcaption", "address", "hr",
    "details", "summary", "body",
})
HEADINGS = {f"h{i}": i for i in range(1, 7)}
DROPPED_ROLES = frozenset({"navigation", "banner", "contentinfo", "complementary", "search", "menu"})
# an <aside> is page chrome (a sidebar), except the footnotes and endnotes that documentation generators write as
# <aside> (docutils/Sphinx: <aside class="footnote" role="note">; DPUB-ARIA roles doc-footnote/doc-endnotes)
NOTE_ROLES = frozenset({"note", "doc-footnote", "doc-endnote", "doc-endnotes"})


def _is_note(node: object) -> bool:
    attrs = node.attributes  # type: ignore[attr-defined]
    classes = (attrs.get("class") or "").lower().split()
    return (attrs.get("role") or "").lower() in NOTE_ROLES or any(c.startswith("footnote") for c in classes)
# Markup-heavy pages hold far more bytes than text; past this much text the page is cut with a warning.
MAX_TEXT_CHARS = 50 * 1024 * 1024


def _blocks(root: object) -> tuple[list[Block], bool]:
    """Walk the tree in document order without recursion (pages nest thousands of levels deep)."""
    blocks: list[Block] = []
    buffer: list[str] = []
    size = 0
    truncated = False

    def flush() -> None:
        if buffer:
            text = "".join(buffer)
            buffer.clear()
            if text.strip():
                blocks.append(Block(" ".join(text.split()) if "\n" not in text else text))

    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        tag = node.tag  # type: ignore[attr-defined]
        if leaving:
            flush()
            continue
        if tag == "-text":
            text = node.text_content or ""  # type: ignore[attr-defined]
            size += len(text)
            if size > MAX_TEXT_CHARS:
                truncated = True
                break
            buffer.append(text)
            continue
        if (tag in DROPPED_TAGS and not (tag == "aside" and _is_note(node))) or tag.startswith("-"):
            continue
        attrs = node.attributes  # type: ignore[attr-defined]
        if (attrs.get("role") or "").lower() in DROPPED_ROLES or "hidden" in attrs or (
            (attrs.get("aria-hidden") or "").lower() == "true"
        ):
            continue
        if tag in HEADINGS:
            flush()
            blocks.append(Block(node.text(deep=True, separator=" "), level=HEADINGS[tag]))  # type: ignore[attr-defined]
            continue
        if tag == "br":
            buffer.append("\n")
            continue
        block = tag in BLOCK_TAGS
        if block:
            flush()
            stack.append((node, True))
        children = []
        child = node.child  # type: ignore[attr-defined]
        while child is not None:
            children.append(child)
            child = child.next
        stack.extend((c, False) for c in reversed(children))
    flush()
    return blocks, truncated


def load_html(data: bytes) -> LoadedDocument:
    """One unit per section (heading), labelled with the heading and its section path."""
    from selectolax.lexbor import LexborHTMLParser

    if data.lstrip()[:5] == b"%PDF-":
        raise LoadError("the content is a PDF file, not HTML: give it a .pdf suffix")
    text, encoding, warnings = decode_bytes(data)
    if not text.strip():
        raise LoadError(EMPTY_MESSAGE)
    lowered = text[:2048].lstrip().lower()
    if lowered.startswith("<?xml") and "<html" not in text[:4096].lower():
        raise LoadError("the content is XML, not HTML: give it a .xml suffix (RDF/XML is ingested as RDF)")
    tree = LexborHTMLParser(text)
    main = tree.css_first("main, [role=main], article") or tree.body
    if main is None:
        raise LoadError("no page body: the file holds no HTML text")
    blocks, truncated = _blocks(main)
    meta = {"encoding": encoding}
    title_node = tree.css_first("title")
    if title_node is not None and title_node.text(strip=True):
        meta["title"] = " ".join(clean_text(title_node.text(strip=True))[0].split())
    units = clean_blocks_to_units(blocks, warnings)
    if not units:
        raise LoadError("no readable text in this HTML page (only scripts, navigation or images?)")
    if truncated:
        warnings.append(f"the page has more than {MAX_TEXT_CHARS // 2**20} MB of text; the rest was not read")
    if "title" not in meta and units[0].label:
        meta["title"] = units[0].label
    return LoadedDocument(kind=Kind.HTML, units=units, warnings=list(dict.fromkeys(warnings)), meta=meta)
