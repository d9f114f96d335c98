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
