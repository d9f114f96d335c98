"""The generative answerer: prompt -> LLM (streamed) -> citations -> guardrails with retries -> Answer."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from localrag.app.answering.answer import Answer, Restart
from localrag.app.answering.citations import attribute, make_citations, parse_citations
from localrag.app.answering.guardrails import Draft, Validator, complete_sentences, default_validators
from localrag.app.answering.prompt import LLMLike, build_messages
from localrag.app.answering.sources import assemble_context
from localrag.eval.answer_format import IDK, is_idk
from localrag.index.text import words
from localrag.retrieval.types import Hit


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

    def run(self, question: str, hits: Sequence[Hit], stream: bool = False) -> Iterator[str | Restart | Answer]:
        """Yield text pieces (when streaming), a Restart before each retry, and finally the Answer."""
        timings: dict[str, float] = {}
        t = time.perf_counter()
        sources, notes = assemble_context(hits, self.llm.count_tokens, self.context_tokens)
        timings["assemble"] = time.perf_counter() - t
        ans = Answer(question=question, text="", model_id=self.llm.model_id, sources=sources, warnings=list(notes))
        if not sources:
            ans.text, ans.abstained, ans.abstain_reason = IDK, True, "no source fits the context budget"
            ans.timings = timings
            yield ans
            return
        max_tokens = int(self.sampling.get("max_tokens") or self.max_tokens)
        feedback: str | None = None
        draft: Draft | None = None
        prompt_tokens = completion_tokens = 0
        t_gen = time.perf_counter()
        for attempt in range(1, self.retries + 2):
            if attempt > 1:
                yield Restart(attempt, feedback or "")
            messages = build_messages(question, sources, feedback, draft.raw if draft else None)
            kw = {k: v for k, v in self.sampling.items() if v is not None}
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
            if attempt == 1 and c.ttft_seconds is not None:
                timings["ttft"] = (t0 - t_gen) + c.ttft_seconds
            prompt_tokens += c.prompt_tokens or 0
            completion_tokens += c.completion_tokens or 0
            raw = c.text.strip()
            trimmed = False
            if c.finish_reason == "length":  # keep what was complete; the rest was cut mid-sentence (or rambling)
                cut = complete_sentences(raw, max_sentences=4)  # the prompt asks for one to four sentences
                if cut and len(words(cut)) >= 3:
                    raw, trimmed = cut, True
            text, found, invalid = parse_citations(raw, len(sources))
            attributed = False
            if not found and not is_idk(text) and self.attribute:
                fixed = attribute(text, sources)
                if fixed is not None:
                    text, found, _ = parse_citations(fixed, len(sources))
                    attributed = True
            draft = Draft(question=question, raw=c.text, text=text, sources=sources,
                          cited=list(dict.fromkeys(n for n, _ in found)), invalid_markers=invalid,
                          finish_reason=c.finish_reason, completion_tokens=c.completion_tokens, max_tokens=max_tokens,
                          trimmed=trimmed)
            t_check = time.perf_counter()
            failures = [(v, msg) for v in self.validators if (msg := v.check(draft)) is not None]
            timings["guardrails"] = timings.get("guardrails", 0.0) + time.perf_counter() - t_check
            for v, msg in failures:
                ans.guardrails.append({"attempt": attempt, "name": v.name, "severity": v.severity, "message": msg,
                                       "draft": c.text[:400]})
            ans.attempts = attempt
            if not failures or attempt > self.retries:
                break
            feedback = "; ".join(m for _, m in failures)
        timings["generate"] = time.perf_counter() - t_gen - timings.get("guardrails", 0.0)
        ans.tokens = {"prompt": prompt_tokens, "completion": completion_tokens}
        ans.timings = timings
        assert draft is not None
        ans.invalid_citations = draft.invalid_markers
        last = [g for g in ans.guardrails if g["attempt"] == ans.attempts]
        hard_last = [g for g in last if g["severity"] == "hard"]
        if hard_last:
            ans.text, ans.abstained = IDK, True
            ans.abstain_reason = "guardrails: " + "; ".join(f"{g['name']}: {g['message']}" for g in hard_last)
        elif draft.abstained:
            ans.text, ans.abstained, ans.abstain_reason = IDK, True, "the model found no answer in the sources"
        else:
            ans.text = draft.text
            ans.citations = make_citations(draft.text, found, sources)  # offsets of the last draft's markers
            ans.warnings += [f"{g['name']}: {g['message']}" for g in last if g["severity"] == "soft"]
            if draft.trimmed:
                ans.warnings.append(f"the model's answer ran to the token limit ({max_tokens}): it was cut after its "
                                    "last complete sentence (four at most)")
            if attributed:
                ans.attributed = True
                ans.warnings.append("the model cited no source: localrag added the citations, each to the source "
                                    "that contains most of the sentence's words")
        yield ans
