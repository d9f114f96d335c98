"""RDF parsed with pyoxigraph: long literals and deep nesting go in, content is sniffed, errors name the line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from localrag.ingest.document import LoadedDocument, LoadError
from localrag.ingest.loaders import load_file

try:
    from tests import badinputs
except ImportError:  # tests/ is on sys.path but the repository root is not
    import badinputs

HARBOR = "http://example.org/harbor#HarborLight"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return badinputs.write_all(tmp_path_factory.mktemp("rdf"))


def units_by_uri(doc: LoadedDocument) -> dict[str, str]:
    return {u.kg_uri: u.text for u in doc.units}


def error_of(path: Path) -> str:
    with pytest.raises(LoadError) as info:
        load_file(path)
    return str(info.value)


def test_rdflib_parsers_are_not_used_for_turtle(files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from rdflib import Graph

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("rdflib's parser was used")

    monkeypatch.setattr(Graph, "parse", refuse)
    for case in ("ttl_good", "nt_good", "rdfxml_good", "jsonld_good"):
        assert "Harbor Light was built by Ada Smith." in units_by_uri(load_file(files[case]))[HARBOR]


def test_long_abstract_on_one_line_is_searchable_in_full(files: dict[str, Path]) -> None:
    start = time.monotonic()
    doc = load_file(files["ttl_long_literal"])
    assert time.monotonic() - start < 3.0
    text = units_by_uri(doc)["http://example.org/harbor#Report"]
    assert text.startswith("Harbour report")
    assert "Abstract of Harbour report:" in text
    assert text.rstrip().endswith(badinputs.TTL_ABSTRACT_END)  # the end of the 1.9 MB line is there too


def test_deep_but_legal_nesting_goes_in(files: dict[str, Path]) -> None:
    doc = load_file(files["ttl_deep_nesting"])
    assert int(doc.meta["triples"]) > 3 * 5_000
    assert units_by_uri(doc)["http://example.org/Root"].startswith("Deep root")


def test_rdfxml_saved_as_xml_is_ingested(files: dict[str, Path]) -> None:
    doc = load_file(files["rdfxml_as_xml"])
    assert doc.meta["format"] == "RDF/XML"
    assert "Harbor Light was built by Ada Smith." in units_by_uri(doc)[HARBOR]
    assert doc.warnings == []


def test_other_xml_is_reported_clearly(files: dict[str, Path]) -> None:
    message = error_of(files["xml_not_rdf"])
    assert "XML, but not RDF/XML" in message and "<project>" in message


def test_owl_xml_is_named(tmp_path: Path) -> None:
    path = tmp_path / "onto.owl"
    path.write_text('<?xml version="1.0"?>\n<Ontology xmlns="http://www.w3.org/2002/07/owl#"/>\n')
    assert "OWL/XML is not supported" in error_of(path)


def test_content_that_contradicts_the_suffix(files: dict[str, Path]) -> None:
    assert error_of(files["ttl_is_pdf"]) == "the content is a PDF file, not RDF: give it a .pdf suffix"
    doc = load_file(files["ttl_is_rdfxml"])
    assert "Harbor Light was built by Ada Smith." in units_by_uri(doc)[HARBOR]
    assert any("content is RDF/XML although the suffix '.ttl' says Turtle" in w for w in doc.warnings)


def test_html_saved_as_rdf(tmp_path: Path) -> None:
    path = tmp_path / "page.rdf"
    path.write_text("<!DOCTYPE html>\n<html><body><p>Not RDF</p></body></html>\n")
    assert "HTML page, not RDF" in error_of(path)


def test_turtle_saved_as_rdf_is_read_as_turtle(tmp_path: Path) -> None:
    path = tmp_path / "vocab.rdf"
    path.write_text(badinputs.GOOD_TURTLE)
    doc = load_file(path)
    assert doc.meta["format"] == "Turtle"
    assert any("content is Turtle" in w for w in doc.warnings)


def test_malformed_rdfxml_names_the_line(files: dict[str, Path]) -> None:
    message = error_of(files["xml_malformed_rdf"])
    assert message.startswith("RDF/XML syntax error at line 6:"), message


def test_bad_utf8_names_the_line(files: dict[str, Path]) -> None:
    message = error_of(files["nt_bad_utf8"])
    assert message.startswith("N-Triples syntax error at line 2:") and "UTF-8" in message


@pytest.mark.parametrize("suffix", [".xml", ".rdf"])
def test_billion_laughs_refused_for_every_xml_suffix(files: dict[str, Path], tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"laughs{suffix}"
    path.write_bytes(files["rdfxml_billion_laughs"].read_bytes())
    start = time.monotonic()
    assert "DOCTYPE/ENTITY" in error_of(path)
    assert time.monotonic() - start < 1.0


def test_utf16_rdfxml_with_bom(tmp_path: Path, files: dict[str, Path]) -> None:
    path = tmp_path / "utf16.rdf"
    path.write_bytes(files["rdfxml_good"].read_text().encode("utf-16"))
    assert "Harbor Light was built by Ada Smith." in units_by_uri(load_file(path))[HARBOR]


def test_nquads_and_trig_merge_their_graphs(tmp_path: Path) -> None:
    label = "<http://www.w3.org/2000/01/rdf-schema#label>"
    nq = tmp_path / "g.nq"
    nq.write_text(
        f'<http://e/a> {label} "Alpha" <http://e/g1> .\n<http://e/a> <http://e/near> <http://e/b> <http://e/g2> .\n'
    )
    trig = tmp_path / "g.trig"
    trig.write_text(
        f'<http://e/g1> {{ <http://e/a> {label} "Alpha" . }}\n{{ <http://e/a> <http://e/near> <http://e/b> }}\n'
    )
    for path in (nq, trig):
        assert "Alpha is near b." in units_by_uri(load_file(path))["http://e/a"]


def test_n3_with_rules_falls_back_to_rdflib(tmp_path: Path) -> None:
    path = tmp_path / "rules.n3"
    path.write_text(
        "@prefix : <http://e/> .\n@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        ':a rdfs:label "Alpha" ; :near :b .\n{ ?x :near ?y } => { ?y :near ?x } .\n'
    )
    assert "Alpha is near b." in units_by_uri(load_file(path))["http://e/a"]


def test_duplicate_triples_count_once(tmp_path: Path) -> None:
    path = tmp_path / "dup.nt"
    line = '<http://e/a> <http://www.w3.org/2000/01/rdf-schema#label> "A" .\n'
    path.write_text(line * 3)
    assert load_file(path).meta["triples"] == "1"


def test_empty_graph(tmp_path: Path) -> None:
    path = tmp_path / "prefixes.ttl"
    path.write_text("@prefix ex: <http://example.org/> .\n")
    assert error_of(path) == "no triples in this Turtle file: nothing to ingest"
