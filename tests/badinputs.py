"""Writers for good and hostile input files, generated at test time (nothing binary is committed).

Each `write_*(dirpath)` writes one file into `dirpath` and returns its path; `write_all(dirpath)` writes them
all and returns {case name: path}. The loader tests and the ingestion-job tests both use these.
"""

from __future__ import annotations

import gzip
import io
import json
import random
import zipfile
from collections.abc import Callable
from pathlib import Path

from fpdf import FPDF
from pypdf import PdfWriter

# Texts the tests look for.
PDF_PAGE_TEXTS = {
    1: "Harbor Light is a lighthouse on the north pier of Portsmouth.",
    3: "The keeper Ada Smith lit the lamp every evening from 1901 to 1932.",
}
PDF_TITLE = "Harbor Light History"
TURTLE_ERROR_LINE = 9
NT_LONG_LINE = 3
LONG_LINE_BYTES = 5 * 1024 * 1024
NT_LITERAL_BYTES = 2 * 1024 * 1024
TTL_ABSTRACT_BYTES = 1_900_000
TTL_ABSTRACT_END = "The abstract ends with the foghorn schedule."
JSONLD_DEPTH = 100_000
REMOTE_CONTEXT = "https://schema.org/"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _pdf_bytes(pages: dict[int, str], page_count: int, title: str | None = PDF_TITLE) -> bytes:
    """A real PDF (fpdf2) with text on the given 1-based pages and blank pages elsewhere."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("helvetica", size=12)
    for number in range(1, page_count + 1):
        pdf.add_page()
        if number in pages:
            pdf.multi_cell(0, 8, f"{pages[number]}\n\nA second paragraph on page {number}.")
    return bytes(pdf.output())


def _write(dirpath: Path, name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
    path = Path(dirpath) / name
    path.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
    return path


# --- PDF ------------------------------------------------------------------------------------------------


def write_pdf_good(dirpath: Path) -> Path:
    """Three pages: text on 1 and 3, page 2 empty."""
    return _write(dirpath, "good.pdf", _pdf_bytes(PDF_PAGE_TEXTS, 3))


def _encrypted(user_password: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(_pdf_bytes(PDF_PAGE_TEXTS, 3)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def write_pdf_encrypted(dirpath: Path) -> Path:
    """Needs a user password to open."""
    return _write(dirpath, "encrypted.pdf", _encrypted("user-secret"))


def write_pdf_owner_only(dirpath: Path) -> Path:
    """Encrypted with an owner password only: opens with the empty user password."""
    return _write(dirpath, "owner_only.pdf", _encrypted(""))


def write_pdf_image_only(dirpath: Path) -> Path:
    """Two pages with a drawn rectangle and an embedded image, no text: what a scan looks like."""
    from PIL import Image  # fpdf2 depends on Pillow

    pdf = FPDF()
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    for _ in range(2):
        pdf.add_page()
        pdf.rect(20, 20, 120, 80, style="F")
        pdf.image(image, x=30, y=120, w=60)
    return _write(dirpath, "image_only.pdf", bytes(pdf.output()))


def write_pdf_truncated(dirpath: Path) -> Path:
    data = _pdf_bytes(PDF_PAGE_TEXTS, 3)
    return _write(dirpath, "truncated.pdf", data[: len(data) // 2])


def write_pdf_random(dirpath: Path) -> Path:
    return _write(dirpath, "random.pdf", random.Random(1).randbytes(64 * 1024))


def write_pdf_empty(dirpath: Path) -> Path:
    return _write(dirpath, "empty.pdf", b"")


# --- text -----------------------------------------------------------------------------------------------


def write_txt_random(dirpath: Path) -> Path:
    return _write(dirpath, "random.txt", random.Random(2).randbytes(64 * 1024))


def write_txt_empty(dirpath: Path) -> Path:
    return _write(dirpath, "empty.txt", b"")


def write_txt_whitespace(dirpath: Path) -> Path:
    return _write(dirpath, "whitespace.txt", b" \n\t\r\n   \n")


def write_txt_latin1(dirpath: Path) -> Path:
    text = (
        "Un café au lait, s'il vous plaît.\n"
        "Le garçon était très agréable, même à l'heure du déjeuner.\n"
        "Über die Brücke gehen wir nach Köln.\n"
    )
    return _write(dirpath, "latin1.txt", text, "latin-1")


def write_txt_utf16(dirpath: Path) -> Path:
    """UTF-16 LE with BOM (the Python 'utf-16' codec writes the BOM)."""
    return _write(dirpath, "utf16.txt", "Grüße aus Köln.\nZweite Zeile: naïve café.\n", "utf-16")


def write_txt_nul(dirpath: Path) -> Path:
    text = "The lighthouse\x00 keeper's log.\nEntry one: calm\x00 sea.\nEntry two: fog\x00.\n" * 5
    return _write(dirpath, "nul.txt", text)


def write_txt_long_line(dirpath: Path) -> Path:
    """A 5 MB file that is one single line (no newline at all)."""
    word = "lighthouse "
    return _write(dirpath, "long_line.txt", (word * (LONG_LINE_BYTES // len(word) + 1))[:LONG_LINE_BYTES])


def write_txt_combining(dirpath: Path) -> Path:
    """'Z' with 5000 combining acute accents, alternating-class marks, and emoji (with ZWJ and skin tones)."""
    text = (
        "Zalgo: Z" + "\u0301" * 5000 + " end.\n"
        "Mixed: a" + "\u0301\u0316" * 3000 + " end.\n"
        "Emoji: \U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 "
        "\u2764\ufe0f \U0001f1eb\U0001f1f7\n"
        "Normal accents: cafe\u0301 and re\u0301sume\u0301.\n"
    )
    return _write(dirpath, "combining.txt", text)


def write_md_good(dirpath: Path) -> Path:
    text = (
        "Intro before any heading.\n\n"
        "# Harbor Light\n\nA lighthouse on the north pier.\n\n## Details\n\nBuilt in 1899.\n\n"
        "```\n# not a heading, inside a code block\n```\n\n"
        "# Keepers\n\nAda Smith kept the light.\n"
    )
    return _write(dirpath, "good.md", text)


# --- RDF ------------------------------------------------------------------------------------------------

GOOD_TURTLE = """\
@prefix ex: <http://example.org/harbor#> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
@prefix dcterms: <http://purl.org/dc/terms/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .

ex:HarborLight a ex:Lighthouse ;
    rdfs:label "Harbor Light"@en, "Phare du port"@fr ;
    rdfs:comment "A white lighthouse on the north pier."@en ;
    ex:builtBy ex:AdaSmith ;
    ex:height "32"^^xsd:integer ;
    ex:locatedIn ex:Portsmouth .

ex:AdaSmith a ex:Person ;
    rdfs:label "Ada Smith" ;
    dcterms:description "Engineer and lighthouse keeper." .

ex:Lighthouse rdfs:label "Lighthouse" .
"""


def write_ttl_good(dirpath: Path) -> Path:
    return _write(dirpath, "good.ttl", GOOD_TURTLE)


def write_ttl_syntax_error(dirpath: Path) -> Path:
    """A Turtle file whose statement on line 9 is broken (three objects without separators)."""
    lines = [
        "@prefix ex: <http://example.org/> .",
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .",
        "",
        'ex:a rdfs:label "A" .',
        'ex:b rdfs:label "B" .',
        'ex:c rdfs:label "C" .',
        "",
        "# the next line is broken",
        "ex:d rdfs:label ex:x ex:y ex:z .",
        'ex:e rdfs:label "E" .',
    ]
    assert lines[TURTLE_ERROR_LINE - 1].startswith("ex:d")
    return _write(dirpath, "syntax_error.ttl", "\n".join(lines) + "\n")


def write_ttl_no_labels(dirpath: Path) -> Path:
    """Facts (a type, a link, a number, a date) but no label or description anywhere."""
    text = (
        "@prefix ex: <http://example.org/harbor#> .\n"
        "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n"
        "ex:GannetHead a ex:Lighthouse ; ex:locatedIn ex:Portsmouth ; ex:heightMetres 41 ;\n"
        '    ex:firstLit "1871-05-01"^^xsd:date .\n'
    )
    return _write(dirpath, "no_labels.ttl", text)


def write_ttl_blank_only(dirpath: Path) -> Path:
    """Only unlabelled blank nodes: nothing a person could search for."""
    return _write(dirpath, "blank_only.ttl", "[] <http://example.org/p> [ <http://example.org/q> 1 ] .\n")


def write_ttl_long_literal(dirpath: Path) -> Path:
    """Turtle with a 1.9 MB abstract on one line (the case the old line-length guard refused)."""
    words = " ".join(f"tide{i % 97} keeper{i % 89}" for i in range(TTL_ABSTRACT_BYTES // 20))
    text = (
        "@prefix ex: <http://example.org/harbor#> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        'ex:Report rdfs:label "Harbour report" ;\n'
        '    ex:abstract "' + words[:TTL_ABSTRACT_BYTES] + ' ' + TTL_ABSTRACT_END + '" .\n'
    )
    return _write(dirpath, "long_abstract.ttl", text)


def write_ttl_deep_nesting(dirpath: Path) -> Path:
    """Legal but deep (rdflib's recursive Turtle parser gives up at ~1,000): 5,000 nested blank nodes and a
    5,000-deep nested collection."""
    depth = 5_000
    text = (
        "@prefix ex: <http://example.org/> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        'ex:Root rdfs:label "Deep root" ; ex:part ' + "[ ex:part " * depth + '"leaf"' + " ]" * depth + " ;\n"
        "    ex:list " + "( " * depth + "ex:x" + " )" * depth + " .\n"
    )
    return _write(dirpath, "deep.ttl", text)


def write_ttl_is_pdf(dirpath: Path) -> Path:
    """A PDF saved with a Turtle suffix: the content contradicts the extension."""
    return _write(dirpath, "really_a_pdf.ttl", _pdf_bytes(PDF_PAGE_TEXTS, 1))


def write_ttl_is_rdfxml(dirpath: Path) -> Path:
    """RDF/XML saved with a Turtle suffix: read as what it is, with a warning."""
    return _write(dirpath, "really_rdfxml.ttl", _RDFXML)


def write_rdfxml_as_xml(dirpath: Path) -> Path:
    """RDF/XML saved as .xml (exported ontologies, SKOS vocabularies)."""
    return _write(dirpath, "vocabulary.xml", _RDFXML)


def write_xml_not_rdf(dirpath: Path) -> Path:
    text = '<?xml version="1.0"?>\n<project>\n  <name>harbor</name>\n  <version>1.0</version>\n</project>\n'
    return _write(dirpath, "pom.xml", text)


def write_xml_malformed_rdf(dirpath: Path) -> Path:
    """RDF/XML whose element on line 5 is never closed."""
    text = (
        '<?xml version="1.0"?>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"\n'
        '         xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#">\n'
        '  <rdf:Description rdf:about="http://example.org/x">\n'
        "    <rdfs:label>X\n"
        "  </rdf:Description>\n"
        "</rdf:RDF>\n"
    )
    return _write(dirpath, "malformed.rdf", text)


def write_nt_bad_utf8(dirpath: Path) -> Path:
    text = b'<http://example.org/a> <http://www.w3.org/2000/01/rdf-schema#label> "A" .\n'
    text += b'<http://example.org/b> <http://www.w3.org/2000/01/rdf-schema#label> "caf\xe9" .\n'
    return _write(dirpath, "latin1.nt", text)


_RDFXML = """<?xml version="1.0" encoding="utf-8"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#"
         xmlns:ex="http://example.org/harbor#">
  <ex:Lighthouse rdf:about="http://example.org/harbor#HarborLight">
    <rdfs:label xml:lang="en">Harbor Light</rdfs:label>
    <rdfs:comment>A white lighthouse on the north pier.</rdfs:comment>
    <ex:builtBy rdf:resource="http://example.org/harbor#AdaSmith"/>
  </ex:Lighthouse>
  <rdf:Description rdf:about="http://example.org/harbor#AdaSmith">
    <rdfs:label>Ada Smith</rdfs:label>
  </rdf:Description>
</rdf:RDF>
"""


def write_rdfxml_good(dirpath: Path) -> Path:
    return _write(dirpath, "good.rdf", _RDFXML)


def write_rdfxml_billion_laughs(dirpath: Path) -> Path:
    entities = ['<!ENTITY lol "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    ]
    text = (
        '<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [\n' + "\n".join(entities) + "\n]>\n"
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#">\n'
        '  <rdf:Description rdf:about="http://example.org/lol"><rdfs:label>&lol9;</rdfs:label>'
        "</rdf:Description>\n</rdf:RDF>\n"
    )
    return _write(dirpath, "billion_laughs.rdf", text)


def write_rdfxml_xxe(dirpath: Path) -> Path:
    text = (
        '<?xml version="1.0"?>\n<!DOCTYPE rdf:RDF [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>\n'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" '
        'xmlns:rdfs="http://www.w3.org/2000/01/rdf-schema#">\n'
        '  <rdf:Description rdf:about="http://example.org/x"><rdfs:label>&xxe;</rdfs:label>'
        "</rdf:Description>\n</rdf:RDF>\n"
    )
    return _write(dirpath, "xxe.owl", text)


def write_nt_good(dirpath: Path) -> Path:
    ex, rdf = "http://example.org/harbor#", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
    label = "http://www.w3.org/2000/01/rdf-schema#label"
    text = (
        f'<{ex}HarborLight> <{label}> "Harbor Light" .\n'
        f"<{ex}HarborLight> <{rdf}type> <{ex}Lighthouse> .\n"
        f"<{ex}HarborLight> <{ex}builtBy> <{ex}AdaSmith> .\n"
        f'<{ex}AdaSmith> <{label}> "Ada Smith" .\n'
    )
    return _write(dirpath, "good.nt", text)


def write_nt_long_literal(dirpath: Path) -> Path:
    """N-Triples whose line 3 holds a 2 MB literal (rdflib reads such a line in ~20 s; pyoxigraph in ms)."""
    text = (
        '<http://example.org/a> <http://www.w3.org/2000/01/rdf-schema#label> "A" .\n'
        '<http://example.org/b> <http://www.w3.org/2000/01/rdf-schema#label> "B" .\n'
        '<http://example.org/a> <http://example.org/text> "' + "x" * NT_LITERAL_BYTES + '" .\n'
    )
    return _write(dirpath, "long_literal.nt", text)


def write_nt_syntax_error(dirpath: Path) -> Path:
    text = (
        '<http://example.org/a> <http://www.w3.org/2000/01/rdf-schema#label> "A" .\n'
        "<http://example.org/a> <http://example.org/p> broken .\n"
    )
    return _write(dirpath, "syntax_error.nt", text)


_INLINE_CONTEXT = {
    "ex": "http://example.org/harbor#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "label": "rdfs:label",
    "comment": "rdfs:comment",
    "builtBy": {"@id": "ex:builtBy", "@type": "@id"},
}


def write_jsonld_good(dirpath: Path) -> Path:
    doc = {
        "@context": _INLINE_CONTEXT,
        "@graph": [
            {
                "@id": "ex:HarborLight",
                "@type": "ex:Lighthouse",
                "label": "Harbor Light",
                "comment": "A white lighthouse on the north pier.",
                "builtBy": "ex:AdaSmith",
            },
            {"@id": "ex:AdaSmith", "label": "Ada Smith"},
        ],
    }
    return _write(dirpath, "good.jsonld", json.dumps(doc, indent=2))


def write_jsonld_remote_context(dirpath: Path) -> Path:
    doc = {"@context": REMOTE_CONTEXT, "@id": "http://example.org/x", "name": "X"}
    return _write(dirpath, "remote_context.jsonld", json.dumps(doc))


def write_jsonld_nested_remote_context(dirpath: Path) -> Path:
    """A remote context hidden in a scoped context inside an inline one."""
    doc = {
        "@context": [{"ex": "http://example.org/", "thing": {"@id": "ex:thing", "@context": "http://evil.test/c"}}],
        "@id": "ex:x",
        "thing": {"@id": "ex:y"},
    }
    return _write(dirpath, "nested_remote_context.json-ld", json.dumps(doc))


def write_jsonld_deep(dirpath: Path) -> Path:
    """100,000 levels of nested lists inside a JSON-LD document."""
    head = '{"@context": {"ex": "http://example.org/"}, "ex:p": '
    text = head + "[" * JSONLD_DEPTH + "]" * JSONLD_DEPTH + "}"
    return _write(dirpath, "deep.jsonld", text)


def write_jsonld_invalid(dirpath: Path) -> Path:
    return _write(dirpath, "invalid.jsonld", '{\n  "@id": "http://example.org/x",\n  "name": "X",,\n}\n')


# --- HTML and DOCX --------------------------------------------------------------------------------------

HTML_PAGE = """<!DOCTYPE html>
<html><head><title>Harbour Guide</title><style>p { color: red }</style>
<script>var tracking = "SCRIPT-SECRET";</script></head>
<body><nav><a href="/">Home</a> NAV-MENU-TEXT</nav>
<header>SITE-HEADER-TEXT</header>
<main>
<h1>Harbour Guide</h1><p>Welcome to the <b>harbour</b> of Port Wren.</p>
<h2>Safety</h2><p>Wear a life jacket on the pier.</p>
<h3>Tides</h3><p>High tide at the north pier is at 06:12.</p><ul><li>Spring tides</li><li>Neap tides</li></ul>
<h2>Keepers</h2><p>Ada Smith kept the light.</p>
</main>
<footer>FOOTER-TEXT</footer><noscript>NOSCRIPT-TEXT</noscript>
</body></html>
"""


def write_html_good(dirpath: Path) -> Path:
    return _write(dirpath, "guide.html", HTML_PAGE)


def write_html_empty(dirpath: Path) -> Path:
    return _write(dirpath, "empty.html", b"")


def write_html_only_scripts(dirpath: Path) -> Path:
    page = "<html><head><script>alert(1)</script></head><body><nav>Menu</nav></body></html>"
    return _write(dirpath, "scripts.htm", page)


def write_html_binary(dirpath: Path) -> Path:
    return _write(dirpath, "random.html", random.Random(3).randbytes(64 * 1024))


def write_html_is_pdf(dirpath: Path) -> Path:
    return _write(dirpath, "really_a_pdf.html", _pdf_bytes(PDF_PAGE_TEXTS, 1))


def write_html_deep(dirpath: Path) -> Path:
    """2,000 nested <div>s around a paragraph: no recursion may blow up. (lexbor's tree building is quadratic in
    nesting depth: 100,000 levels take minutes and are stopped by the per-file time limit.)"""
    depth = 2_000
    page = "<html><body>" + "<div>" * depth + "<p>Deep harbour text.</p>" + "</div>" * depth
    return _write(dirpath, "deep.html", page)


def docx_bytes(title: str | None = "Harbour Guide") -> bytes:
    import docx

    document = docx.Document()
    if title:
        document.core_properties.title = title
    document.add_heading("Harbour Guide", level=1)
    document.add_paragraph("Welcome to the harbour of Port Wren.")
    document.add_heading("Safety", level=2)
    document.add_paragraph("Wear a life jacket on the pier.")
    document.add_heading("Tides", level=3)
    document.add_paragraph("High tide at the north pier is at 06:12.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Tide", "Time"
    table.cell(1, 0).text, table.cell(1, 1).text = "High", "06:12"
    document.add_heading("Keepers", level=2)
    document.add_paragraph("Ada Smith kept the light.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def write_docx_good(dirpath: Path) -> Path:
    return _write(dirpath, "guide.docx", docx_bytes())


def write_docx_truncated(dirpath: Path) -> Path:
    data = docx_bytes()
    return _write(dirpath, "truncated.docx", data[: len(data) // 2])


def write_docx_encrypted(dirpath: Path) -> Path:
    """What Word writes for a password-protected document: an OLE compound file holding EncryptedPackage."""
    body = OLE_MAGIC + b"\x00" * 504 + "EncryptedInfo".encode("utf-16-le") + "EncryptedPackage".encode("utf-16-le")
    return _write(dirpath, "encrypted.docx", body + random.Random(4).randbytes(4096))


def write_docx_old_doc(dirpath: Path) -> Path:
    return _write(dirpath, "old.docx", OLE_MAGIC + b"\x00" * 504 + "WordDocument".encode("utf-16-le"))


def write_docx_empty(dirpath: Path) -> Path:
    import docx

    out = io.BytesIO()
    docx.Document().save(out)
    return _write(dirpath, "blank.docx", out.getvalue())


def write_docx_zip_bomb(dirpath: Path) -> Path:
    """A ZIP whose document.xml unpacks to 600 MB of zeros (a few hundred KB packed)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as part:
            block = b"\x00" * (1 << 20)
            for _ in range(600):
                part.write(block)
    return _write(dirpath, "bomb.docx", buffer.getvalue())


def write_docx_not_word(dirpath: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "just a zip")
    return _write(dirpath, "archive.docx", buffer.getvalue())


# --- unsupported ----------------------------------------------------------------------------------------


def write_pptx(dirpath: Path) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("ppt/slides/slide1.xml", "<p:sld/>")
    return _write(dirpath, "slides.pptx", buffer.getvalue())


def write_gz(dirpath: Path) -> Path:
    return _write(dirpath, "notes.txt.gz", gzip.compress(b"compressed notes\n"))


WRITERS: dict[str, Callable[[Path], Path]] = {
    "pdf_good": write_pdf_good,
    "pdf_encrypted": write_pdf_encrypted,
    "pdf_owner_only": write_pdf_owner_only,
    "pdf_image_only": write_pdf_image_only,
    "pdf_truncated": write_pdf_truncated,
    "pdf_random": write_pdf_random,
    "pdf_empty": write_pdf_empty,
    "txt_random": write_txt_random,
    "txt_empty": write_txt_empty,
    "txt_whitespace": write_txt_whitespace,
    "txt_latin1": write_txt_latin1,
    "txt_utf16": write_txt_utf16,
    "txt_nul": write_txt_nul,
    "txt_long_line": write_txt_long_line,
    "txt_combining": write_txt_combining,
    "md_good": write_md_good,
    "ttl_good": write_ttl_good,
    "ttl_syntax_error": write_ttl_syntax_error,
    "ttl_no_labels": write_ttl_no_labels,
    "ttl_blank_only": write_ttl_blank_only,
    "ttl_long_literal": write_ttl_long_literal,
    "ttl_deep_nesting": write_ttl_deep_nesting,
    "ttl_is_pdf": write_ttl_is_pdf,
    "ttl_is_rdfxml": write_ttl_is_rdfxml,
    "rdfxml_as_xml": write_rdfxml_as_xml,
    "xml_not_rdf": write_xml_not_rdf,
    "xml_malformed_rdf": write_xml_malformed_rdf,
    "nt_bad_utf8": write_nt_bad_utf8,
    "rdfxml_good": write_rdfxml_good,
    "rdfxml_billion_laughs": write_rdfxml_billion_laughs,
    "rdfxml_xxe": write_rdfxml_xxe,
    "nt_good": write_nt_good,
    "nt_long_literal": write_nt_long_literal,
    "nt_syntax_error": write_nt_syntax_error,
    "jsonld_good": write_jsonld_good,
    "jsonld_remote_context": write_jsonld_remote_context,
    "jsonld_nested_remote_context": write_jsonld_nested_remote_context,
    "jsonld_deep": write_jsonld_deep,
    "jsonld_invalid": write_jsonld_invalid,
    "html_good": write_html_good,
    "html_empty": write_html_empty,
    "html_only_scripts": write_html_only_scripts,
    "html_binary": write_html_binary,
    "html_is_pdf": write_html_is_pdf,
    "html_deep": write_html_deep,
    "docx_good": write_docx_good,
    "docx_truncated": write_docx_truncated,
    "docx_encrypted": write_docx_encrypted,
    "docx_old_doc": write_docx_old_doc,
    "docx_empty": write_docx_empty,
    "docx_zip_bomb": write_docx_zip_bomb,
    "docx_not_word": write_docx_not_word,
    "pptx": write_pptx,
    "gz": write_gz,
}

# Cases that must load, and cases that must fail with a LoadError (UnsupportedType included).
GOOD_CASES = frozenset(
    {"pdf_good", "pdf_owner_only", "txt_latin1", "txt_utf16", "txt_nul", "txt_long_line", "txt_combining",
     "md_good", "ttl_good", "rdfxml_good", "nt_good", "jsonld_good", "nt_long_literal", "ttl_no_labels",
     "ttl_long_literal", "ttl_deep_nesting", "ttl_is_rdfxml", "rdfxml_as_xml", "html_good", "html_deep",
     "docx_good"}
)
BAD_CASES = frozenset(WRITERS) - GOOD_CASES


def write_all(dirpath: Path) -> dict[str, Path]:
    """Write every case into `dirpath` (created if missing); returns {case name: path}."""
    dirpath = Path(dirpath)
    dirpath.mkdir(parents=True, exist_ok=True)
    return {name: writer(dirpath) for name, writer in WRITERS.items()}
