"""Fakes for control-flow tests only (named as fakes): they stand in for the real loader in the worker process."""

from __future__ import annotations

import time
from pathlib import Path

from localrag.ingest.document import LoadedDocument


def fake_slow_loader(path: Path) -> LoadedDocument:
    """Hangs on files whose name contains 'slow'; loads every other file with the real loader."""
    from localrag.ingest.loaders import load_file

    if "slow" in path.name:
        time.sleep(600)
    return load_file(path)


def fake_crashing_loader(path: Path) -> LoadedDocument:
    """Kills its own process on files whose name contains 'crash' (like the OS killing a parser out of memory)."""
    import os
    import signal

    from localrag.ingest.loaders import load_file

    if "crash" in path.name:
        os.kill(os.getpid(), signal.SIGKILL)
    return load_file(path)
