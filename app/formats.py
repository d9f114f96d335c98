"""What localrag ingests and how its documents are told apart, for the layers above app (the UI), which may not
import ingest or retrieval themselves. The lists live where they are used (ingest.formats, retrieval.types)."""

from __future__ import annotations

from localrag.ingest.formats import SUPPORTED_SUFFIXES
from localrag.retrieval.types import KINDS

__all__ = ["KINDS", "SUPPORTED_SUFFIXES", "UPLOAD_TYPES"]

# file-name endings without the dot, as a file picker takes them
UPLOAD_TYPES: tuple[str, ...] = tuple(sorted(s.lstrip(".") for s in SUPPORTED_SUFFIXES))
