"""localrag: local, offline-capable retrieval-augmented generation over your own documents and knowledge graphs.

The public API::

    from localrag import Rag, Settings, Filters
    rag = Rag.open(".localrag")
    rag.ingest(["docs/"])
    answer = rag.ask("Who designed the lighthouse?")

The folders at the repository root are the subpackages (``localrag.app``, ``localrag.index``, ...; see
docs/ARCHITECTURE.md). Names are imported lazily, so ``import localrag.index.store`` does not load torch or
llama.cpp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "Rag": "localrag.app.rag",
    "RagError": "localrag.app.rag",
    "ModelMismatch": "localrag.app.rag",
    "Settings": "localrag.app.config",
    "ConfigError": "localrag.app.config",
    "load_settings": "localrag.app.config",
    "Answer": "localrag.app.answering",
    "Citation": "localrag.app.answering",
    "Source": "localrag.app.answering",
    "LLMError": "localrag.app.llm",
    "LLMUnavailable": "localrag.app.llm",
    "Hit": "localrag.retrieval.types",
    "Filters": "localrag.retrieval.types",
    "Neighbour": "localrag.retrieval.types",
    "SearchResults": "localrag.retrieval.types",
    "Scores": "localrag.eval.scoring",
    "MetricScore": "localrag.eval.scoring",
    "Kind": "localrag.ingest.document",
    "LoadError": "localrag.ingest.document",
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "__version__",
    "Rag", "RagError", "ModelMismatch", "Settings", "ConfigError", "load_settings", "Answer", "Citation", "Source",
    "LLMError", "LLMUnavailable", "Hit", "Filters", "Neighbour", "SearchResults", "Scores", "MetricScore", "Kind",
    "LoadError",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from localrag.app.answering import Answer, Citation, Source
    from localrag.app.config import ConfigError, Settings, load_settings
    from localrag.app.llm import LLMError, LLMUnavailable
    from localrag.app.rag import ModelMismatch, Rag, RagError
    from localrag.eval.scoring import MetricScore, Scores
    from localrag.ingest.document import Kind, LoadError
    from localrag.retrieval.types import Filters, Hit, Neighbour, SearchResults


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'localrag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
