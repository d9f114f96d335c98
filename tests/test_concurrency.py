"""Searches from many threads while another process ingests into the same collection: no errors, every hit
consistent with the store, and the indexes follow corpus_version as the other process commits."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from localrag.index.store import ChunkRow
from tests.conftest import ROOT, SAMPLE

N_THREADS = 6
N_FILES = 20
QUERIES = [
    ("What lens does the lighthouse use?", {}),
    ("battery capacity of the microgrid", {"mode": "dense"}),
    ("sourdough starter Old Josiah", {"mode": "lexical"}),
    ("Who built RV Kittiwake?", {"expand": True}),
    ("tidal range spring tides", {"fusion": "rrf"}),
    ("quay gull ferry", {"filters": {"kinds": ["text"]}}),
]


def _write_corpus(d: Path) -> None:
    rng = random.Random(3)
    words = "harbour ferry quay gull tern pontoon slipway mooring beacon skerry storm pier".split()
    d.mkdir()
    for i in range(N_FILES):
        lines = [" ".join(rng.choice(words) for _ in range(14)).capitalize() + f" (file {i}, line {j})."
                 for j in range(40)]
        if i == N_FILES - 1:
            lines.append("The zanzibarite marker appears only in the last file.")
        (d / f"extra-{i:03d}.txt").write_text("\n".join(lines))


@pytest.mark.slow
def test_threads_search_while_another_process_ingests(tmp_path, rag_factory):
    data = tmp_path / "data"
    rag = rag_factory(data)
    assert rag.ingest([SAMPLE / "gannet-head-lighthouse.md", SAMPLE / "community-microgrid.txt",
                       SAMPLE / "wren-loaf-bakery.md", SAMPLE / "port-wren.ttl",
                       SAMPLE / "harbour-tides-and-safety.txt"]).exit_code == 0
    start_version = rag.search("lighthouse", k=1).corpus_version
    corpus = tmp_path / "corpus"
    _write_corpus(corpus)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "localrag.app.cli", "--data-dir", str(data), "ingest", str(corpus), "--json"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    errors: list[BaseException] = []
    versions: list[list[int]] = [[] for _ in range(N_THREADS)]
    counts = [0] * N_THREADS
    deadline = time.monotonic() + 240

    def worker(n: int) -> None:
        rng = random.Random(n)
        try:
            while (proc.poll() is None or counts[n] < 10) and time.monotonic() < deadline:
                query, kw = rng.choice(QUERIES)
                res = rag.search(query, k=5, **kw)
                assert res, f"no hits for {query!r}"
                ids = [h.chunk_id for h in res]
                assert len(set(ids)) == len(ids)
                with rag.store.session() as s:
                    stored = dict(s.execute(select(ChunkRow.id, ChunkRow.text).where(ChunkRow.id.in_(ids))).all())
                for h in res:  # every hit is a whole chunk the store has: never a half-updated result
                    assert stored.get(h.chunk_id) == h.text
                    assert 0.0 <= h.relevance <= 1.0
                versions[n].append(res.corpus_version)
                counts[n] += 1
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    proc.wait(60)
    assert not errors, errors[:3]
    assert proc.returncode == 0, proc.stderr.read().decode()[-2000:]
    for seen in versions:
        assert seen == sorted(seen), "a thread saw the corpus go back in time"
    assert sum(counts) >= N_THREADS * 10
    # searches picked up the other process's commits while it ran, and its final state afterwards
    assert len({v for seen in versions for v in seen}) >= 2
    final = rag.search("zanzibarite marker", k=3, mode="lexical")
    assert final.corpus_version > start_version
    assert final and Path(final[0].source).name == f"extra-{N_FILES - 1:03d}.txt"
    assert rag.status()["collections"][0]["index"]["in_step"]


def _two_rags(tmp_path, rag_factory):
    """A long-lived Rag that has searched the sample, and another on the same data dir (another process's view)."""
    data = tmp_path / "data"
    reader = rag_factory(data)
    assert reader.ingest([SAMPLE / "gannet-head-lighthouse.md"]).exit_code == 0
    writer = rag_factory(data)
    assert reader.search("lighthouse lens", k=1)
    return reader, writer


def test_search_keeps_the_old_snapshot_while_another_thread_reloads(tmp_path, rag_factory):
    reader, writer = _two_rags(tmp_path, rag_factory)
    before = reader.search("lighthouse lens", k=1).corpus_version
    assert writer.ingest([SAMPLE / "wren-loaf-bakery.md"]).exit_code == 0  # another process commits
    loading = reader._loading.setdefault("default", threading.Lock())  # as _open_indexes makes it
    assert loading.acquire(timeout=5)  # as if another thread were reloading the indexes right now
    try:
        t0 = time.monotonic()
        stale = reader.search("sourdough starter", k=3)
        assert time.monotonic() - t0 < 30
        assert stale.corpus_version == before  # served at once from the previous, consistent snapshot
        assert all(Path(h.source).name == "gannet-head-lighthouse.md" for h in stale)
    finally:
        loading.release()
    fresh = reader.search("sourdough starter", k=3)  # no reload running: this search catches up itself
    assert fresh.corpus_version > before
    assert any(Path(h.source).name == "wren-loaf-bakery.md" for h in fresh)


def test_catching_up_with_another_process_takes_no_ingest_lock(tmp_path, rag_factory, monkeypatch):
    """A reader that took the ingest lock to save its catch-up made the other process's next ingest fail with
    IngestLocked (issue 25): after the first open, catching up happens in memory only."""
    import localrag.app.rag as rag_module

    reader, writer = _two_rags(tmp_path, rag_factory)
    taken: list[str] = []

    class Recording(rag_module.CollectionLock):
        def __enter__(self):  # noqa: ANN204
            taken.append(threading.current_thread().name)
            return super().__enter__()

    monkeypatch.setattr(rag_module, "CollectionLock", Recording)
    assert writer.ingest([SAMPLE / "community-microgrid.txt"]).exit_code == 0
    taken.clear()
    res = reader.search("battery capacity of the microgrid", k=3)
    assert any(Path(h.source).name == "community-microgrid.txt" for h in res)
    assert taken == []


def test_a_query_encode_does_not_wait_behind_a_long_one(embedder):
    """Long encodes take turns (FifoLock); a query's encode runs beside them rather than queueing."""
    done = threading.Event()
    vec: list = []

    def query() -> None:
        vec.append(embedder.encode(["where is the lighthouse"]))
        done.set()

    with embedder._turn:  # a long encode holds its turn
        t = threading.Thread(target=query)
        t.start()
        assert done.wait(60), "the query waited for the long encode's turn"
    t.join()
    assert vec[0].shape == (1, embedder.dim)


def test_fifo_lock_grants_in_the_order_asked():
    from localrag.index.embedder import FifoLock

    lock, order = FifoLock(), []
    started = []
    with lock:
        threads = []
        for i in range(4):
            t = threading.Thread(target=lambda i=i: (lock.__enter__(), order.append(i), lock.__exit__()))
            t.start()
            threads.append(t)
            deadline = time.monotonic() + 10
            while lock._next != i + 2 and time.monotonic() < deadline:  # wait until thread i holds its ticket
                time.sleep(0.001)
            started.append(lock._next)
    for t in threads:
        t.join(10)
    assert started == [2, 3, 4, 5]
    assert order == [0, 1, 2, 3]


def test_threads_policy_one_thread_per_query_the_setting_for_batches(embedder, monkeypatch):
    import torch

    from localrag.index.embedder import ONE_THREAD_MAX

    seen: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real(n)))
    monkeypatch.setattr(embedder, "threads", 3)
    embedder.encode(["one query"])
    assert set(seen) == {1}
    seen.clear()
    embedder.encode([f"chunk {i} of an ingest" for i in range(ONE_THREAD_MAX + 1)])
    assert set(seen) == {3}


def test_threads_setting_reaches_the_embedder_and_the_llm(tmp_path, monkeypatch):
    import localrag.app.llm.factory as factory
    from localrag.app.config import load_settings
    from localrag.app.rag import Rag

    rag = Rag.open(tmp_path / "data", threads=1)
    try:
        assert rag.settings.threads == 1 and rag.embedder.threads == 1
    finally:
        rag.close()
    got: dict = {}
    monkeypatch.setattr(factory, "LlamaCppLLM", lambda *a, **kw: got.update(kw))
    factory.make_llm(load_settings(None, threads=1))
    assert got["n_threads"] == 1
    factory.make_llm(load_settings(None, threads=1, llm={"threads": 2}))
    assert got["n_threads"] == 2
