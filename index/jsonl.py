"""The one JSON-lines reader: every labelled set (QA items, labeled queries, cache pairs, judge statements) is read
through it, so a bad line is reported the same way everywhere, naming the file and the line.

    for line_no, obj in read_jsonl(path):
        ...

Blank lines are skipped (and lines starting with ``#`` when ``comments=True``); every other line must hold one
JSON object.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["JsonlError", "read_jsonl"]


class JsonlError(ValueError):
    """A JSON-lines file that cannot be read: missing, unreadable, a line that is not JSON or not an object.

    `path` and `line` (1-based; None for the file as a whole) say where; `reason` says what, and the message is
    ``"{path}:{line}: {reason}"`` (``"{path}: {reason}"`` without a line)."""

    def __init__(self, path: str | Path, line: int | None, reason: str) -> None:
        self.path, self.line, self.reason = Path(path), line, reason
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {reason}")


def read_jsonl(path: str | Path, *, comments: bool = False,
               what: str = "JSON lines file") -> list[tuple[int, dict[str, Any]]]:
    """`(line number, object)` for every non-blank line of a UTF-8 JSON-lines file, in file order.

    With `comments`, lines whose first non-blank character is ``#`` are skipped too. `what` names the kind of file
    in the message for a folder given instead of a file. Raises JsonlError for a missing or unreadable file, a line
    that is not valid JSON and a line whose value is not a JSON object."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JsonlError(path, None, "no such file") from None
    except IsADirectoryError:
        raise JsonlError(path, None, f"is a folder, not a {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise JsonlError(path, None, f"cannot read it ({exc})") from None
    rows: list[tuple[int, dict[str, Any]]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or (comments and stripped.startswith("#")):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise JsonlError(path, n, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise JsonlError(path, n, f"expected a JSON object, got {type(obj).__name__}")
        rows.append((n, obj))
    return rows
