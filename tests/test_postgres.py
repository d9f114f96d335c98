"""The store on PostgreSQL as well as SQLite: ingest / search / ask / remove / sync / crash repair on both, the ingest
lock as a PostgreSQL advisory lock across data directories ("machines"), and the Alembic migrations (new, stamped,
upgraded and pre-migration databases).

PostgreSQL is a real server (pgserver, started once per session by tests/conftest.py); each test gets a new
database. The corpus is small on purpose: these tests are about the store, not about retrieval quality."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select, text

from localrag.app.rag import RagError
from localrag.index import migrations
from localrag.index.store import Base, ChunkRow, CollectionRow, DocumentRow, KgNodeRow, Store, StoreError
from localrag.ingest.job import IngestLocked, Status
from tests.conftest import ROOT, SAMPLE

TALL = "How tall is the Gannet Head lighthouse?"
N_KILL_FILES = 40  # enough that the kill lands mid-run: with 10 the ingest sometimes finished first on a quiet machine
TTL = """@prefix ex: <http://example.org/wren/> .
@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .
ex:kittiwake a ex:Vessel ; rdfs:label "RV Kittiwake" ;
    rdfs:comment "A research vessel built by Halloran Marine for the marine research station." ;
    ex:builder ex:halloran .
ex:halloran a ex:Shipyard ; rdfs:label "Halloran Marine" ;
    rdfs:comment "A boatyard on the quay of Port Wren that builds survey vessels." .
"""


def _corpus(d: Path) -> Path:
    """Three small documents (markdown with headings, plain text, RDF) and one duplicate."""
    d.mkdir(parents=True)
    for name in ("gannet-head-lighthouse.md", "wren-loaf-bakery.md", "community-microgrid.txt"):
        shutil.copy(SAMPLE / name, d / name)
    shutil.copy(SAMPLE / "wren-loaf-bakery.md", d / "zz-bakery-copy.md")
    (d / "vessels.ttl").write_text(TTL)
    return d


def _by_name(report) -> dict[str, object]:
    return {Path(o.source).name: o for o in report.outcomes}


def _in_step(rag, collection: str = "default") -> dict:
    (coll,) = [c for c in rag.status()["collections"] if c["name"] == collection]
    idx = coll["index"]
    assert idx["in_step"] and idx["index_version"] == idx["corpus_version"] == coll["corpus_version"], coll
    return coll


# --- the library on both stores ---------------------------------------------------------------------------------
def test_ingest_search_ask_change_sync_remove(store_url, rag_factory, tmp_path):
    corpus = _corpus(tmp_path / "docs")
    rag = rag_factory(database_url=store_url)
    assert rag.store.dialect == ("sqlite" if store_url is None else "postgresql")

    first = rag.ingest([corpus])
    assert first.exit_code == 0, first.to_dict()
    names = _by_name(first)
    assert names["zz-bakery-copy.md"].status is Status.DUPLICATE
    assert {names[n].status for n in names if n != "zz-bakery-copy.md"} == {Status.INGESTED}
    coll = _in_step(rag)
    assert coll["chunks"] == first.chunks_embedded > 0 and coll["duplicates"] == 1
    shown = rag.status()["database"]  # never the password
    assert shown.startswith("sqlite:///") if store_url is None else ":***@" in shown, shown
    with rag.store.session() as s:
        sections = set(s.scalars(select(ChunkRow.section).where(ChunkRow.section.is_not(None))))
        assert any("Gannet Head" in x for x in sections), sections
        assert s.scalar(select(func.count()).select_from(KgNodeRow)) >= 2

    with pytest.raises(RagError, match="1 to 200 characters"):  # VARCHAR(200): PostgreSQL enforces it
        rag.ingest([corpus], collection="c" * 201)
    again = rag.ingest([corpus])
    assert {o.status for o in again.outcomes} == {Status.UNCHANGED}
    assert _in_step(rag)["corpus_version"] == coll["corpus_version"]

    hits = rag.search(TALL, k=3)
    assert hits and hits[0].source.endswith("gannet-head-lighthouse.md")
    assert rag.search("Halloran Marine research vessel", k=3, mode="lexical")[0].source.endswith("vessels.ttl")
    ans = rag.ask(TALL, answer_mode="extractive")
    assert not ans.abstained and ans.citations
    assert all(c.source.endswith("gannet-head-lighthouse.md") for c in ans.citations), ans.citations
    assert rag.ask(TALL, answer_mode="extractive").cached  # the answer cache works on this store too
    # PostgreSQL refuses NUL in text, SQLite takes it: a pasted NUL is stored (as U+FFFD on PostgreSQL), not an error
    assert not rag.ask(TALL.replace(" tall", " tall\x00"), answer_mode="extractive").abstained
    chat = rag.conversations.create("default", title="nul\x00title")
    rag.conversations.append(chat, "user", "still\x00 here?")
    assert rag.conversations.load(chat)["messages"][0]["content"].replace("\ufffd", "\x00") == "still\x00 here?"

    # one sync: a changed file replaces its chunks (its duplicate inherits the old content, no re-embedding) and a
    # deleted file's document goes
    bakery = corpus / "wren-loaf-bakery.md"
    bakery.write_text(bakery.read_text() + "\n\nThe bakery now sells a zanzibarine seaweed focaccia on Tuesdays.\n")
    (corpus / "community-microgrid.txt").unlink()
    synced = _by_name(rag.sync([corpus]))
    assert synced["wren-loaf-bakery.md"].status is Status.UPDATED
    assert synced["community-microgrid.txt"].status is Status.REMOVED
    assert rag.search("zanzibarine focaccia", k=1, mode="lexical")[0].source.endswith("wren-loaf-bakery.md")
    docs = {d["name"]: d for d in rag.documents()}
    assert docs["zz-bakery-copy.md"]["status"] == "ok" and docs["zz-bakery-copy.md"]["chunks"] > 0
    removed = rag.remove([str(corpus / "vessels.ttl"), str(corpus / "nope.md")])
    assert [o.status for o in removed.outcomes] == [Status.REMOVED, Status.ERROR]
    with rag.store.session() as s:
        assert s.scalar(select(func.count()).select_from(KgNodeRow)) == 0, "KG nodes go with their document"
        sources = set(s.scalars(select(DocumentRow.source)))
    assert {Path(x).name for x in sources} == {"gannet-head-lighthouse.md", "wren-loaf-bakery.md", "zz-bakery-copy.md"}
    _in_step(rag)
    assert not rag.ask(TALL, answer_mode="extractive").cached  # a new corpus version: not from the cache


def test_indexes_repaired_from_the_store_after_a_crash_between_commit_and_save(pg_url, rag_factory, tmp_path):
    """The state a crash leaves: committed rows whose index files were never saved (here: the files removed). The
    next open rebuilds them from the stored fp16 embeddings (SQLite: tests/test_ingest.py and test_crash.py)."""
    corpus = _corpus(tmp_path / "docs")
    data = tmp_path / "data"
    store_url = pg_url
    rag = rag_factory(data, database_url=store_url)
    rag.ingest([corpus])
    version = _in_step(rag)["corpus_version"]
    coll_dir = next((data / "collections").iterdir())
    rag.close()
    for child in coll_dir.iterdir():
        if child.name != "ingest.lock":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    rag2 = rag_factory(data, database_url=store_url)
    report = rag2.ingest([corpus])  # unchanged files; the indexes are repaired first
    assert report.repaired and report.repaired["vectors_added"] > 0, report.to_dict()
    assert _in_step(rag2)["corpus_version"] == version
    assert rag2.search(TALL, k=1)[0].source.endswith("gannet-head-lighthouse.md")


# --- PostgreSQL: two machines, one database ------------------------------------------------------------------------
def test_advisory_lock_across_data_dirs_and_indexes_catch_up(pg_url, rag_factory, tmp_path):
    """Two Rag objects with their own data directories (two machines) on one PostgreSQL database: while one ingests,
    the other's ingest and remove get IngestLocked at once; afterwards the second machine's indexes catch up
    from the store, and keep catching up with the first machine's later changes."""
    corpus = tmp_path / "docs"
    corpus.mkdir()
    shutil.copy(SAMPLE / "gannet-head-lighthouse.md", corpus)
    (corpus / "vessels.ttl").write_text(TTL)
    a = rag_factory(tmp_path / "machine-a", database_url=pg_url)
    b = rag_factory(tmp_path / "machine-b", database_url=pg_url)
    refused: list[BaseException] = []

    def progress(_p) -> None:
        if not refused:  # while a's ingest holds the lock
            for attempt in (lambda: b.ingest([corpus]), lambda: b.remove(["x"])):
                try:
                    attempt()
                except BaseException as exc:  # noqa: BLE001 - examined below
                    refused.append(exc)

    report = a.ingest([corpus], progress=progress)
    assert report.exit_code == 0
    assert len(refused) == 2 and all(isinstance(e, IngestLocked) for e in refused), refused
    assert "localrag ingest pid" in str(refused[0]) and "wait for it to finish" in str(refused[0])

    # b has no index files yet: they are built from the store (stored embeddings, no re-embedding) and saved
    assert b.search(TALL, k=1)[0].source.endswith("gannet-head-lighthouse.md")
    coll_b = _in_step(b)
    assert coll_b["corpus_version"] == _in_step(a)["corpus_version"]
    coll = b.store.collection("default")
    assert not b._new_indexes(coll).open(persist=False).any, "b's saved index files are in step"

    extra = tmp_path / "more"
    extra.mkdir()
    (extra / "pier.md").write_text("# Pier\n\nThe old pier of Port Wren has a quillwort garden at its end.\n")
    a.ingest([extra])
    assert b.search("quillwort garden pier", k=1, mode="lexical")[0].source.endswith("pier.md")
    _in_step(b)
    assert b.ingest([extra]).outcomes[0].status is Status.UNCHANGED  # the lock is free again, from b as well


def test_kill_dash_nine_during_an_ingest_into_postgresql_then_rerun_finishes(pg_url, rag_factory, tmp_path):
    """A real `localrag ingest` process: while it runs, an ingest from here (another data directory) gets IngestLocked
    naming it; killed (SIGKILL) after some documents were committed, its advisory lock dies with its connection, and
    the next ingest marks the run interrupted, repairs the indexes from the store and finishes."""
    import psycopg

    corpus = tmp_path / "docs"
    corpus.mkdir()
    words = "harbour tide keeper lantern kelp gannet storm ferry pier beacon skerry sound mooring quay gull".split()
    for i in range(N_KILL_FILES):
        lines = [" ".join(words[(i + j + k) % len(words)] for k in range(12)) + f" (file {i}, line {j})."
                 for j in range(30)]
        (corpus / f"doc-{i:02d}.txt").write_text("\n".join(lines))
    data = tmp_path / "data"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT),
           "LOCALRAG_DATABASE_URL": pg_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "localrag.app.cli", "--data-dir", str(data), "ingest", str(corpus), "--json"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)

    def committed() -> int:
        try:
            with psycopg.connect(plain, connect_timeout=2) as conn:
                return conn.execute("SELECT count(*) FROM documents").fetchone()[0]
        except psycopg.Error:
            return 0

    rag = rag_factory(data.parent / "elsewhere", database_url=pg_url)
    deadline = time.monotonic() + 240
    while committed() < 2:
        if proc.poll() is not None:
            pytest.fail(f"the ingest ended before the kill point: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("kill point never reached")
        time.sleep(0.05)
    try:
        with pytest.raises(IngestLocked, match=f"localrag ingest pid {proc.pid} on "):
            rag.ingest([corpus])
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    at_kill = committed()
    assert 2 <= at_kill < N_KILL_FILES

    deadline = time.monotonic() + 10
    while True:  # the server ends the killed process's session as soon as it sees the socket closed
        try:
            report = rag.ingest([corpus])
            break
        except IngestLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert report.exit_code == 0, report.to_dict()
    assert any("interrupted" in n for n in report.notes), report.notes
    counts = report.counts
    assert counts["unchanged"] == at_kill and counts["ingested"] == N_KILL_FILES - at_kill, counts
    assert _in_step(rag)["documents"] == N_KILL_FILES
    assert len(rag.search("kelp gannet storm", k=50, mode="lexical")) > 0


# --- migrations ----------------------------------------------------------------------------------------------------
def _old_release_sqlite(path: Path, with_section: bool, with_chat_tables: bool) -> None:
    """A database as the releases before migrations made it: `create_all` of the tables, no alembic_version; before
    chunks.section existed the column is missing, and before the chat tables existed those are missing."""
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        if not with_section:
            conn.execute(text("ALTER TABLE chunks DROP COLUMN section"))
        if not with_chat_tables:
            for table in ("feedback", "messages", "conversations"):
                conn.execute(text(f"DROP TABLE {table}"))
        conn.execute(text("INSERT INTO collections (id, name, embedding_model, embedding_dim, chunk_tokens, "
                          "chunk_overlap, corpus_version, created, updated) VALUES (1, 'default', 'm', 3, 200, 32, 1, "
                          "'2026-11-01 10:00:00', '2026-11-01 10:00:00')"))
        conn.execute(text("INSERT INTO documents (id, collection_id, source, kind, sha256, size, mtime, status, "
                          "n_chunks, ingested) VALUES (1, 1, '/old.md', 'markdown', 'ab', 3, 0, 'ok', 1, "
                          "'2026-11-01 10:00:00')"))
        conn.execute(text("INSERT INTO chunks (id, collection_id, document_id, ordinal, text, n_tokens, text_sha256, "
                          "embedding) VALUES (7, 1, 1, 0, 'old text', 2, 'cd', x'0000')"))
    engine.dispose()


@pytest.mark.parametrize(("with_section", "with_chat_tables"), [(True, True), (False, True), (False, False)])
def test_a_database_from_before_migrations_still_opens(tmp_path, with_section, with_chat_tables):
    db = tmp_path / "localrag.sqlite"
    _old_release_sqlite(db, with_section, with_chat_tables)
    store = Store.sqlite(db)
    assert store.schema == "adopted"
    with store.engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.head_revision()
        tables = set(inspect(conn).get_table_names())
        columns = {c["name"] for c in inspect(conn).get_columns("chunks")}
    assert {"conversations", "messages", "feedback", "alembic_version"} <= tables and "section" in columns
    with store.session() as s:  # the old rows are kept, the new column is NULL for them
        assert s.execute(select(ChunkRow.id, ChunkRow.text, ChunkRow.section)).all() == [(7, "old text", None)]
    store.engine.dispose()
    assert Store.sqlite(db).schema == "current"  # the next open has nothing to do


def test_migrations_build_the_same_schema_as_the_models(store_url, tmp_path):
    """Upgrading revision by revision from an empty database (first to the baseline, then on open) gives exactly the
    tables, columns, indexes and constraints the models declare; a new database made by create_all is stamped."""
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    url = store_url or f"sqlite:///{tmp_path / 'm.sqlite'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0001_baseline")
    with engine.connect() as conn:
        assert "section" not in {c["name"] for c in inspect(conn).get_columns("chunks")}
    engine.dispose()
    store = Store(url)
    assert store.schema == "upgraded"
    with store.engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.head_revision()
        # SQLite does not enforce VARCHAR lengths, so 0003 leaves its types alone: compare types on PostgreSQL only
        ctx = MigrationContext.configure(conn, opts={"compare_type": store.dialect != "sqlite"})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], diff
    with store.session() as s:  # a file over 2 GiB: PostgreSQL's INTEGER would overflow (migration 0004)
        coll = CollectionRow(name="c", embedding_model="m", embedding_dim=3, chunk_tokens=200, chunk_overlap=32)
        s.add(coll)
        s.flush()
        s.add(DocumentRow(collection_id=coll.id, source="/big.txt", kind="text", sha256="0", size=3 * 2**30, mtime=0))
    with store.session() as s:
        assert s.scalar(select(DocumentRow.size)) == 3 * 2**30
    store.engine.dispose()

    fresh = tmp_path / "fresh.sqlite"
    assert Store.sqlite(fresh).schema == "created"
    with sqlite3.connect(fresh) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(migrations.head_revision(),)]


def test_first_opens_of_a_new_database_at_once_migrate_it_once(store_url, tmp_path):
    url = store_url or f"sqlite:///{tmp_path / 'race.sqlite'}"
    results: list[object] = []

    def open_store() -> None:
        try:
            s = Store(url)
            results.append(s.schema)
            s.engine.dispose()
        except BaseException as exc:  # noqa: BLE001 - examined below
            results.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(map(str, results)) == ["created", "current", "current", "current"], results


def test_a_database_from_a_newer_release_and_bad_urls_are_clear_errors(tmp_path):
    db = tmp_path / "new.sqlite"
    Store.sqlite(db).engine.dispose()
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0099_from_the_future'")
    with pytest.raises(StoreError, match="newer localrag"):
        Store.sqlite(db)
    with pytest.raises(StoreError, match="not a SQLAlchemy URL"):
        Store("localhost:5432/rag")
    with pytest.raises(StoreError, match="cannot open the database"):
        Store(f"postgresql://nobody@/rag?host={tmp_path}/no-server")
