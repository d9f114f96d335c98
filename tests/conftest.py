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


# --- PostgreSQL: one real server per session (pgserver: PostgreSQL 16 in a wheel), a fresh database per test --------
@pytest.fixture(scope="session")
def pg_server():
    """An embedded PostgreSQL server started for this test session (the `postgres` extra: pgserver + psycopg).

    Traps handled here: as root pgserver runs the server as a `pgserver` system user, which must be able to reach
    the data folder, so it lives in its own `mkdtemp` folder under /tmp rather than pytest's 0700 basetemp (other
    pytest sessions on this machine reset that to 0700 while the server runs); the server is stopped and its folder
    deleted at the end of the session, and a server that cannot start FAILS the PostgreSQL tests (CI installs the
    extra), it does not skip them."""
    import tempfile

    try:
        import pgserver
        import psycopg  # noqa: F401 - the driver the store uses
    except ImportError as exc:
        pytest.fail(f"PostgreSQL tests need the postgres extra: pip install -e '.[postgres]' ({exc})", pytrace=False)
    parent = Path(tempfile.mkdtemp(prefix="localrag-pg-"))
    try:
        server = pgserver.get_server(parent / "pgdata", cleanup_mode="delete")
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported, with the server's log
        log = parent / "pgdata" / "log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no server log)"
        shutil.rmtree(parent, ignore_errors=True)
        pytest.fail(f"could not start the embedded PostgreSQL server (pgserver): {exc}\n{tail}", pytrace=False)
    yield server
    server.cleanup()
    shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture()
def pg_url(pg_server, request):
    """A new, empty database on the session's server: its SQLAlchemy URL (dropped after the test)."""
    import re
    import uuid

    import psycopg

    name = "t_" + re.sub(r"\W", "_", request.node.name.lower())[:40] + "_" + uuid.uuid4().hex[:8]
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg_server.get_uri(name).replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request):
    """Run a test on both stores: None (the default SQLite file in data_dir) and a fresh PostgreSQL database."""
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")
