"""What an ask returns: the Answer (text, citations, sources, why it abstained, timings), the Outcome that a writer
(generative or extractive) hands to the final step that builds it, and the streamed Restart and Replace events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from localrag.app.answering.citations import Citation
from localrag.app.answering.prompt import PROMPT_VERSION
from localrag.app.answering.sources import Source


class AbstainKind(StrEnum):
    """Why an answer is "I don't know", as a value to branch on; `Answer.abstain_reason` says it in words."""

    NO_SOURCES = "no-sources"  # nothing relevant enough was retrieved: no writer ran
    CONTEXT_BUDGET = "context-budget"  # no source fits the context budget
    GUARDRAILS = "guardrails"  # every draft failed a hard guardrail
    MODEL = "model"  # the model said it does not know
    NO_SUPPORT = "no-support"  # no source sentence supports an answer (extractive, verified abstention)


@dataclass
class Restart:
    """Streamed when a draft failed a guardrail and the model writes again: discard the text streamed so far."""

    attempt: int
    reason: str


@dataclass
class Answer:
    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    abstained: bool = False
    abstain_reason: str | None = None  # in words: "no source is relevant enough ...", "guardrails: ..."
    cached: bool = False
    model_id: str = ""
    collection: str = "default"
    corpus_version: int = 0
    prompt_version: str = PROMPT_VERSION
    standalone_question: str | None = None  # the follow-up rewritten for retrieval (chat)
    sources: list[Source] = field(default_factory=list)
    invalid_citations: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    guardrails: list[dict[str, Any]] = field(default_factory=list)  # {attempt, name, severity, message}
    attempts: int = 0
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    tokens: dict[str, int | None] = field(default_factory=dict)  # prompt, completion (summed over attempts)
    attributed: bool = False  # citations were added by localrag, not written by the model
    cache: dict[str, Any] | None = None  # on a cache hit: kind, similarity, matched_question, age_s
    scores: dict[str, Any] | None = None
    # what wrote the text: "generative" (the LLM), "extractive" (sentences quoted from the sources, no LLM), or
    # in auto mode "auto:generative" / "auto:extractive" (the LLM's drafts were rejected, the sources quoted
    # instead), and "auto" when it abstained before either ran (no relevant source)
    mode: str = "generative"
    abstain_kind: AbstainKind | None = None  # why it abstained, as a value (abstain_reason says it in words)
    # auto mode: the checking model's P(yes) that the quotes the generated answer cites state it (answer.verify_model)
    verified_p: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """As plain data (--json, the UI, the answer cache). Sources also get `name` (the file name) and sources and
        citations `location`, the citation text "Guide › Safety › Tides, p. 4" (or the node URI); both are derived,
        and `from_dict` ignores them."""
        d = asdict(self)
        for s, source in zip(d["sources"], self.sources, strict=True):
            s["name"] = s["source"].rsplit("/", 1)[-1]
            s["location"] = source.location
        for c, citation in zip(d["citations"], self.citations, strict=True):
            c["location"] = citation.location
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Answer:
        d = dict(d)
        derived = ("name", "location")
        d["citations"] = [Citation(**{k: v for k, v in c.items() if k not in derived}) for c in d.get("citations", [])]
        d["sources"] = [Source(**{k: v for k, v in s.items() if k not in derived}) for s in d.get("sources", [])]
        if d.get("abstain_kind"):
            d["abstain_kind"] = AbstainKind(d["abstain_kind"])
        return cls(**d)


@dataclass
class Outcome:
    """What a writer produced (the generative `Answerer`, the extractive quote, an abstention): the body of an
    `Answer`. The ask route adds where it came from (question, collection, corpus version, cache, scores, timings)
    and builds the Answer once, in `localrag.app.ask.finish`."""

    text: str
    sources: list[Source] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    abstained: bool = False
    abstain_kind: AbstainKind | None = None
    abstain_reason: str | None = None
    model_id: str = ""
    mode: str = "generative"
    warnings: list[str] = field(default_factory=list)
    guardrails: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0
    tokens: dict[str, int | None] = field(default_factory=lambda: {"prompt": 0, "completion": 0})
    attributed: bool = False
    invalid_citations: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    support: float | None = None  # extractive: the best sentence's support score (not part of the Answer)
    abstain_p: float | None = None  # generative: the model's probability of starting "I don't know" (first draft)
    verified_p: float | None = None  # auto: the checking model's P(yes) that the cited quotes state the answer
    # extractive: the next-best quotes, best first, each as its own body (auto's checked stand-ins; not in the Answer)
    alternatives: list[Outcome] = field(default_factory=list)

    @classmethod
    def abstain(cls, kind: AbstainKind, reason: str, **kw: Any) -> Outcome:
        """'I don't know', with why."""
        from localrag.eval.answer_format import IDK

        return cls(text=IDK, abstained=True, abstain_kind=kind, abstain_reason=reason, **kw)

    @classmethod
    def of_answer(cls, ans: Answer) -> Outcome:
        """The body of an existing Answer (a cached one)."""
        return cls(**{f.name: getattr(ans, f.name) for f in fields(cls) if hasattr(ans, f.name)})

    def answer_fields(self) -> dict[str, Any]:
        """The fields an Answer takes from this body."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in Answer.__dataclass_fields__}


@dataclass
class Replace:
    """Streamed in auto mode when the generated answer replaces the quote shown first: discard the text streamed
    so far; the pieces that follow are the new answer (`mode` says which writer it comes from)."""

    mode: str
    reason: str
