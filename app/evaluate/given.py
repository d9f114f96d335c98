"""An answer made elsewhere (a ragas-style dataset's `response` and `retrieved_contexts`), shaped like the
`Answer` that `Rag.ask` returns so that the same scoring and report stages judge it.

Context n (1-based) is source [n]; the answer's `[n]` markers cite them (numbers outside 1..len(contexts) are
dropped with a warning); an answer that starts "I don't know" is an abstention, as for our own answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localrag.eval.answer_format import cited_numbers, is_abstention

__all__ = ["GivenAnswer", "GivenCitation", "GivenSource", "given_answer"]


@dataclass
class GivenSource:
    n: int
    text: str
    chunk_id: int | None = None
    source: str = "(given context)"
    relevance: float = 0.0
    page: int | None = None
    kg_uri: str | None = None


@dataclass
class GivenCitation:
    n: int
    quote: str
    chunk_id: int | None = None
    source: str = "(given context)"
    page: int | None = None
    kg_uri: str | None = None


@dataclass
class GivenAnswer:
    text: str
    sources: list[GivenSource]
    citations: list[GivenCitation]
    abstained: bool
    warnings: list[str] = field(default_factory=list)
    abstain_reason: str | None = None
    attributed: bool = False
    tokens: dict[str, Any] = field(default_factory=dict)
    model_id: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def given_answer(text: str, contexts: list[str]) -> GivenAnswer:
    """The GivenAnswer of an item's response and contexts."""
    sources = [GivenSource(n=i, text=c) for i, c in enumerate(contexts, start=1)]
    cited = cited_numbers(text)
    valid = [n for n in cited if 1 <= n <= len(sources)]
    warnings = [f"citation [{n}] names no given context (there are {len(sources)})" for n in cited if n not in valid]
    citations = [GivenCitation(n=n, quote=sources[n - 1].text[:300]) for n in valid]
    abstained = is_abstention(text)
    return GivenAnswer(text=text, sources=sources, citations=citations, abstained=abstained, warnings=warnings,
                       abstain_reason="the given response abstains" if abstained else None, model_id="given")
