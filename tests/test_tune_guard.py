"""The tune guard (issue 23): one tune (or undo) of a collection at a time, in any process. A real second process
runs a tune and is met mid-run: a tune, an undo and `localrag tune` from here are refused at once with its pid, host
and start time and what to do, while an ingest beside it still works; killed with SIGKILL, the guard it leaves is
found stale by the next tune, cleared and noted in its report, and the questions it wrote are reused. The child's
question writer is a named fake (tests/fakes.py, FakeQuestionLLM, hanging after three questions): these tests are
about control flow. PostgreSQL: the same refusal through the advisory lock, across data directories."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE
from fakes import FakeQuestionLLM

from localrag.app.rag import RagError
from localrag.app.tune import TrainSettings, TuneOptions

ROOT = Path(__file__).resolve().parent.parent
NEVER = TuneOptions(min_gain=10.0, train=TrainSettings(epochs=0))  # untrained, never switched: fast
STARTED = r"started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"

CHILD = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from fakes import FakeQuestionLLM
from localrag.app.rag import Rag

rag = Rag.open(sys.argv[1])
rag.set_llm(FakeQuestionLLM(hold_after=3, ready=Path(sys.argv[2])))
rag.tune()
"""


@pytest.fixture()
def small(rag_factory, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(SAMPLE / "gannet-head-lighthouse.md", src)
    rag = rag_factory()
    assert rag.ingest([src]).exit_code == 0
    rag.set_llm(FakeQuestionLLM())
    return rag, src


def _child_tune(data_dir: Path, ready: Path) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(data_dir), str(ready), str(ROOT / "tests")],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not ready.exists():
        if proc.poll() is not None:
            pytest.fail(f"the child tune ended early: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the child tune never reached its fourth question")
        time.sleep(0.05)
    return proc


def test_a_second_tune_is_refused_while_one_runs_and_a_killed_ones_guard_is_cleared(small):
    from typer.testing import CliRunner

    from localrag.app.cli import app

    rag, src = small
    proc = _child_tune(rag.data_dir, rag.data_dir.parent / "ready")
    try:
        running = rf"a tune of this collection is already running \(pid {proc.pid} on {re.escape(socket.gethostname())}"
        with pytest.raises(RagError, match=rf"{running}, {STARTED}\); wait for it to finish.*stop that process"):
            rag.tune(options=NEVER)
        with pytest.raises(RagError, match=running):
            rag.tune(undo=True)
        res = CliRunner().invoke(app, ["--data-dir", str(rag.data_dir), "tune", "--epochs", "0"])
        assert res.exit_code == 1 and re.search(running, " ".join(res.output.split())), res.output
        assert rag.ingest([src]).exit_code == 0  # an ingest beside a tune is not refused (its lock is another)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    guard = rag._folder(rag.store.collection("default")) / "tune.lock"
    left = json.loads(guard.read_text())  # a killed holder cannot empty its record
    assert left["pid"] == proc.pid and left["purpose"] == "tune"
    report = rag.tune(options=NEVER)  # the kernel let go of the lock: the next tune runs and notes what it found
    assert report["questions"]["reused"] == 3, report["questions"]
    assert any(f"pid {proc.pid} on " in n and "stopped before it finished" in n for n in report["notes"]), report
    assert guard.read_text() == ""  # let go cleanly
    assert rag.tune(options=NEVER)["notes"] == []


def test_the_tune_guard_on_postgresql_names_the_holder_across_data_directories(pg_url, rag_factory, tmp_path):
    from localrag.ingest.job import CollectionLock

    a = rag_factory(tmp_path / "a", database_url=pg_url)
    assert a.ingest([SAMPLE / "gannet-head-lighthouse.md"]).exit_code == 0
    b = rag_factory(tmp_path / "b", database_url=pg_url)
    b.set_llm(FakeQuestionLLM())
    coll = a.store.collection("default")
    with CollectionLock(a._folder(coll), a.store, coll.id, purpose="tune"):
        with pytest.raises(RagError, match=rf"already running \(localrag tune pid {os.getpid()} on .*{STARTED}\)"):
            b.tune(options=NEVER)
        with CollectionLock(a._folder(coll), a.store, coll.id):  # the ingest lock is another key
            pass
    assert not b.tune(options=NEVER)["switched"]
