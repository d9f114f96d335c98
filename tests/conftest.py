"""Shared fixtures: one real embedder (the packaged MiniLM) for the whole session; nothing touches the network."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP threads sleep instead of spinning while they wait: on a busy 2-core machine spinning made one MiniLM
# forward pass ~35x and one SmolLM2 call ~5x slower (torch and llama.cpp both use OpenMP)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"


@pytest.fixture(scope="session")
def embedder():
    from localrag.index.embedder import Embedder

    e = Embedder()
    _ = e.dim  # load once
    return e


@pytest.fixture()
def rag_factory(tmp_path, embedder):
    from localrag.app.rag import Rag

    opened = []

    def make(data_dir: Path | None = None, **overrides):
        rag = Rag.open(data_dir or tmp_path / "data", embedder=embedder, **overrides)
        opened.append(rag)
        return rag

    yield make
    for r in opened:
        r.close()


@pytest.fixture()
def sample_copy(tmp_path) -> Path:
    """A private copy of data/sample that a test may modify."""
    dst = tmp_path / "sample"
    shutil.copytree(SAMPLE, dst)
    return dst


@pytest.fixture(scope="session")
def sample_rag(tmp_path_factory, embedder):
    """data/sample ingested once for the session (read-only use: tests must not ingest into it)."""
    from localrag.app.rag import Rag

    r = Rag.open(tmp_path_factory.mktemp("sample") / "data", embedder=embedder)
    report = r.ingest([SAMPLE])
    assert report.exit_code == 0, report.to_dict()
    yield r
    r.close()
