"""The generative answerer: prompt -> LLM (streamed) -> citations -> guardrails with retries -> Outcome.

A hard validator failure is fed back into a retry prompt (the failed draft plus what was wrong); when the retry budget
is spent the answer abstains with the reason. A soft failure keeps the answer and adds a warning.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from localrag.app.answering.answer import AbstainKind, Outcome, Restart
from localrag.app.answering.citations import attribute, make_citations, normalize_citations, parse_citations
from localrag.app.answering.guardrails import (
    Draft,
    Validator,
    complete_sentences,
    cut_to_supported,
    default_validators,
    drop_preamble,
)
from localrag.app.answering.prompt import LLMLike, build_messages
from localrag.app.answering.sources import Source, assemble_context
from localrag.eval.answer_format import is_idk
from localrag.index.text import words
from localrag.retrieval.types import Hit


@dataclass
class _Attempt:
    """One checked draft: what the model wrote, read and validated."""

    draft: Draft
    found: list[tuple[int, int]]  # (source number, offset) of each valid citation marker in draft.text
    failures: list[tuple[Validator, str]]
    attributed: bool
    cut: list[str]  # sentences its sources do not support, cut before the checks
    prompt_tokens: int
    completion_tokens: int
    abstain_p: float | None = None


@dataclass
class Answerer:
    """Writes a grounded answer from hits with an LLM; see the module docstring."""

    llm: LLMLike
    validators: list[Validator] = field(default_factory=default_validators)
    retries: int = 1  # extra attempts after a failed hard (or soft) validator
    context_tokens: int = 1500
    sampling: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, max_tokens, stop overrides
    max_tokens: int = 256
    attribute: bool = True  # add citations after generation when the model wrote none (small models rarely do)
    # the sources as the model reads them (app.answering.compress): fewer tokens to prefill; None = whole chunks
    compress: Callable[[str, list[Source]], list[Source]] | None = None

    def run(self, question: str, hits: Sequence[Hit], stream: bool = False) -> Iterator[str | Restart | Outcome]:
        """Yield text pieces (when streaming), a Restart before each retry, and finally the Outcome."""
        t = time.perf_counter()
        sources, notes = assemble_context(hits, self.llm.count_tokens, self.context_tokens)
        timings = {"assemble": time.perf_counter() - t}
        if not sources:
            yield Outcome.abstain(AbstainKind.CONTEXT_BUDGET, "no source fits the context budget",
                                  model_id=self.llm.model_id, warnings=list(notes), timings=timings)
            return
        yield from self.write(question, sources, stream=stream, warnings=list(notes), timings=timings)

    def write(self, question: str, sources: list[Source], *, stream: bool = False, warnings: list[str] | None = None,
              timings: dict[str, float] | None = None) -> Iterator[str | Restart | Outcome]:
        """The attempts over numbered `sources`: yield text pieces (streaming), a Restart before each retry, and the
        Outcome of the last attempt."""
        timings = dict(timings or {})
        guardrails: list[dict[str, Any]] = []
        feedback: str | None = None
        last: _Attempt | None = None
        abstain_p: float | None = None
        prompt_tokens = completion_tokens = 0
        shown = sources
        if self.compress is not None:
            t = time.perf_counter()
            shown = self.compress(question, sources)
            timings["compress"] = time.perf_counter() - t
        t_gen = time.perf_counter()
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                yield Restart(attempt, feedback or "")
            messages = build_messages(question, shown, feedback, last.draft.raw if last else None)
            last = yield from self._attempt(question, sources, messages, stream, timings, first=attempt == 1,
                                            t_gen=t_gen)
            abstain_p = last.abstain_p if attempt == 1 else abstain_p
            prompt_tokens += last.prompt_tokens
            completion_tokens += last.completion_tokens
            guardrails += [{"attempt": attempt, "name": v.name, "severity": v.severity, "message": msg,
                            "draft": last.draft.raw[:400]} for v, msg in last.failures]
            if not last.failures or attempt > self.retries:
                break
            feedback = "; ".join(m for _, m in last.failures)
        assert last is not None
        timings["generate"] = time.perf_counter() - t_gen - timings.get("guardrails", 0.0)
        out = self._conclude(last, sources, guardrails, attempt, list(warnings or []), timings,
                             {"prompt": prompt_tokens, "completion": completion_tokens})
        out.abstain_p = abstain_p
        yield out

    def _attempt(self, question: str, sources: list[Source], messages: list[dict[str, str]], stream: bool,
                 timings: dict[str, float], first: bool, t_gen: float) -> Generator[str, None, _Attempt]:
        """One call of the model, its draft read (trimmed at the token limit, citations parsed or attributed) and
        validated. Yields the streamed pieces; returns the _Attempt."""
        kw = {k: v for k, v in self.sampling.items() if v is not None}
        max_tokens = int(self.sampling.get("max_tokens") or self.max_tokens)
        t0 = time.perf_counter()
        if stream:
            s = self.llm.stream(messages, **kw)
            try:
                yield from s
            finally:
                s.close()
            c = s.completion
        else:
            c = self.llm.generate(messages, **kw)
        if first and c.ttft_seconds is not None:
            timings["ttft"] = (t0 - t_gen) + c.ttft_seconds
        raw = drop_preamble(normalize_citations(c.text.strip()))
        trimmed = False
        if c.finish_reason == "length":  # keep what was complete; the rest was cut mid-sentence (or rambling)
            complete = complete_sentences(raw, max_sentences=4)  # the prompt asks for one to four sentences
            if complete and len(words(complete)) >= 3:
                raw, trimmed = complete, True
        text, found, invalid = parse_citations(raw, len(sources))
        attributed = False
        if not found and not is_idk(text) and self.attribute:
            fixed = attribute(text, sources)
            if fixed is not None:
                text, found, _ = parse_citations(fixed, len(sources))
                attributed = True
        text, cut = cut_to_supported(text, sources, question)
        if cut:
            text, found, _ = parse_citations(text, len(sources))
        draft = Draft(question=question, raw=c.text, text=text, sources=sources,
                      cited=list(dict.fromkeys(n for n, _ in found)), invalid_markers=invalid,
                      finish_reason=c.finish_reason, completion_tokens=c.completion_tokens, max_tokens=max_tokens,
                      trimmed=trimmed)
        t_check = time.perf_counter()
        failures = [(v, msg) for v in self.validators if (msg := v.check(draft)) is not None]
        timings["guardrails"] = timings.get("guardrails", 0.0) + time.perf_counter() - t_check
        return _Attempt(draft, found, failures, attributed, cut, c.prompt_tokens or 0, c.completion_tokens or 0,
                        getattr(c, "abstain_p", None))

    def _conclude(self, last: _Attempt, sources: list[Source], guardrails: list[dict[str, Any]], attempts: int,
                  warnings: list[str], timings: dict[str, float], tokens: dict[str, int | None]) -> Outcome:
        """The Outcome of the last attempt: abstain when it failed a hard guardrail or said it does not know;
        else its text with citations, soft failures as warnings."""
        base: dict[str, Any] = {"sources": sources, "model_id": self.llm.model_id, "guardrails": guardrails,
                                "attempts": attempts, "tokens": tokens, "timings": timings,
                                "invalid_citations": last.draft.invalid_markers}
        final = [g for g in guardrails if g["attempt"] == attempts]
        hard = [g for g in final if g["severity"] == "hard"]
        if hard:
            why = "guardrails: " + "; ".join(f"{g['name']}: {g['message']}" for g in hard)
            return Outcome.abstain(AbstainKind.GUARDRAILS, why, warnings=warnings, **base)
        if last.draft.abstained:
            return Outcome.abstain(AbstainKind.MODEL, MODEL_IDK, warnings=warnings, **base)
        warnings += [f"{g['name']}: {g['message']}" for g in final if g["severity"] == "soft"]
        if last.draft.trimmed:
            warnings.append(f"the model's answer ran to the token limit ({last.draft.max_tokens}): it was cut after "
                            "its last complete sentence (four at most)")
        if last.cut:
            warnings.append(f"{len(last.cut)} sentence(s) that the cited sources do not support were cut: "
                            + " ".join(repr(x[:80]) for x in last.cut))
        if last.attributed:
            warnings.append("the model cited no source: localrag added the citations, each to the source that "
                            "contains most of the sentence's words")
        return Outcome(text=last.draft.text, citations=make_citations(last.draft.text, last.found, sources),
                       attributed=last.attributed, warnings=warnings, **base)


MODEL_IDK = "the model found no answer in the sources"  # abstain_reason when the model said it does not know
