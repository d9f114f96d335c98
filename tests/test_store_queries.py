"""The store's read queries for the facade: Store.collection_stats (what `status` shows of a collection's rows) and
Store.document_list (what `documents` lists), on real ingests."""

from __future__ import annotations

import re
from collections import Counter

from localrag.index.store import CollectionRow
from tests.conftest import SAMPLE

KIND_OF = {".md": "markdown", ".txt": "text", ".pdf": "pdf", ".ttl": "rdf"}


def test_collection_stats_counts_the_sample_collection(sample_rag):
    store = sample_rag.store
    coll = store.collection("default")
    stats = store.collection_stats(coll.id)
    files = sorted(p for p in SAMPLE.iterdir() if p.is_file())
    assert stats["documents"] == len(files) and stats["duplicates"] == 0
    assert stats["kinds"] == dict(Counter(KIND_OF[p.suffix] for p in files))
    assert stats["chunks"] == len(store.chunk_ids(coll.id))
    rdf = next(d for d in store.document_list(coll.id) if d["kind"] == "rdf")
    assert stats["kg_nodes"] == rdf["chunks"]  # each node is one searchable unit
    assert stats["kg_edges"] > stats["kg_nodes"]
    run = stats["last_run"]
    assert run["command"] == "ingest" and run["status"] == "finished" and isinstance(run["id"], int)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", run["started"])
    shown = sample_rag.status()["collections"][0]
    assert {key: shown[key] for key in stats} == stats


def test_document_list_gives_each_document_by_source(sample_rag):
    store = sample_rag.store
    docs = store.document_list(store.collection("default").id)
    assert [d["source"] for d in docs] == sorted(d["source"] for d in docs)
    assert [d["name"] for d in docs] == sorted(p.name for p in SAMPLE.iterdir() if p.is_file())
    pdf = next(d for d in docs if d["kind"] == "pdf")
    assert pdf["pages"] == 7 and pdf["title"] == "Port Wren Harbour Handbook" and pdf["chunks"] > 0
    md = next(d for d in docs if d["name"] == "gannet-head-lighthouse.md")
    assert md["pages"] is None and md["title"] == "Gannet Head Lighthouse" and md["status"] == "ok"
    assert md["size"] == (SAMPLE / "gannet-head-lighthouse.md").stat().st_size
    assert all(d["warnings"] == [] and d["duplicate_of"] is None and d["ingested"] is not None for d in docs)
    assert set(docs[0]) == {"source", "name", "kind", "status", "duplicate_of", "chunks", "pages", "title", "size",
                            "ingested", "warnings"}
    assert docs == sample_rag.documents()


def test_duplicates_and_collections_are_counted_apart(rag_factory, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    text = "The lighthouse keeper trimmed the wick at dusk and logged the weather. " * 4
    (docs / "a.txt").write_text(text)
    (docs / "b.txt").write_text(text)  # the same content: stored once
    (docs / "c.md").write_text("# Kelp\n\nKelp canopy surveys at Skerry Point are counted by divers.\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "d.txt").write_text("The ferry timetable changes in winter.")
    rag = rag_factory()
    rag.ingest([docs])
    rag.ingest([other], collection="other")
    with rag.store.session() as s:
        s.add(CollectionRow(name="empty", embedding_model="m", embedding_dim=384, chunk_tokens=200, chunk_overlap=32))

    coll = rag.store.collection("default")
    stats = rag.store.collection_stats(coll.id)
    assert (stats["documents"], stats["duplicates"], stats["kg_nodes"], stats["kg_edges"]) == (2, 1, 0, 0)
    assert stats["kinds"] == {"text": 1, "markdown": 1}  # the duplicate is not counted as a document
    listed = {d["name"]: d for d in rag.store.document_list(coll.id)}
    assert sorted(listed) == ["a.txt", "b.txt", "c.md"]
    dup = next(d for d in listed.values() if d["status"] == "duplicate")
    kept = listed["b.txt" if dup["name"] == "a.txt" else "a.txt"]
    assert dup["duplicate_of"] == kept["source"] and dup["chunks"] == 0 and kept["chunks"] > 0

    assert [d["name"] for d in rag.store.document_list(rag.store.collection("other").id)] == ["d.txt"]
    assert rag.store.collection_stats(rag.store.collection("other").id)["documents"] == 1
    empty = rag.store.collection_stats(rag.store.collection("empty").id)
    assert empty == {"documents": 0, "duplicates": 0, "chunks": 0, "kg_nodes": 0, "kg_edges": 0, "kinds": {},
                     "last_run": None}
    assert rag.store.document_list(rag.store.collection("empty").id) == []
