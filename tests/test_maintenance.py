"""Index maintenance after the ingest (CollectionIndexes.maintain, index/indexes.py): the ingest saves its changes
first, searches read them while the FAISS flat -> IVF switch and the BM25 merges run, and maintenance stopped
anywhere (an exception, or the process killed at each of its file switches) leaves a consistent collection
whose searches give the same results."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from localrag.index import lexical as lexmod
from localrag.index import vectors as vecmod
from localrag.index.indexes import CollectionIndexes
from localrag.ingest.job import CollectionLock

# IVF4 probed in all 4 lists: exhaustive, so its top-k is the flat index's and results before and after the
# switch can be compared exactly (ids); tiny chunks so that 10 small files cross the threshold of 16 vectors
OPTS = {"faiss_ann_threshold": 16, "faiss_index": "IVF4,Flat", "faiss_nprobe": 4, "chunk_tokens": 16,
        "chunk_overlap": 0}
QUERIES = ["microgrid note 3-7", "lighthouse kelp", "ferry tide note 9", "bakery sandpiper council"]


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    words = "lighthouse kelp harbour microgrid bakery sandpiper vessel council tide ferry".split()
    for k in range(10):  # ~20 chunks each, one segment each
        body = " ".join(f"{words[(k + j) % 10]} note {k}-{j} {words[(3 * k + j) % 10]}." for j in range(60))
        (docs / f"f{k}.txt").write_text(body)
    return docs


def _results(rag) -> dict:
    """Top-5 ids per query and mode, and the lexical leg's exact BM25 of them."""
    out = {}
    for q in QUERIES:
        for mode in ("lexical", "dense", "hybrid"):
            hits = rag.search(q, k=5, mode=mode)
            out[q, mode] = [(h.chunk_id, h.scores.get("lexical")) for h in hits]
    return out


def _saved_state(folder: Path) -> tuple:
    vec = json.loads((folder / "vectors.json").read_text())
    lex = json.loads((folder / "bm25-bm25s" / "current.json").read_text())
    return vec["corpus_version"], vec.get("index"), lex["corpus_version"], len(lex["segments"])


def _no_maintenance(monkeypatch) -> None:
    monkeypatch.setattr(CollectionIndexes, "maintain", lambda self: [])


def test_the_ingest_saves_before_maintaining_and_searches_read_the_saved_files_meanwhile(
    rag_factory, tmp_path, monkeypatch
):
    docs = _docs(tmp_path)
    rag = rag_factory(**OPTS)
    seen: dict = {}
    real = CollectionIndexes.maintain

    def spy(self):
        seen["saved"] = _saved_state(self.folder)
        seen["version"] = rag.store.corpus_version(self.collection_id)
        seen["segments"] = self.lexical.segment_count
        reader = rag_factory(rag.data_dir, **OPTS)  # another searcher: the ingest holds the lock, it reads the files
        seen["during"] = _results(reader)
        return real(self)

    monkeypatch.setattr(CollectionIndexes, "maintain", spy)
    report = rag.ingest([docs])
    assert report.exit_code == 0
    version, kind, lex_version, segments = seen["saved"]
    assert version == lex_version == seen["version"] > 0  # the ingest's changes were saved before maintenance
    assert kind == "flat" and segments == seen["segments"] > 1  # ... as they were: not switched, not merged
    assert any("index maintenance" in n for n in report.notes), report.notes
    version, kind, lex_version, segments = _saved_state(rag._folder(rag.store.collection("default")))
    assert version == lex_version == seen["version"] and kind.startswith("IVF4,Flat") and segments == 1
    after = _results(rag_factory(rag.data_dir, **OPTS))
    assert after == seen["during"] and all(after.values())
    assert rag.status()["collections"][0]["index"]["in_step"]


def _needing_maintenance(rag_factory, tmp_path, monkeypatch):
    """A collection whose ingest skipped maintenance (flat over the IVF threshold, BM25 in several segments), and
    its search results."""
    docs = _docs(tmp_path)
    with monkeypatch.context() as m:
        _no_maintenance(m)
        rag = rag_factory(**OPTS)
        assert rag.ingest([docs]).exit_code == 0
    state = _saved_state(rag._folder(rag.store.collection("default")))
    assert state[1] == "flat" and state[3] > 1
    return rag, _results(rag_factory(rag.data_dir, **OPTS))


def _maintain(rag) -> list[str]:
    coll = rag.store.collection("default")
    with CollectionLock(rag._folder(coll), rag.store, coll.id):
        idx = rag._new_indexes(coll)
        idx.open(persist=True)
        return idx.maintain()


def _fail_bm25_switch(monkeypatch) -> None:
    real = lexmod.atomic_write_json

    def write(path, obj):
        if path.name == "current.json":
            raise OSError("injected: the new segments are written, current.json is not switched")
        real(path, obj)

    monkeypatch.setattr(lexmod, "atomic_write_json", write)


def _fail_faiss_meta(monkeypatch) -> None:
    def write_meta(self, meta_path, meta, delta):
        raise OSError("injected: the new IVF index file is written, its metadata is not")

    monkeypatch.setattr(vecmod.FaissVectorIndex, "_write_meta", write_meta)


def _fail_faiss_file(monkeypatch) -> None:
    real = vecmod.atomic_write_bytes

    def write(path, data):
        if path.suffix == ".faiss":
            raise OSError("injected: the metadata says 'in flux', the index file is the old one")
        real(path, data)

    monkeypatch.setattr(vecmod, "atomic_write_bytes", write)


@pytest.mark.parametrize("fail", [_fail_bm25_switch, _fail_faiss_meta, _fail_faiss_file],
                         ids=["bm25-before-current.json", "faiss-before-metadata", "faiss-before-index-file"])
def test_maintenance_failing_before_a_switch_leaves_a_consistent_collection(rag_factory, tmp_path, monkeypatch,
                                                                            fail):
    rag, before = _needing_maintenance(rag_factory, tmp_path, monkeypatch)
    with monkeypatch.context() as m:
        fail(m)
        with pytest.raises(OSError, match="injected"):
            _maintain(rag)
    again = rag_factory(rag.data_dir, **OPTS)
    assert _results(again) == before
    assert again.status()["collections"][0]["index"]["in_step"]
    done = _maintain(rag)  # the next maintenance completes what was left (and drops the orphaned files)
    assert done, "maintenance was still due"
    assert _saved_state(rag._folder(rag.store.collection("default")))[1].startswith("IVF4,Flat")
    assert _results(rag_factory(rag.data_dir, **OPTS)) == before
    assert _maintain(rag) == []  # nothing due any more


CHILD = r"""
import json, os, signal, sys
from localrag.app.rag import Rag
from localrag.ingest.job import CollectionLock

data_dir, opts, kill_at, when = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rag = Rag.open(data_dir, **opts)
coll = rag.store.collection("default")
with CollectionLock(rag._folder(coll), rag.store, coll.id):
    idx = rag._new_indexes(coll)
    idx.open(persist=True)
    calls = [0]

    def switching(real):
        def switch(*args, **kw):  # every file switch (os.replace: atomic writes; os.rename: a segment folder)
            calls[0] += 1
            if calls[0] == kill_at and when == "before":
                os.kill(os.getpid(), signal.SIGKILL)
            out = real(*args, **kw)
            if calls[0] == kill_at and when == "after":
                os.kill(os.getpid(), signal.SIGKILL)
            return out
        return switch

    os.replace, os.rename = switching(os.replace), switching(os.rename)
    done = idx.maintain()
print(json.dumps({"switches": calls[0], "done": done}))
"""


def test_maintenance_killed_at_each_file_switch_loses_nothing(rag_factory, tmp_path, monkeypatch):
    """A real kill (SIGKILL: no exception handler, no cleanup) just before each file switch maintenance makes
    (the state just after switch n is the one before switch n + 1, plus files nothing names yet), each time on a
    fresh copy of the collection, then a run to the end: every state opens in step and searches alike."""
    rag, before = _needing_maintenance(rag_factory, tmp_path, monkeypatch)
    template = tmp_path / "template"
    shutil.copytree(rag.data_dir, template)
    opts = json.dumps(OPTS)
    kills, kill_at, switches = 0, 1, None
    while switches is None or kill_at <= switches:
        data = tmp_path / f"kill-{kill_at}"
        shutil.copytree(template, data)
        res = subprocess.run([sys.executable, "-c", CHILD, str(data), opts, str(kill_at), "before"],
                             capture_output=True, text=True, timeout=300)
        if res.returncode == 0:  # fewer switches than kill_at: maintenance finished
            switches = json.loads(res.stdout.strip().splitlines()[-1])["switches"]
            assert switches >= 5, res.stdout  # FAISS: metadata, index file, metadata; BM25: segment, current.json
        else:
            assert res.returncode == -9, res.stderr[-2000:]
            kills += 1
        survivor = rag_factory(data, **OPTS)
        assert _results(survivor) == before, kill_at
        assert survivor.status()["collections"][0]["index"]["in_step"], kill_at
        kill_at += 1
    assert switches is not None and kills == switches
    finished = rag_factory(data, **OPTS)
    coll = finished.store.collection("default")
    idx = finished._open_indexes(coll)
    assert idx.vectors.description.startswith("IVF4,Flat") and idx.lexical.segment_count == 1
    assert np.array_equal(idx.lexical.ids, finished.store.chunk_ids(coll.id))
