"""Loader tests: every good and hostile input gives the right outcome, a useful message, and no hang."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localrag.ingest.document import Kind, LoadedDocument, LoadError, UnsupportedType
from localrag.ingest.loaders import SUPPORTED_SUFFIXES, detect_kind, load_file
from localrag.ingest.rdf import MAX_JSONLD_DEPTH
from localrag.ingest.text import MAX_COMBINING_MARKS, clean_text

try:
    from tests import badinputs
except ImportError:  # tests/ is on sys.path but the repository root is not
    import badinputs

HANG_GUARD_S = 5.0


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return badinputs.write_all(tmp_path_factory.mktemp("inputs"))


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection or resolve a name fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def load(path: Path) -> LoadedDocument:
    return load_file(path)


def load_error(path: Path) -> str:
    with pytest.raises(LoadError) as info:
        load_file(path)
    return str(info.value)


def all_text(doc: LoadedDocument) -> str:
    return "\n".join(unit.text for unit in doc.units)


# --- every case: outcome and hang guard ------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(badinputs.WRITERS))
def test_every_case_finishes_quickly_with_the_expected_outcome(files: dict[str, Path], case: str) -> None:
    start = time.monotonic()
    try:
        doc = load_file(files[case])
        error = None
    except LoadError as err:
        doc, error = None, str(err)
    elapsed = time.monotonic() - start
    assert elapsed < HANG_GUARD_S, f"{case} took {elapsed:.1f} s"
    if case in badinputs.GOOD_CASES:
        assert error is None, error
        assert doc is not None and doc.units
        assert all(unit.text.strip() for unit in doc.units)
        assert "\x00" not in all_text(doc)
    else:
        assert error, f"{case} should have failed"


# --- suffixes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a.pdf", Kind.PDF),
        ("a.PDF", Kind.PDF),
        ("a.txt", Kind.TEXT),
        ("a.text", Kind.TEXT),
        ("a.md", Kind.MARKDOWN),
        ("a.Markdown", Kind.MARKDOWN),
        ("a.ttl", Kind.RDF),
        ("a.turtle", Kind.RDF),
        ("a.rdf", Kind.RDF),
        ("a.owl", Kind.RDF),
        ("a.nt", Kind.RDF),
        ("a.jsonld", Kind.RDF),
        ("a.json-ld", Kind.RDF),
        ("a.n3", Kind.RDF),
        ("a.xml", Kind.RDF),
        ("a.nq", Kind.RDF),
        ("a.trig", Kind.RDF),
        ("a.html", Kind.HTML),
        ("a.htm", Kind.HTML),
        ("a.docx", Kind.DOCX),
    ],
)
def test_detect_kind(name: str, kind: Kind) -> None:
    assert detect_kind(Path(name)) is kind


def test_supported_suffixes_are_lowercase_with_dot() -> None:
    assert all(s.startswith(".") and s == s.lower() for s in SUPPORTED_SUFFIXES)


@pytest.mark.parametrize(("case", "suffix"), [("pptx", ".pptx"), ("gz", ".gz")])
def test_unsupported_types(files: dict[str, Path], case: str, suffix: str) -> None:
    with pytest.raises(UnsupportedType) as info:
        load_file(files[case])
    message = str(info.value)
    assert f"unsupported type '{suffix}'" in message
    assert ".pdf" in message and ".ttl" in message


def test_no_suffix_is_unsupported(tmp_path: Path) -> None:
    path = tmp_path / "README"
    path.write_text("hello")
    with pytest.raises(UnsupportedType, match="unsupported type"):
        load_file(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "not found" in load_error(tmp_path / "missing.txt")


# --- PDF -------------------------------------------------------------------------------------------------


def test_pdf_pages_carry_their_numbers(files: dict[str, Path]) -> None:
    doc = load(files["pdf_good"])
    assert doc.kind is Kind.PDF
    assert [unit.page for unit in doc.units] == [1, 3]  # page 2 is blank and skipped
    for unit in doc.units:
        assert badinputs.PDF_PAGE_TEXTS[unit.page] in unit.text
    assert doc.meta["pages"] == "3"
    assert doc.meta["title"] == badinputs.PDF_TITLE
    assert doc.warnings == []


def test_pdf_encrypted_needs_password(files: dict[str, Path]) -> None:
    message = load_error(files["pdf_encrypted"])
    assert "encrypted" in message and "password" in message and "qpdf --decrypt" in message


def test_pdf_owner_password_only_is_ingested(files: dict[str, Path]) -> None:
    doc = load(files["pdf_owner_only"])
    assert [unit.page for unit in doc.units] == [1, 3]
    assert any("owner password" in w for w in doc.warnings)


def test_pdf_image_only(files: dict[str, Path]) -> None:
    message = load_error(files["pdf_image_only"])
    assert "no extractable text" in message and "OCR" in message


def test_pdf_truncated(files: dict[str, Path]) -> None:
    assert "damaged or truncated PDF" in load_error(files["pdf_truncated"])


def test_pdf_random_bytes(files: dict[str, Path]) -> None:
    assert "not a PDF (no %PDF header)" in load_error(files["pdf_random"])


def test_pdf_empty(files: dict[str, Path]) -> None:
    assert "empty file" in load_error(files["pdf_empty"])


def test_pdf_logging_is_silenced(files: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG"):
        load_error(files["pdf_truncated"])
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]


# --- text ------------------------------------------------------------------------------------------------


def test_txt_random_bytes_is_binary(files: dict[str, Path]) -> None:
    message = load_error(files["txt_random"])
    assert message.startswith("not text: looks like binary data")


@pytest.mark.parametrize("case", ["txt_empty", "txt_whitespace"])
def test_txt_empty(files: dict[str, Path], case: str) -> None:
    assert load_error(files[case]) == "empty file: nothing to ingest"


def test_txt_latin1(files: dict[str, Path]) -> None:
    doc = load(files["txt_latin1"])
    text = all_text(doc)
    assert "Un café au lait" in text and "très" in text and "Brücke" in text
    assert doc.meta["encoding"] in {"cp1252", "latin_1", "iso8859_1"}
    assert any("guessed" in w for w in doc.warnings)


def test_txt_utf16_with_bom(files: dict[str, Path]) -> None:
    doc = load(files["txt_utf16"])
    assert all_text(doc).startswith("Grüße aus Köln.")
    assert doc.meta["encoding"] == "utf-16-le"
    assert doc.warnings == []


def test_txt_utf16_without_bom(tmp_path: Path) -> None:
    path = tmp_path / "nobom.txt"
    path.write_bytes("Hello from a BOM-less file.\n".encode("utf-16-be"))
    doc = load(path)
    assert all_text(doc) == "Hello from a BOM-less file."
    assert any("guessed" in w for w in doc.warnings)


def test_txt_nul_bytes_never_reach_output(files: dict[str, Path]) -> None:
    doc = load(files["txt_nul"])
    text = all_text(doc)
    assert "\x00" not in text
    assert "The lighthouse keeper's log." in text
    assert any("NUL" in w for w in doc.warnings)


def test_txt_five_megabyte_single_line(files: dict[str, Path]) -> None:
    start = time.monotonic()
    doc = load(files["txt_long_line"])
    assert time.monotonic() - start < HANG_GUARD_S
    assert len(doc.units) == 1
    assert len(doc.units[0].text) >= badinputs.LONG_LINE_BYTES - 16


def test_txt_combining_flood_and_emoji(files: dict[str, Path]) -> None:
    doc = load(files["txt_combining"])
    text = all_text(doc)
    longest = max((len(m.group()) for m in re.finditer("[\u0300-\u036f]+", text)), default=0)
    assert longest <= MAX_COMBINING_MARKS
    assert "\U0001f468\u200d\U0001f469\u200d\U0001f467" in text and "\U0001f44d\U0001f3fd" in text
    assert "café and résumé" in text  # NFC composed the ordinary accents
    assert any("combining" in w for w in doc.warnings)


def test_markdown_sections(files: dict[str, Path]) -> None:
    doc = load(files["md_good"])
    assert doc.kind is Kind.MARKDOWN
    assert [unit.label for unit in doc.units] == [None, "Harbor Light", "Keepers"]
    assert "## Details" in doc.units[1].text
    assert "# not a heading" in doc.units[1].text  # headings inside code fences do not split


def test_clean_text_rules() -> None:
    text, stats = clean_text("a\x00b\x07c  \t d\r\n\r\n\r\n\r\ne\u00a0f   \nte\u0301")
    assert text == "abc d\n\ne f\nt\u00e9"
    assert stats.nul == 1 and stats.control == 1


# --- RDF -------------------------------------------------------------------------------------------------


def harbor_unit(doc: LoadedDocument):
    units = {unit.kg_uri: unit for unit in doc.units}
    return units["http://example.org/harbor#HarborLight"]


def test_turtle_node_text(files: dict[str, Path]) -> None:
    doc = load(files["ttl_good"])
    assert doc.kind is Kind.RDF
    unit = harbor_unit(doc)
    assert unit.label == "Harbor Light"
    assert unit.text.splitlines()[0] == "Harbor Light"
    assert "Type: Lighthouse" in unit.text
    assert "A white lighthouse on the north pier." in unit.text
    assert "Harbor Light was built by Ada Smith." in unit.text
    assert "Harbor Light has height 32." in unit.text
    assert "Phare du port" not in unit.text  # English preferred when several languages exist
    nodes = {node.uri: node for node in doc.nodes}
    harbor = nodes["http://example.org/harbor#HarborLight"]
    assert harbor.label == "Harbor Light"
    assert harbor.types == ["http://example.org/harbor#Lighthouse"]
    assert harbor.description == "A white lighthouse on the north pier."
    edges = {(e.subject, e.predicate, e.object, e.object_is_uri) for e in doc.edges}
    assert (
        "http://example.org/harbor#HarborLight",
        "http://example.org/harbor#builtBy",
        "http://example.org/harbor#AdaSmith",
        True,
    ) in edges
    assert (
        "http://example.org/harbor#HarborLight", "http://example.org/harbor#height", "32", False
    ) in edges


@pytest.mark.parametrize("case", ["rdfxml_good", "nt_good", "jsonld_good"])
def test_other_formats_give_the_same_node(files: dict[str, Path], case: str) -> None:
    unit = harbor_unit(load(files[case]))
    assert unit.label == "Harbor Light"
    assert "Type: Lighthouse" in unit.text
    assert "Harbor Light was built by Ada Smith." in unit.text


def test_turtle_syntax_error_names_the_line(files: dict[str, Path]) -> None:
    message = load_error(files["ttl_syntax_error"])
    assert message.startswith(f"Turtle syntax error at line {badinputs.TURTLE_ERROR_LINE}:")


def test_ntriples_syntax_error_names_the_line(files: dict[str, Path]) -> None:
    assert "N-Triples syntax error at line 2" in load_error(files["nt_syntax_error"])


def test_unlabelled_nodes_are_searchable_by_local_name(files: dict[str, Path]) -> None:
    doc = load(files["ttl_no_labels"])
    unit = {u.kg_uri: u for u in doc.units}["http://example.org/harbor#GannetHead"]
    assert unit.label == "GannetHead"
    assert "Type: Lighthouse" in unit.text
    assert "GannetHead is located in Portsmouth." in unit.text
    assert "GannetHead has height metres 41." in unit.text
    assert "GannetHead has first lit 1871-05-01." in unit.text
    assert any("no label or description" in w for w in doc.warnings)


def test_blank_nodes_only_is_an_error(files: dict[str, Path]) -> None:
    assert "nothing to search in this graph" in load_error(files["ttl_blank_only"])


@pytest.mark.parametrize("case", ["rdfxml_billion_laughs", "rdfxml_xxe"])
def test_rdfxml_dtd_rejected_fast(files: dict[str, Path], case: str) -> None:
    start = time.monotonic()
    message = load_error(files[case])
    assert time.monotonic() - start < 1.0
    assert "DOCTYPE/ENTITY" in message and "remove the DTD" in message
    assert "root:" not in message


def test_ntriples_long_literal_goes_in_fast(files: dict[str, Path]) -> None:
    start = time.monotonic()
    doc = load(files["nt_long_literal"])
    assert time.monotonic() - start < 2.0
    unit = {u.kg_uri: u for u in doc.units}["http://example.org/a"]
    assert "x" * badinputs.NT_LITERAL_BYTES in unit.text  # in full, not cut to the fact-sentence length


@pytest.mark.parametrize(
    ("case", "url"),
    [("jsonld_remote_context", badinputs.REMOTE_CONTEXT), ("jsonld_nested_remote_context", "http://evil.test/c")],
)
def test_jsonld_remote_context_rejected(files: dict[str, Path], case: str, url: str) -> None:
    message = load_error(files[case])
    assert "remote @context" in message and url in message and "inline the context" in message


def test_jsonld_deep_nesting(files: dict[str, Path]) -> None:
    assert "JSON-LD nested too deeply" in load_error(files["jsonld_deep"])


@pytest.mark.parametrize("depth", [300, 900])
def test_jsonld_depth_limit_below_json_recursion_limit(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "deep.jsonld"
    nested = "[" * depth + "]" * depth
    path.write_text('{"@id": "http://example.org/x", "http://example.org/p": ' + nested + "}")
    assert f"nested too deeply (more than {MAX_JSONLD_DEPTH} levels)" in load_error(path)


def test_jsonld_import_in_context_rejected(tmp_path: Path) -> None:
    path = tmp_path / "import.jsonld"
    path.write_text('{"@context": {"@version": 1.1, "@import": "https://example.org/ctx"}, "@id": "urn:x"}')
    assert "remote @context (https://example.org/ctx)" in load_error(path)


def test_jsonld_invalid_json(files: dict[str, Path]) -> None:
    assert load_error(files["jsonld_invalid"]).startswith("not valid JSON-LD: line 3 column")


def test_blank_node_ids_and_order_are_stable_across_processes(tmp_path: Path) -> None:
    """rdflib's blank node labels and iteration order change with PYTHONHASHSEED; our output must not."""
    path = tmp_path / "anon.ttl"
    path.write_text(
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        '[] rdfs:label "Anonymous light" ; <http://example.org/near> [ rdfs:label "Rock" ] , '
        '[ rdfs:label "Reef" ] ; <http://example.org/seenFrom> <http://example.org/Quay> .\n'
    )
    script = (
        "import sys; from pathlib import Path; from ingest.loaders import load_file; "
        "d = load_file(Path(sys.argv[1])); "
        "print([(u.kg_uri, u.text) for u in d.units], [(e.subject, e.predicate, e.object) for e in d.edges])"
    )
    root = Path(__file__).resolve().parent.parent
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            cwd=root, env=env, capture_output=True, text=True, timeout=60,
        )
        assert result.returncode == 0, result.stderr
        outputs.add(result.stdout)
    assert len(outputs) == 1
    doc = load(path)
    assert sum(unit.kg_uri.startswith("_:") for unit in doc.units) == 3
    text = all_text(doc)
    assert "Anonymous light is near Reef." in text and "Anonymous light is near Rock." in text


def test_pdf_page_that_fails_is_skipped_with_a_warning(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pypdf import PageObject

    original = PageObject.extract_text

    def flaky(self: PageObject, *args: object, **kwargs: object) -> str:
        if "Ada Smith" in original(self):
            raise ValueError("broken font program")
        return original(self)

    monkeypatch.setattr(PageObject, "extract_text", flaky)
    doc = load(files["pdf_good"])
    assert [unit.page for unit in doc.units] == [1]
    assert any("page 3" in w and "broken font program" in w for w in doc.warnings)
