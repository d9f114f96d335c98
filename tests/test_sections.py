"""Section paths and OCR marks, from the loaders to what a person reads: markdown headings and PDF outlines give each
chunk the heading path where it starts ("Guide › Safety › Tides"), without moving any chunk boundary; the path flows
through search hits, answer sources and citations (`Answer.to_dict`, --json) into the CLI and the UI as
"Guide › Safety › Tides, p. 4", and chunks of pages read by OCR are marked "(OCR)"."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from localrag.app.answering import Answer, Citation, Source
from localrag.app.cli import app
from localrag.ingest.chunker import chunk_units
from localrag.ingest.document import Unit
from localrag.ingest.loaders import load_file
from localrag.retrieval.types import Hit, cite_location

try:
    from tests.test_ocr import write_scanned_pdf
except ImportError:  # tests/ is on sys.path but the repository root is not
    from test_ocr import write_scanned_pdf

GUIDE_MD = """Printed by the Harbour Commission.

# Harbour Guide

Welcome to the harbour of Port Wren, a small fishing port on a rocky coast.

## Safety

Wear a life jacket on the pontoons and keep children away from the quay edge at all times.

### Tides

The spring tide at Skerry Point reaches 5.2 metres at high water, so check the tables before you sail.

```
# a comment in code, not a heading
```

## Keepers

Tom Rowe kept the light from 1902 to 1931 and wrote a logbook every night.
"""


class WordTokenizer:
    """The chunker's Tokenizer interface with one token per word: chunk boundaries a test can predict."""

    def counts(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"\S+", text)]


def write_manual_pdf(path: Path) -> Path:
    """Two pages with an outline Handbook > Moorings, Fuel; the sections start in the middle of their pages, where
    their titles are printed ("2. Moorings")."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)

    def line(text: str) -> None:
        pdf.multi_cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")

    pdf.add_page()
    pdf.start_section("Handbook", level=0)
    line("Handbook of the harbour.")
    line("The harbour office opens at eight every morning and closes at six.")
    pdf.start_section("Moorings", level=1)
    line("2. Moorings")
    line("Visitor moorings cost 3.20 pounds per metre per night, paid at the office.")
    pdf.add_page()
    line("Winter storage ashore is booked through the harbour master by September, and boats are lifted out by "
         "the crane at the boat park in October.")
    pdf.start_section("Fuel", level=1)
    line("3. Fuel")
    line("Diesel is sold at the fuel berth on the North Mole until five in the evening.")
    path.write_bytes(bytes(pdf.output()))
    return path


def starts(chunks) -> list[tuple[str, str | None]]:  # noqa: ANN001 - ChunkDrafts
    return [(" ".join(c.text.split()[:3]), c.section) for c in chunks]


# --- markdown ---------------------------------------------------------------------------------------------------
def test_markdown_units_keep_their_text_and_know_where_nested_headings_start(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(GUIDE_MD)
    preamble, guide = load_file(tmp_path / "guide.md").units
    assert (preamble.section, preamble.section_starts) == (None, [])
    # one unit per top-level heading, as before (chunk boundaries depend on it); the deeper ones start inside it
    assert guide.text.startswith("# Harbour Guide") and guide.text.endswith("every night.")
    assert guide.label == guide.section == "Harbour Guide"
    inner = [(guide.text[offset:].split("\n")[0], path) for offset, path in guide.section_starts]
    assert inner == [
        ("## Safety", "Harbour Guide › Safety"),
        ("### Tides", "Harbour Guide › Safety › Tides"),
        ("## Keepers", "Harbour Guide › Keepers"),  # a ## closes the ### above it
    ]  # and the "#" line in the code fence is no heading


def test_markdown_heading_paths_drop_markup_and_count_headings_before_the_first_top_level_one(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text(
        "### Draft\n\nNot yet reviewed.\n\n## Part **one**: [the quay](quay.md)\n\nThe quay is old.\n\n"
        "#### `Depth`\n\nFour metres.\n"
    )
    preamble, unit = load_file(tmp_path / "notes.md").units  # ## is the top level: one unit per ##, as before
    assert (preamble.label, preamble.section) == (None, "Draft")  # a heading at the very start of a unit
    assert unit.label == "Part **one**: [the quay](quay.md)"  # the label is unchanged
    assert unit.section == "Part one: the quay"  # the ## closed the ### above it
    assert [p for _, p in unit.section_starts] == ["Part one: the quay › Depth"]


def test_markdown_chunks_take_the_path_where_they_start(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(GUIDE_MD)
    units = load_file(tmp_path / "guide.md").units
    chunks = chunk_units(units, WordTokenizer(), chunk_tokens=24, overlap=0, max_model_tokens=128)
    assert starts(chunks) == [
        ("Printed by the", None),
        ("# Harbour Guide", "Harbour Guide"),  # starts with its heading: in that section
        ("Wear a life", "Harbour Guide › Safety"),  # "## Safety" ended the chunk before
        ("The spring tide", "Harbour Guide › Safety › Tides"),
        ("# a comment", "Harbour Guide › Safety › Tides"),  # in a code fence: no heading
        ("Tom Rowe kept", "Harbour Guide › Keepers"),
    ]
    # with overlap a chunk can start before a heading inside it: it belongs where it starts
    overlapping = chunk_units(units, WordTokenizer(), chunk_tokens=40, overlap=20, max_model_tokens=128)
    across = [c for c in overlapping if "## Keepers" in c.text]
    assert starts(across) == [("The spring tide", "Harbour Guide › Safety › Tides"),
                              ("``` # a", "Harbour Guide › Safety › Tides")]


def test_sections_never_move_chunk_boundaries(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text(GUIDE_MD * 3)
    units = load_file(tmp_path / "guide.md").units
    bare = [Unit(text=u.text, label=u.label) for u in units]
    for tokens, overlap in ((16, 0), (24, 8), (64, 16)):
        with_sections = chunk_units(units, WordTokenizer(), tokens, overlap, 128)
        without = chunk_units(bare, WordTokenizer(), tokens, overlap, 128)
        assert [c.text for c in with_sections] == [c.text for c in without]


def test_an_oversized_sentence_cut_into_pieces_gets_the_path_of_each_piece() -> None:
    text = "# Top\n\n" + " ".join(f"w{i}" for i in range(30)) + "\n\n## Deep\n\n" + " ".join(f"v{i}" for i in range(30))
    unit = Unit(text=text, section="Top", section_starts=[(text.index("## Deep"), "Top › Deep")])
    chunks = chunk_units([unit], WordTokenizer(), chunk_tokens=10, overlap=0, max_model_tokens=128)
    assert [c.section for c in chunks if c.text.startswith("w")] == ["Top"] * 3
    assert [c.section for c in chunks if c.text.startswith("v")] == ["Top › Deep"] * 3


# --- PDF outlines ------------------------------------------------------------------------------------------------
def test_pdf_outline_sections_start_where_their_title_is_printed(tmp_path: Path) -> None:
    doc = load_file(write_manual_pdf(tmp_path / "manual.pdf"))
    first, second = doc.units
    assert (first.page, first.section) == (1, "Handbook")
    assert [(first.text[o:].split("\n")[0], p) for o, p in first.section_starts] == [
        ("2. Moorings", "Handbook › Moorings")]
    assert (second.page, second.section) == (2, "Handbook › Moorings")  # carried over from page 1
    assert [(second.text[o:].split("\n")[0], p) for o, p in second.section_starts] == [
        ("3. Fuel", "Handbook › Fuel")]
    chunks = chunk_units(doc.units, WordTokenizer(), chunk_tokens=30, overlap=0, max_model_tokens=128)
    assert starts(chunks) == [
        ("Handbook of the", "Handbook"),
        ("2. Moorings Visitor", "Handbook › Moorings"),
        ("Winter storage ashore", "Handbook › Moorings"),
        ("3. Fuel Diesel", "Handbook › Fuel"),
    ]
    assert all(c.page == c_page for c, c_page in zip(chunks, (1, 1, 2, 2), strict=True))


def test_pdf_outline_siblings_on_one_page_in_document_order(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    pdf.add_page()
    for title, level in (("Part A", 0), ("Chapter 1", 1), ("Part B", 0)):  # bookmarks only, no printed titles
        pdf.start_section(title, level=level)
    pdf.multi_cell(0, 8, "Text of the page.")
    pdf.add_page()
    pdf.multi_cell(0, 8, "Text of the next page.")
    path = tmp_path / "parts.pdf"
    path.write_bytes(bytes(pdf.output()))
    assert [(u.page, u.section) for u in load_file(path).units] == [(1, "Part B"), (2, "Part B")]


def test_a_broken_outline_entry_loses_only_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypdf import PdfReader

    real = PdfReader.get_destination_page_number

    def broken_for_fuel(self, destination):  # noqa: ANN001, ANN202
        if destination.title == "Fuel":
            raise KeyError("/Page")
        return real(self, destination)

    monkeypatch.setattr(PdfReader, "get_destination_page_number", broken_for_fuel)
    doc = load_file(write_manual_pdf(tmp_path / "manual.pdf"))
    assert [(u.section, [p for _, p in u.section_starts]) for u in doc.units] == [
        ("Handbook", ["Handbook › Moorings"]), ("Handbook › Moorings", [])]


def test_title_offset_needs_the_title_to_begin_a_line() -> None:
    from localrag.ingest.sections import title_offset

    text = "We discuss tides below.\n2.3  Tides and\nstreams\nThe tide rises."
    assert title_offset(text, "Tides and streams") == text.index("2.3")
    assert title_offset(text, "tides") == text.index("2.3")  # not "discuss tides" in the middle of a line
    assert title_offset(text, "Currents") is None


# --- the citation string -------------------------------------------------------------------------------------------
def test_files_chunked_by_an_older_release_are_read_again_once(tmp_path: Path, rag_factory) -> None:  # noqa: ANN001
    """A data directory from before the section paths: its Markdown chunks carry only the top-level heading and its
    documents no reader version. The next ingest re-reads those unchanged files (reported as updated, with why), the
    chunks get their full paths and the indexes stay in step; the ingest after that finds them unchanged."""
    from sqlalchemy import select, update

    from localrag.index.store import ChunkRow, DocumentRow
    from localrag.ingest.job import READER_VERSION, reader_version

    docs = tmp_path / "docs"
    docs.mkdir()
    filler = " ".join(f"Line {i} of the harbour notes tells of boats, nets and weather." for i in range(40))
    (docs / "guide.md").write_text(
        f"# Harbour Guide\n\n{filler}\n\n## Safety\n\n{filler}\n\n### Tides\n\n{filler} The spring tide at "
        f"Skerry Point reaches 5.2 metres at high water. {filler}\n")
    (docs / "notes.txt").write_text("The ferry to Gannet Head leaves at nine from the north quay. " * 5)
    rag = rag_factory(tmp_path / "data")
    rag.ingest([docs])
    with rag.store.session() as s:  # what an older release left: no reader version, top-level sections only
        assert {reader_version(m) for m in s.scalars(select(DocumentRow.meta))} == {READER_VERSION}
        s.execute(update(DocumentRow).values(meta=None))
        s.execute(update(ChunkRow).where(ChunkRow.section.is_not(None)).values(section="Harbour Guide"))
        s.commit()
    ids_before = set(rag.store.chunk_ids(rag.store.collection("default").id).tolist())

    report = rag.ingest([docs])
    by_name = {Path(o.source).name: o for o in report.outcomes}
    assert {n: o.status.value for n, o in by_name.items()} == {"guide.md": "updated", "notes.txt": "updated"}
    assert "re-read" in by_name["guide.md"].reason and f"now {READER_VERSION}" in by_name["guide.md"].reason
    with rag.store.session() as s:
        sections = set(s.scalars(select(ChunkRow.section)))
        assert "Harbour Guide › Safety › Tides" in sections
        assert {reader_version(m) for m in s.scalars(select(DocumentRow.meta))} == {READER_VERSION}
    coll = rag.store.collection("default")
    ids_after = set(rag.store.chunk_ids(coll.id).tolist())
    assert ids_after and not ids_after & ids_before  # new chunks replaced the old ones
    assert rag.status()["collections"][0]["index"]["in_step"]
    assert rag.search("spring tide at Skerry Point", k=1)[0].section == "Harbour Guide › Safety › Tides"

    again = rag.ingest([docs])
    assert {o.status.value for o in again.outcomes} == {"unchanged"}


def test_cite_location_is_one_format() -> None:
    assert cite_location("Guide › Safety › Tides", 4) == "Guide › Safety › Tides, p. 4"
    assert cite_location("Guide › Safety", None) == "Guide › Safety"
    assert cite_location(None, 4, ocr=True) == "p. 4 (OCR)"
    assert cite_location(None, None) == ""
    hit = Hit(1, "t", "/d/g.pdf", "pdf", page=4, section="Guide › Safety › Tides", ocr=True)
    assert hit.location == "Guide › Safety › Tides, p. 4 (OCR)" and hit.to_dict()["location"] == hit.location
    assert Hit(2, "t", "/d/g.ttl", "rdf", kg_uri="http://ex.org/a").location == "http://ex.org/a"


def test_answer_to_dict_carries_the_citation_string_and_reads_back() -> None:
    source = Source(n=1, chunk_id=7, source="/d/guide.pdf", kind="pdf", text="High tide is at 06:12.", tokens=8,
                    relevance=0.9, page=4, section="Guide › Safety › Tides", ocr=True)
    ans = Answer(question="When is high tide?", text="High tide is at 06:12 [1].", sources=[source],
                 citations=[Citation.of(source, "High tide is at 06:12.")])
    d = ans.to_dict()
    assert d["citations"][0]["location"] == "Guide › Safety › Tides, p. 4 (OCR)"
    assert d["citations"][0]["section"] == "Guide › Safety › Tides" and d["citations"][0]["ocr"] is True
    assert d["sources"][0]["location"] == "Guide › Safety › Tides, p. 4 (OCR)"
    back = Answer.from_dict(json.loads(json.dumps(d)))  # the answer cache and saved chats read it back
    assert back == ans
    old = json.loads(json.dumps(d))  # saved before sections existed
    for c in old["citations"] + old["sources"]:
        del c["section"], c["ocr"], c["location"]
    assert Answer.from_dict(old).citations[0].location == "p. 4"


# --- end to end: ingest, search, ask (CLI) ----------------------------------------------------------------------------
runner = CliRunner()


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """guide.md, manual.pdf and a scanned PDF (when Tesseract is installed, to OCR it)."""
    docs = tmp_path_factory.mktemp("docs")
    (docs / "guide.md").write_text(GUIDE_MD)
    write_manual_pdf(docs / "manual.pdf")
    if shutil.which("tesseract"):
        write_scanned_pdf(docs / "scan.pdf")
    return docs


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, docs: Path) -> Path:
    """A data directory with `docs` ingested in small chunks (so that sections start chunks)."""
    data = tmp_path_factory.mktemp("data")
    res = runner.invoke(app, ["--data-dir", str(data), "ingest", str(docs), "--chunk-tokens", "32",
                              "--chunk-overlap", "0", "--json"])
    assert res.exit_code == 0, res.output
    return data


def ask(data: Path, question: str, *extra: str) -> str:
    res = runner.invoke(app, ["--data-dir", str(data), "ask", question, "--mode", "extractive", "--no-cache", *extra])
    assert res.exit_code == 0, res.output
    return res.stdout


def test_cli_ask_cites_the_section_path_and_page(library: Path) -> None:
    question = "How high does the spring tide at Skerry Point reach?"
    d = json.loads(ask(library, question, "--json"))
    first = d["citations"][0]
    assert first["source"].endswith("guide.md") and "5.2 metres" in first["quote"]
    assert first["section"] == "Harbour Guide › Safety › Tides" and first["location"] == first["section"]
    assert "[1] guide.md · Harbour Guide › Safety › Tides — " in ask(library, question)

    question = "How much do visitor moorings cost per night?"
    first = json.loads(ask(library, question, "--json"))["citations"][0]
    assert first["source"].endswith("manual.pdf") and "3.20 pounds" in first["quote"]
    assert first["location"] == "Handbook › Moorings, p. 1"
    assert "[1] manual.pdf · Handbook › Moorings, p. 1 — " in ask(library, question)


def test_cli_search_shows_the_section_path(library: Path) -> None:
    res = runner.invoke(app, ["--data-dir", str(library), "search", "diesel fuel berth", "-k", "1", "--json"])
    hit = json.loads(res.stdout)["hits"][0]
    assert (hit["section"], hit["page"], hit["location"]) == ("Handbook › Fuel", 2, "Handbook › Fuel, p. 2")
    res = runner.invoke(app, ["--data-dir", str(library), "search", "diesel fuel berth", "-k", "1"])
    assert res.exit_code == 0, res.output
    rows = [line.split("│") for line in res.stdout.splitlines() if line.startswith("│")]
    where = "".join(row[2].strip() for row in rows)  # the "source / where" column, wrapped over several lines
    assert where.endswith("/manual.pdfHandbook › Fuel,p. 2"), res.stdout


needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed")


@needs_tesseract
def test_chunks_of_ocr_pages_are_marked(docs: Path, library: Path) -> None:
    scan = load_file(docs / "scan.pdf")
    assert [(u.page, u.ocr) for u in scan.units] == [(1, False), (2, True)]
    chunks = chunk_units(scan.units, WordTokenizer(), chunk_tokens=4, overlap=0, max_model_tokens=128)
    assert {c.page: c.ocr for c in chunks} == {1: False, 2: True} and len(chunks) > 2

    res = runner.invoke(app, ["--data-dir", str(library), "search", "who built the harbour light", "-k", "8",
                              "--json"])
    hits = {(h["source"].rsplit("/", 1)[-1], h["page"]): h for h in json.loads(res.stdout)["hits"]}
    scanned, typed = hits[("scan.pdf", 2)], hits[("scan.pdf", 1)]
    assert "1899" in scanned["text"] and scanned["ocr"] is True and scanned["location"] == "p. 2 (OCR)"
    assert typed["ocr"] is False and typed["location"] == "p. 1"
    d = json.loads(ask(library, "Who built the harbour light, and when?", "--json"))
    cited = [c for c in d["citations"] if c["source"].endswith("scan.pdf")]
    assert cited and cited[0]["ocr"] is True and cited[0]["location"] == "p. 2 (OCR)"


# --- the UI (Streamlit AppTest) ------------------------------------------------------------------------------------
@pytest.fixture()
def served(library: Path, embedder):  # noqa: ANN001, ANN201 - the session's Embedder; yields the Rag
    """The Rag over `library`, served to the UI with extractive answers (no LLM)."""
    from localrag import Rag
    from localrag.ui import common

    rag = Rag.open(library, embedder=embedder, answer_mode="extractive", cache_enabled=False)
    common.provide_rag(rag)
    try:
        yield rag
    finally:
        common.provide_rag(None)
        rag.close()


def new_app():  # noqa: ANN201 - an AppTest
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "ui" / "app.py"), default_timeout=300)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_ui_chat_citations_and_search_hits_show_the_section_path(served) -> None:  # noqa: ANN001
    from localrag.ui.common import md_escape

    at = new_app()
    at.chat_input[0].set_value("How high does the spring tide at Skerry Point reach?").run()
    assert not at.exception, [e.value for e in at.exception]
    cite = next(e for e in at.expander if e.label.startswith("\\[1\\]"))
    assert cite.label == md_escape("[1] guide.md · Harbour Guide › Safety › Tides"), cite.label
    assert f"**Section:** {md_escape('Harbour Guide › Safety › Tides')}" in [m.value for m in cite.markdown]

    at.switch_page("page_search.py").run()
    at.text_input(key="search_query").input("diesel fuel berth")
    at.button[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    heads = [m.value for m in at.markdown if m.value.startswith("**1. ")]
    assert heads and heads[0].startswith(f"**1. manual\\.pdf** · {md_escape('Handbook › Fuel, p. 2')} · pdf"), heads


@needs_tesseract
def test_ui_marks_ocr_text(served) -> None:  # noqa: ANN001
    from localrag.ui.common import md_escape

    at = new_app()
    at.chat_input[0].set_value("Who built the harbour light, and when?").run()
    assert not at.exception, [e.value for e in at.exception]
    cite = next(e for e in at.expander if "scan\\.pdf" in e.label)
    assert cite.label.endswith(md_escape("scan.pdf · p. 2 (OCR)")), cite.label
    assert "**Page:** 2 (text read by OCR from the page image)" in [m.value for m in cite.markdown]
