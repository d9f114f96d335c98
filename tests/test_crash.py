"""kill -9 of a real `localrag ingest` process at several points; the next command repairs, a re-run finishes."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localrag.ingest.job import Status
from tests.conftest import ROOT
from tests.helpers import assert_consistent, saved_state

N_FILES = 40
WORDS = ("harbour tide keeper lantern kelp gannet storm ferry pier beacon skerry sound mooring quay gull "
         "tern pontoon slipway bakery starter battery inverter solar council minute vote").split()


def _write_corpus(d: Path) -> None:
    rng = random.Random(7)
    d.mkdir()
    for i in range(N_FILES):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + f" (file {i}, line {j})."
            for j in range(100)
        ]
        (d / f"doc-{i:03d}.txt").write_text("\n".join(sentences))


def _committed_docs(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("select count(*) from documents").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _start(data: Path, corpus: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "localrag.app.cli", "--data-dir", str(data), "ingest", str(corpus), "--json"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


def _kill_when(proc: subprocess.Popen, db: Path, at_docs: int, extra_delay: float = 0.0) -> int:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ingest ended before the kill point: {proc.stderr.read().decode()[-2000:]}")
        if _committed_docs(db) >= at_docs:
            time.sleep(extra_delay)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            return _committed_docs(db)
        time.sleep(0.02)
    proc.kill()
    pytest.fail("kill point never reached")


@pytest.mark.slow
def test_kill_dash_nine_at_several_points_then_rerun_finishes(tmp_path, rag_factory):
    corpus = tmp_path / "corpus"
    _write_corpus(corpus)
    data = tmp_path / "data"
    db = data / "localrag.sqlite"
    kill_points = [(1, 0.0), (N_FILES // 2, 0.0), (N_FILES, 0.0)]  # early, mid-batch, during the final save
    seen = []
    for at_docs, delay in kill_points:
        proc = _start(data, corpus)
        seen.append(_kill_when(proc, db, at_docs, delay))
        state = saved_state(data) if (data / "collections" / "0001" / "vectors.faiss").exists() else None
        if state is not None:  # whatever was on disk: never a duplicate chunk, never an orphan chunk
            assert not state["dup_ordinals"] and state["orphans"] == 0
    assert seen[0] < N_FILES, "the first kill should land mid-run"

    # the next command detects the interrupted run and repairs the indexes from the store
    rag = rag_factory(data)
    report = rag.ingest([corpus])
    assert report.exit_code == 0
    with sqlite3.connect(db) as con:
        runs = dict(con.execute("select status, count(*) from ingest_runs group by status").fetchall())
    # the first two kills certainly landed mid-run (the last one may land after the run's end)
    assert runs.get("interrupted", 0) >= 2, runs
    statuses = {o.status for o in report.outcomes}
    assert statuses <= {Status.INGESTED, Status.UNCHANGED}
    st = assert_consistent(data)
    assert len(st["docs"]) == N_FILES
    # a second re-run has nothing left to do
    again = rag.ingest([corpus])
    assert {o.status for o in again.outcomes} == {Status.UNCHANGED}
    assert assert_consistent(data)["db_ids"].tolist() == st["db_ids"].tolist()
