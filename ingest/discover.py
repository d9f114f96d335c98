"""Find the files to ingest: directories walked recursively, symlinks followed without loops, each real file once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".localrag", ".venv", "node_modules"}


@dataclass(slots=True)
class Found:
    path: Path  # the real (resolved) path: the document's source key
    given: Path  # how it was reached, for messages
    explicit: bool  # named on the command line (vs found by walking a directory)
    error: str | None = None


def discover(paths: list[Path]) -> list[Found]:
    out: list[Found] = []
    seen_files: set[tuple[int, int]] = set()
    seen_dirs: set[tuple[int, int]] = set()

    def add_file(p: Path, explicit: bool) -> None:
        try:
            st = p.stat()
        except OSError as exc:
            out.append(Found(p, p, explicit, f"cannot read: {exc.strerror}"))
            return
        key = (st.st_dev, st.st_ino)
        if key in seen_files:
            return
        seen_files.add(key)
        out.append(Found(p.resolve(), p, explicit))

    def walk(d: Path) -> None:
        try:
            st = d.stat()
        except OSError as exc:
            out.append(Found(d, d, False, f"cannot read folder: {exc.strerror}"))
            return
        if (st.st_dev, st.st_ino) in seen_dirs:  # symlink loop or a folder reached twice
            return
        seen_dirs.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as exc:
            out.append(Found(d, d, False, f"cannot list folder: {exc.strerror}"))
            return
        for e in entries:
            p = Path(e.path)
            if e.is_symlink() and not p.exists():
                out.append(Found(p, p, False, f"broken symbolic link (points to {os.readlink(p)})"))
            elif e.is_dir(follow_symlinks=True):
                if e.name not in SKIP_DIRS:
                    walk(p)
            elif e.is_file(follow_symlinks=True):
                add_file(p, explicit=False)

    for raw in paths:
        p = Path(raw).expanduser().absolute()
        if p.is_symlink() and not p.exists():
            out.append(Found(p, Path(raw), True, f"broken symbolic link (points to {os.readlink(p)})"))
        elif not p.exists():
            out.append(Found(p, Path(raw), True, "no such file or folder"))
        elif p.is_dir():
            walk(p)
        elif p.is_file():
            add_file(p, explicit=True)
        else:
            out.append(Found(p, Path(raw), True, "not a regular file (device, socket or pipe)"))
    return out
