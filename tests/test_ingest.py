"""Ingestion end to end with the real embedder: idempotence, updates, sync/remove, duplicates, bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from localrag.app.rag import ModelMismatch, RagError
from localrag.index.store import ChunkRow, KgEdgeRow, KgNodeRow
from localrag.ingest.job import Status
from tests import badinputs
from tests.helpers import assert_consistent


def by_name(report) -> dict[str, object]:
    return {Path(o.source).name: o for o in report.outcomes}


def test_sample_ingest_then_unchanged(rag_factory, sample_copy, tmp_path):
    rag = rag_factory()
    progress = []
    first = rag.ingest([sample_copy], progress=progress.append)
    assert first.exit_code == 0, first.to_dict()
    names = by_name(first)
    assert all(o.status is Status.INGESTED for o in first.outcomes)
    assert {"harbour-handbook.pdf", "port-wren.ttl", "gannet-head-lighthouse.md"} <= set(names)
    assert progress and progress[-1].files_done == progress[-1].files_total == len(first.outcomes)
    st = assert_consistent(tmp_path / "data")
    assert len(st["db_ids"]) == first.chunks_embedded > 0

    with rag.store.session() as s:
        pages = set(s.scalars(select(ChunkRow.page).where(ChunkRow.page.is_not(None))))
        uris = s.scalars(select(ChunkRow.kg_uri).where(ChunkRow.kg_uri.is_not(None))).all()
        n_nodes = len(s.scalars(select(KgNodeRow.id)).all())
        n_edges = len(s.scalars(select(KgEdgeRow.id)).all())
        max_tokens = max(s.scalars(select(ChunkRow.n_tokens)))
    assert pages >= {1, 2, 3, 4, 5}, "PDF chunks carry page numbers"
    assert uris and all(u.startswith("http") for u in uris)
    assert n_nodes > 10 and n_edges > 10
    assert max_tokens <= rag.embedder.max_tokens - 2

    second = rag.ingest([sample_copy])
    assert {o.status for o in second.outcomes} == {Status.UNCHANGED}
    assert second.chunks_embedded == 0
    st2 = assert_consistent(tmp_path / "data")
    assert st2["db_version"] == st["db_version"], "an unchanged re-ingest must not bump the corpus version"


def test_changed_file_replaces_its_chunks(rag_factory, sample_copy, tmp_path):
    rag = rag_factory()
    doc = sample_copy / "wren-loaf-bakery.md"
    rag.ingest([sample_copy])
    from localrag.index.store import DocumentRow

    with rag.store.session() as s:
        old_ids = set(s.scalars(
            select(ChunkRow.id).join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .where(DocumentRow.source == str(doc))
        ))
    before = assert_consistent(tmp_path / "data")
    doc.write_text(doc.read_text() + "\n\nThe bakery now sells a zanzibarine seaweed focaccia on Tuesdays.\n")
    report = rag.ingest([sample_copy])
    assert by_name(report)["wren-loaf-bakery.md"].status is Status.UPDATED
    assert sum(o.status is Status.UNCHANGED for o in report.outcomes) == len(report.outcomes) - 1
    after = assert_consistent(tmp_path / "data")
    assert len(set(after["db_ids"]) - set(before["db_ids"])) > 0
    assert old_ids and not (old_ids & set(after["db_ids"])), "the old chunks of the changed file are gone"
    assert set(before["db_ids"]) - old_ids <= set(after["db_ids"]), "other files' chunks are untouched"
    hits = rag.search("zanzibarine focaccia", k=3, mode="lexical")
    assert hits and hits[0].source.endswith("wren-loaf-bakery.md")


def test_sync_and_remove(rag_factory, sample_copy, tmp_path):
    rag = rag_factory()
    rag.ingest([sample_copy])
    (sample_copy / "birdwatching-guide.md").unlink()
    report = rag.sync([sample_copy])
    assert by_name(report)["birdwatching-guide.md"].status is Status.REMOVED
    st = assert_consistent(tmp_path / "data")
    assert not any(k.endswith("birdwatching-guide.md") for k in st["docs"])

    report = rag.remove([str(sample_copy / "port-wren.ttl"), str(sample_copy / "nope.md")])
    assert [o.status for o in report.outcomes] == [Status.REMOVED, Status.ERROR]
    assert "not in this collection" in report.outcomes[1].reason
    assert report.exit_code == 1
    st = assert_consistent(tmp_path / "data")
    with rag.store.session() as s:
        assert not s.scalars(select(KgNodeRow.id)).all(), "KG nodes go with their document"
    assert not rag.search("RV Kittiwake Halloran Marine yard number", k=3, mode="lexical") or all(
        not h.source.endswith(".ttl") for h in rag.search("Halloran Marine", k=3, mode="lexical")
    )


def test_identical_content_is_stored_once_and_survives_removal(rag_factory, tmp_path):
    rag = rag_factory()
    d = tmp_path / "docs"
    d.mkdir()
    text = "Port Wren's tide gauge sits on the north pier. It reports every six minutes.\n"
    (d / "a.txt").write_text(text)
    (d / "b copy.txt").write_text(text)
    report = rag.ingest([d])
    assert sorted(o.status.value for o in report.outcomes) == ["duplicate", "ingested"]
    dup = next(o for o in report.outcomes if o.status is Status.DUPLICATE)
    assert "stored once" in dup.reason
    st = assert_consistent(tmp_path / "data")
    n_chunks = len(st["db_ids"])
    # removing the stored copy hands its chunks to the duplicate: nothing is lost, nothing re-embedded
    rag.remove([str(d / "a.txt")])
    st = assert_consistent(tmp_path / "data")
    assert len(st["db_ids"]) == n_chunks
    assert st["docs"] == {str(d / "b copy.txt"): "ok"}
    hits = rag.search("tide gauge north pier", k=1)
    assert hits[0].source == str(d / "b copy.txt")


def test_model_mismatch_is_a_clear_error(rag_factory, tmp_path, sample_copy):
    rag = rag_factory()
    rag.ingest([sample_copy / "port-wren-history.md"])
    other = rag_factory(tmp_path / "data", embedding_model=str(tmp_path / "some-other-model"))
    (tmp_path / "some-other-model").mkdir()
    with pytest.raises(ModelMismatch, match="was built with the embedding model"):
        other.ingest([sample_copy / "wren-loaf-bakery.md"])
    with pytest.raises(ModelMismatch):
        other.search("bread")
    with pytest.raises(RagError, match="no collection named 'nope'"):
        rag.search("bread", collection="nope")


def test_collections_are_separate(rag_factory, sample_copy, tmp_path):
    rag = rag_factory()
    rag.ingest([sample_copy / "wren-loaf-bakery.md"], collection="food")
    rag.ingest([sample_copy / "community-microgrid.txt"], collection="energy")
    assert_consistent(tmp_path / "data", "food")
    assert_consistent(tmp_path / "data", "energy")
    assert all(h.source.endswith("wren-loaf-bakery.md") for h in rag.search("battery", collection="food"))
    names = [c["name"] for c in rag.status()["collections"]]
    assert names == ["energy", "food"]


def test_bad_inputs_are_reported_and_good_files_still_go_in(rag_factory, tmp_path):
    rag = rag_factory()
    d = tmp_path / "mixed"
    d.mkdir()
    files = badinputs.write_all(d)
    # the 5 MB line is ~2,000 chunks to embed (slow on CPU); its chunking is covered in test_chunker.py
    files.pop("txt_long_line").unlink()
    # likewise the 2 MB RDF literals (read in full now: test_rdf.py) and the deep graph (test_rdf.py)
    for big in ("nt_long_literal", "ttl_long_literal", "ttl_deep_nesting"):
        files.pop(big).unlink()
    (d / "good notes.md").write_text("# Notes\n\nThe ferry to Skerry Point leaves at 09:40 on weekdays.\n")
    (d / "-leading-dash.txt").write_text("A file whose name starts with a dash is still a file.\n")
    (d / "..leading-dots.txt").write_text("Leading dots are fine too.\n")
    (d / "ünïcödé naïve.txt").write_text("Unicode names work.\n")
    (d / "loop").symlink_to(d, target_is_directory=True)
    (d / "dangling.txt").symlink_to(d / "does-not-exist.txt")
    (d / "alias.md").symlink_to(d / "good notes.md")
    report = rag.ingest([d])
    out = by_name(report)
    assert report.exit_code == 1
    for name in ("good notes.md", "-leading-dash.txt", "..leading-dots.txt", "ünïcödé naïve.txt"):
        assert out[name].status is Status.INGESTED, (name, out[name])
    # each real file once: the symlink alias and the loop add nothing
    sources = [o.source for o in report.outcomes]
    assert len(sources) == len(set(sources))
    assert sum(Path(s).name == "good notes.md" for s in sources) == 1
    assert "broken symbolic link" in out["dangling.txt"].reason
    errors = {n: o.reason for n, o in out.items() if o.status is Status.ERROR}
    for key, fragment in {
        "pdf_encrypted": "password",
        "pdf_image_only": "no extractable text",
        "ttl_syntax_error": "line",
        "rdfxml_billion_laughs": "DOCTYPE",
        "jsonld_remote_context": "remote @context",
    }.items():
        name = files[key].name
        assert name in errors and fragment.lower() in errors[name].lower(), (key, errors.get(name))
    # found by walking a folder, unsupported types are skipped (named explicitly, they are errors)
    assert out[files["pptx"].name].status is Status.SKIPPED
    assert "unsupported type" in out[files["pptx"].name].reason
    explicit = rag.ingest([files["gz"]])
    assert explicit.outcomes[0].status is Status.ERROR and explicit.exit_code == 1
    # the good ones are searchable; nothing with a NUL byte was stored
    st = assert_consistent(tmp_path / "data")
    assert len(st["db_ids"]) > 0
    with rag.store.session() as s:
        assert not [t for t in s.scalars(select(ChunkRow.text)) if "\x00" in t]
    assert rag.search("ferry Skerry Point", k=1)[0].source.endswith("good notes.md")


def test_per_file_time_limit_stops_a_hanging_loader(rag_factory, tmp_path, monkeypatch):
    import localrag.ingest.job

    monkeypatch.setattr(localrag.ingest.job, "DEFAULT_LOADER", "tests.fakes:fake_slow_loader")
    rag = rag_factory(file_timeout_s=2)
    d = tmp_path / "docs"
    d.mkdir()
    (d / "a.txt").write_text("Alpha file about gannets.\n")
    (d / "b-slow.txt").write_text("This one hangs the (fake) loader.\n")
    (d / "c.txt").write_text("Gamma file about kittiwakes.\n")
    report = rag.ingest([d])
    out = by_name(report)
    assert out["b-slow.txt"].status is Status.ERROR
    assert "per-file limit" in out["b-slow.txt"].reason
    assert out["a.txt"].status is out["c.txt"].status is Status.INGESTED
    assert_consistent(tmp_path / "data")


def test_a_crashing_loader_costs_one_file(rag_factory, tmp_path, monkeypatch):
    import localrag.ingest.job

    monkeypatch.setattr(localrag.ingest.job, "DEFAULT_LOADER", "tests.fakes:fake_crashing_loader")
    rag = rag_factory()
    d = tmp_path / "docs"
    d.mkdir()
    for name in ("a.txt", "b-crash.txt", "c.txt"):
        (d / name).write_text(f"Contents of {name} about the harbour.\n")
    out = by_name(rag.ingest([d]))
    assert out["b-crash.txt"].status is Status.ERROR and "crashed" in out["b-crash.txt"].reason
    assert out["a.txt"].status is out["c.txt"].status is Status.INGESTED


def test_failed_update_keeps_previous_version(rag_factory, tmp_path):
    rag = rag_factory()
    f = tmp_path / "notes.txt"
    f.write_text("The harbour office opens at eight.\n")
    rag.ingest([f])
    f.write_bytes(bytes(range(256)) * 50)  # now binary garbage
    report = rag.ingest([f])
    assert report.outcomes[0].status is Status.ERROR
    assert "previously ingested version is kept" in report.outcomes[0].reason
    assert rag.search("harbour office", k=1)[0].source == str(f)


def test_reconcile_repairs_indexes_without_reembedding(rag_factory, sample_copy, tmp_path):
    from localrag.index.vectors import FaissVectorIndex

    data = tmp_path / "data"
    rag = rag_factory()
    rag.ingest([sample_copy])
    st = assert_consistent(data)
    folder = data / "collections" / "0001"
    vi, meta = FaissVectorIndex.load(folder / "vectors.faiss", 384, use_gpu=False)
    vi.remove(st["db_ids"][:5])  # chunks without vectors
    vi.add(np.array([10_000_000]), np.ones((1, 384), np.float32) / np.sqrt(384))  # a vector without a chunk
    vi.save(folder / "vectors.faiss", {"corpus_version": meta["corpus_version"] - 1, "collection": meta["collection"]})
    shutil.rmtree(folder / "bm25-bm25s")
    rag2 = rag_factory(data)
    status = rag2.status()["collections"][0]
    assert status["index"]["in_step"]
    assert_consistent(data)


def test_index_files_of_another_collection_with_the_same_id_are_rebuilt(rag_factory, tmp_path):
    """A database recreated (or another machine's) can give a new collection the id and corpus_version numbers of
    the one whose index files are still in the data directory: those files must not pass as up to date."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    texts_a = {"a1.md": "The harbour crane lifts up to 40 tonnes and was installed in 2011.",
               "a2.md": "Sourdough loaves are baked every morning at the cooperative bakery.",
               "a3.md": "Spring tides at the harbour mouth reach 5.8 metres above chart datum."}
    texts_b = {"b1.md": "The pottery kiln on Mill Lane fires stoneware at 1280 degrees.",
               "b2.md": "The island ferry leaves the slipway at seven and returns at noon.",
               "b3.md": "The village school teaches forty pupils in two mixed classes."}
    for folder, texts in ((a, texts_a), (b, texts_b)):
        for name, text in texts.items():
            (folder / name).write_text(f"# {name}\n\n{text}\n")
    rag_a, rag_b = rag_factory(tmp_path / "da"), rag_factory(tmp_path / "db")
    rag_a.ingest([a])
    rag_b.ingest([b])
    ca, cb = rag_a.store.collection("default"), rag_b.store.collection("default")
    assert (ca.id, ca.corpus_version) == (cb.id, cb.corpus_version)  # the numbers agree, the contents do not
    rag_b.close()
    folder_b = tmp_path / "db" / "collections" / "0001"
    shutil.rmtree(folder_b)
    shutil.copytree(tmp_path / "da" / "collections" / "0001", folder_b)  # b's data dir now holds a's index files
    rag_b2 = rag_factory(tmp_path / "db")
    lexical = rag_b2.search("stoneware", k=1, mode="lexical")
    assert lexical and lexical[0].source.endswith("b1.md")
    for name, text in texts_b.items():
        hits = rag_b2.search(text, k=1, mode="dense")
        assert hits and hits[0].source.endswith(name), (name, [h.source for h in hits])
    assert_consistent(tmp_path / "db")


# --- lean loader worker (issue 15) -------------------------------------------------------------------------


def test_loader_worker_does_not_rerun_the_parents_main_script(tmp_path: Path) -> None:
    """spawn re-runs the parent's main script in the child; a script importing torch at top level made every
    worker hold ~0.5 GB. The marker line at the script's top level must run once (in the parent) only."""
    import subprocess
    import sys

    marker = tmp_path / "imports.log"
    doc = tmp_path / "note.txt"
    doc.write_text("The keeper lit the lamp.\n")
    script = tmp_path / "user_script.py"
    script.write_text(
        "import os, sys\n"
        f"open({str(marker)!r}, 'a').write(f'{{os.getpid()}}\\n')\n"
        "from pathlib import Path\n"
        "from localrag.ingest.worker import LoaderPool\n"
        "if __name__ == '__main__':\n"
        "    with LoaderPool(timeout_s=60) as pool:\n"
        "        pool.submit(Path(sys.argv[1]))\n"
        "        result = pool.take()\n"
        "    assert result.error is None, result.error\n"
        "    print(result.document.units[0].text)\n"
    )
    out = subprocess.run([sys.executable, str(script), str(doc)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "The keeper lit the lamp." in out.stdout
    assert len(marker.read_text().split()) == 1


def test_loaders_import_only_what_the_kind_needs(tmp_path: Path) -> None:
    import subprocess
    import sys

    doc = tmp_path / "note.txt"
    doc.write_text("The keeper lit the lamp.\n")
    code = (
        "import sys; from pathlib import Path; from localrag.ingest.loaders import load_file; "
        f"load_file(Path({str(doc)!r})); "
        "print(sorted(m for m in ('pypdf', 'rdflib', 'pyoxigraph', 'docx', 'selectolax', 'torch', 'numpy') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
