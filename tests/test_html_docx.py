"""HTML and DOCX loaders: main text with headings as section paths, and the PDF standard for bad input."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from localrag.ingest.document import Kind, LoadedDocument, LoadError
from localrag.ingest.loaders import load_file

try:
    from tests import badinputs
except ImportError:  # tests/ is on sys.path but the repository root is not
    import badinputs


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("docs")
    return {name: w(d) for name, w in badinputs.WRITERS.items() if name.startswith(("html_", "docx_"))}


def error_of(path: Path) -> str:
    with pytest.raises(LoadError) as info:
        load_file(path)
    return str(info.value)


def sections(doc: LoadedDocument) -> list[tuple[str | None, str | None]]:
    return [(u.label, u.section) for u in doc.units]


EXPECTED_SECTIONS = [
    ("Harbour Guide", "Harbour Guide"),
    ("Safety", "Harbour Guide › Safety"),
    ("Tides", "Harbour Guide › Safety › Tides"),
    ("Keepers", "Harbour Guide › Keepers"),
]


def test_html_main_text_and_section_paths(files: dict[str, Path]) -> None:
    doc = load_file(files["html_good"])
    assert doc.kind is Kind.HTML
    assert sections(doc) == EXPECTED_SECTIONS
    text = "\n".join(u.text for u in doc.units)
    assert "Welcome to the harbour of Port Wren." in text  # inline <b> kept inside the sentence
    assert "High tide at the north pier is at 06:12." in text and "Spring tides" in text
    for dropped in ("SCRIPT-SECRET", "color: red", "NAV-MENU-TEXT", "SITE-HEADER-TEXT", "FOOTER-TEXT", "NOSCRIPT"):
        assert dropped not in text
    assert doc.meta["title"] == "Harbour Guide"


def test_html_without_main_drops_navigation(tmp_path: Path) -> None:
    path = tmp_path / "plain.html"
    path.write_text("<body><nav>MENU</nav><div role='navigation'>CRUMBS</div><p>Body text here.</p></body>")
    doc = load_file(path)
    assert [u.text for u in doc.units] == ["Body text here."]


def test_html_footnotes_in_an_aside_are_kept_but_sidebars_are_not(tmp_path: Path) -> None:
    """docutils/Sphinx write footnotes as <aside class="footnote" role="note">: they are content, not chrome."""
    path = tmp_path / "notes.html"
    path.write_text(
        "<body><div role='main'><p>The protocol changed in 3.8.<a href='#f1'>1</a></p>"
        "<aside class='footnote-list brackets'><aside class='footnote brackets' id='f1' role='note'>"
        "<p>Pickle protocol 5 was added by PEP 574.</p></aside></aside>"
        "<aside class='sidebar'><p>SEE ALSO THE TUTORIAL</p></aside>"
        "<aside role='doc-endnotes'><p>Endnote about buffers.</p></aside></div></body>")
    text = " ".join(u.text for u in load_file(path).units)
    assert "PEP 574" in text and "Endnote about buffers" in text
    assert "SEE ALSO" not in text


def test_html_deep_nesting_is_read(files: dict[str, Path]) -> None:
    start = time.monotonic()
    doc = load_file(files["html_deep"])
    assert time.monotonic() - start < 5.0
    assert doc.units[0].text == "Deep harbour text."


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("html_empty", "empty file"),
        ("html_only_scripts", "no readable text in this HTML page"),
        ("html_binary", "not text: looks like binary data"),
        ("html_is_pdf", "the content is a PDF file, not HTML"),
    ],
)
def test_html_bad_inputs(files: dict[str, Path], case: str, fragment: str) -> None:
    assert fragment in error_of(files[case])


def test_docx_paragraphs_tables_and_section_paths(files: dict[str, Path]) -> None:
    doc = load_file(files["docx_good"])
    assert doc.kind is Kind.DOCX
    assert sections(doc) == EXPECTED_SECTIONS
    tides = doc.units[2].text
    assert "High tide at the north pier is at 06:12." in tides and "High | 06:12" in tides
    assert doc.meta["title"] == "Harbour Guide"


@pytest.mark.parametrize(
    ("case", "fragment"),
    [
        ("docx_truncated", "damaged or truncated Word document"),
        ("docx_encrypted", "encrypted Word document: a password is needed"),
        ("docx_old_doc", "old Word 97-2003 document (.doc)"),
        ("docx_empty", "no text in this Word document"),
        ("docx_zip_bomb", "zip bomb"),
        ("docx_not_word", "not a Word document (no word/document.xml)"),
    ],
)
def test_docx_bad_inputs(files: dict[str, Path], case: str, fragment: str) -> None:
    start = time.monotonic()
    assert fragment in error_of(files[case])
    assert time.monotonic() - start < 2.0


def test_docx_that_is_a_pdf(tmp_path: Path) -> None:
    path = tmp_path / "x.docx"
    path.write_bytes(b"%PDF-1.7\n...")
    assert "the content is a PDF file, not a Word document" in error_of(path)


# --- section paths for every kind, carried into chunks and stored ---------------------------------------------


def test_pdf_outline_becomes_the_section_path(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for title, level, text in [
        ("Guide", 0, "Welcome aboard."), ("Safety", 1, "Wear a life jacket."), ("Tides", 2, "High tide 06:12."),
        (None, 0, "More about tides on a second page."), ("Keepers", 1, "Ada Smith kept the light."),
    ]:
        pdf.add_page()
        if title:
            pdf.start_section(title, level=level)
        pdf.multi_cell(0, 8, text)
    path = tmp_path / "guide.pdf"
    path.write_bytes(bytes(pdf.output()))
    doc = load_file(path)
    assert [(u.page, u.section) for u in doc.units] == [
        (1, "Guide"), (2, "Guide › Safety"), (3, "Guide › Safety › Tides"), (4, "Guide › Safety › Tides"),
        (5, "Guide › Keepers"),
    ]


def test_markdown_sections_have_a_path(tmp_path: Path) -> None:
    doc = load_file(badinputs.write_md_good(tmp_path))
    assert [u.section for u in doc.units] == [None, "Harbor Light", "Keepers"]


def test_chunks_carry_the_section(files: dict[str, Path]) -> None:
    from localrag.ingest.chunker import chunk_units

    class WordTokenizer:  # the chunker's Tokenizer interface, one token per word
        def counts(self, texts: list[str]) -> list[int]:
            return [len(t.split()) for t in texts]

        def offsets(self, text: str) -> list[tuple[int, int]]:
            import re

            return [m.span() for m in re.finditer(r"\S+", text)]

    doc = load_file(files["docx_good"])
    chunks = chunk_units(doc.units, WordTokenizer(), chunk_tokens=64, overlap=8, max_model_tokens=128)
    assert {c.section for c in chunks} == {s for _, s in EXPECTED_SECTIONS}
    tides = [c for c in chunks if "06:12" in c.text]
    assert tides and all(c.section == "Harbour Guide › Safety › Tides" for c in tides)


def test_a_data_directory_made_before_the_section_column_still_opens(tmp_path: Path) -> None:
    import sqlite3

    from sqlalchemy import inspect

    from localrag.index.store import Store

    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the chunks table as the first release created it
        conn.execute(
            "CREATE TABLE chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, collection_id INTEGER, document_id INTEGER, "
            "ordinal INTEGER, text TEXT, page INTEGER, kg_uri TEXT, label TEXT, n_tokens INTEGER, "
            "text_sha256 VARCHAR(64), embedding BLOB)"
        )
        conn.execute(
            "INSERT INTO chunks (ordinal, text, n_tokens, text_sha256, embedding) VALUES (0, 'old', 1, 'x', x'00')"
        )
    store = Store.sqlite(db)
    assert "section" in {c["name"] for c in inspect(store.engine).get_columns("chunks")}
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT text, section FROM chunks").fetchall() == [("old", None)]
    Store.sqlite(db)  # opening again is a no-op
