"""Runs loaders in a separate process so a per-file time limit can stop a parser that hangs or explodes.

The worker imports only the loaders (no torch), and each parser library only when a file of its kind arrives.
The "spawn" start method would also re-run the parent's main script in the child (`__mp_main__`): a UI or a
user's script that imports torch at top level made every worker hold ~0.5 GB. `_start_without_main` hides the
main module while the worker starts, so the child imports nothing of the parent's.

It loads files in the order they are submitted, one at a time,
so the main process can embed file N while file N+1 is being parsed. A file that runs past its limit gets the
worker killed and replaced; the files queued behind it are resubmitted.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localrag.ingest.document import LoadedDocument, LoadError


@dataclass(slots=True)
class LoadResult:
    path: Path
    document: LoadedDocument | None = None
    error: str | None = None
    seconds: float = 0.0


DEFAULT_LOADER = "localrag.ingest.loaders:load_file"
_MAIN_LOCK = threading.Lock()
_MISSING = object()


def _start_without_main(proc: Any) -> None:
    """Start a spawn-context process without making it import the parent's `__main__` module.

    multiprocessing's spawn reads `__main__.__spec__` and `__main__.__file__` while starting the child (in
    this thread, inside `start()`), and the child then imports that module or re-runs that script. The worker
    needs neither, so both are hidden for the duration of `start()`.
    """
    main = sys.modules.get("__main__")
    if main is None:
        proc.start()
        return
    with _MAIN_LOCK:
        saved = {name: getattr(main, name, _MISSING) for name in ("__spec__", "__file__")}
        try:
            main.__spec__ = None
            if saved["__file__"] is not _MISSING:
                del main.__file__
            proc.start()
        finally:
            for name, value in saved.items():
                if value is not _MISSING:
                    setattr(main, name, value)


def _serve(conn: Any, loader: str) -> None:  # pragma: no cover - runs in the child process
    import importlib

    module, _, name = loader.partition(":")
    load_file = getattr(importlib.import_module(module), name)

    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        ticket, path = msg
        conn.send(("start", ticket, time.monotonic()))
        try:
            doc = load_file(Path(path))
            conn.send(("done", ticket, doc, None))
        except LoadError as exc:
            conn.send(("done", ticket, None, str(exc)))
        except MemoryError:
            conn.send(("done", ticket, None, "ran out of memory while reading the file"))
        except RecursionError:
            conn.send(("done", ticket, None, "structure nested too deeply to read"))
        except Exception as exc:  # a loader bug must not take the batch down
            conn.send(("done", ticket, None, f"could not read the file ({type(exc).__name__}: {exc})"))


class LoaderPool:
    """Submit paths, then take results in submission order: `take()` enforces the per-file time limit."""

    def __init__(self, timeout_s: float, loader: str = DEFAULT_LOADER) -> None:
        self.timeout_s = timeout_s
        self.loader = loader  # "module:function"; tests swap in a fake to exercise the time limit
        self._ctx = mp.get_context("spawn")  # never fork a process that holds torch threads
        self._proc: Any = None
        self._conn: Any = None
        self._queue: deque[tuple[int, Path]] = deque()
        self._ticket = 0
        self._started: dict[int, float] = {}
        self._done: dict[int, tuple[LoadedDocument | None, str | None, float]] = {}

    def _ensure(self) -> None:
        if self._proc is None or not self._proc.is_alive():
            parent, child = self._ctx.Pipe()
            self._proc = self._ctx.Process(
                target=_serve, args=(child, self.loader), daemon=True, name="localrag-loader"
            )
            _start_without_main(self._proc)
            child.close()
            self._conn = parent

    def submit(self, path: Path) -> None:
        if self._proc is not None and not self._proc.is_alive():
            self._recover()
        self._ensure()
        self._ticket += 1
        self._queue.append((self._ticket, path))
        self._conn.send((self._ticket, str(path)))

    def pending(self) -> int:
        return len(self._queue)

    def _record(self, msg: tuple) -> None:
        if msg[0] == "start":
            self._started[msg[1]] = msg[2]
        else:
            started = self._started.get(msg[1], time.monotonic())
            self._done[msg[1]] = (msg[2], msg[3], time.monotonic() - started)

    def take(self) -> LoadResult:
        """Result of the oldest submitted path (waits for it, up to the time limit once it has started)."""
        ticket, path = self._queue[0]
        while ticket not in self._done:
            start = self._started.get(ticket)
            wait = 1.0 if start is None else max(0.0, start + self.timeout_s - time.monotonic())
            if start is not None and wait == 0.0:
                self._proc.kill()
                self._proc.join(5)
                self._done[ticket] = (
                    None,
                    f"took longer than the {self.timeout_s:g} s per-file limit (file_timeout_s); it may be "
                    "malformed, or raise the limit",
                    self.timeout_s,
                )
                self._recover(blame=False)
                break
            msg = None
            try:
                if self._conn.poll(min(wait, 1.0)):
                    msg = self._conn.recv()
            except (EOFError, OSError):  # the worker is gone
                self._proc.join(1)
            if msg is not None:
                self._record(msg)
            elif not self._proc.is_alive():  # killed by the OS (memory) or crashed hard
                self._recover()
        self._queue.popleft()
        doc, err, secs = self._done.pop(ticket)
        self._started.pop(ticket, None)
        return LoadResult(path, document=doc, error=err, seconds=secs)

    def _recover(self, blame: bool = True) -> None:
        """The worker died (crash, or killed for the time limit): blame the file it was reading, start a new
        worker, and hand it every queued file that has no result yet."""
        try:
            while self._conn.poll(0):
                self._record(self._conn.recv())
        except (EOFError, OSError):
            pass
        unfinished = [t for t, _ in self._queue if t not in self._done]
        culprits = [t for t in unfinished if t in self._started] or unfinished[:1]
        for t in culprits if blame else []:
            self._done[t] = (None, "the file reader crashed on this file (out of memory?)", 0.0)
        self._proc = None
        self._ensure()
        for t, p in self._queue:
            if t not in self._done:
                self._started.pop(t, None)
                self._conn.send((t, str(p)))

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            try:
                self._conn.send(None)
            except OSError:
                pass
            self._proc.join(2)
            if self._proc.is_alive():
                self._proc.kill()
        self._proc = None

    def __enter__(self) -> LoaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
