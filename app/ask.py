"""The route of one question, from `Rag.ask` to its `Answer`, as plain functions over one frozen `AskOptions`:

    AskOptions.build  settings + call arguments, checked once
    standalone        a follow-up rewritten from the history (the LLM; without it in extractive mode)
    cached            the answer cache (same or equivalent question, same scope, model and corpus version)
    retrieve          search; the hits above answer_min_relevance are the candidate sources
    write             extractive | generative | auto  ->  an Outcome (app.answering)
    finish            the Answer, built once: the Outcome plus where it came from, scores and timings

`answer_events` runs them in order and yields what `Rag.ask_stream` documents. Each stage takes the parts it needs
(`AskParts`: what a `Rag` provides), so a test can call one stage without a `Rag`'s private methods.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from localrag.app.answering import (
    AbstainKind,
    Answer,
    Answerer,
    Outcome,
    Replace,
    Restart,
    Source,
    assemble_context,
    rewrite_question,
)
from localrag.app.answering.answerer import MODEL_IDK
from localrag.app.answering.compress import compress_sources
from localrag.app.answering.extractive import EXTRACTIVE_MODEL_ID, extract_answer, to_outcome
from localrag.app.answering.prompt import _FOLLOW_UP, PROMPT_VERSION, LLMLike
from localrag.app.answering.verify import VERIFY_PROMPT_VERSION, cited_quotes, support_probability
from localrag.app.cache import new_words_check, verify_equivalent
from localrag.app.config import AnswerMode, Settings
from localrag.app.llm.base import LLMError
from localrag.retrieval.types import Filters, Hit, SearchResults

__all__ = ["AskOptions", "AskParts", "Retrieved", "answer_events", "finish", "retrieve", "standalone"]

AskEvent = str | Restart | Replace | Answer


class AskParts(Protocol):
    """What the route needs from the facade (a `Rag` provides it)."""

    settings: Settings

    @property
    def llm(self) -> LLMLike: ...

    @property
    def embedder(self) -> Any: ...

    @property
    def cache(self) -> Any: ...

    def search(self, query: str, k: int = 5, collection: str = "default", **kw: Any) -> SearchResults: ...

    def score_answer(self, question: str, ans: Any, reference: str | None = None) -> dict[str, Any]: ...

    def llm_model_id(self) -> str: ...

    def verifier(self) -> Any: ...

    def corpus_version(self, collection_id: int) -> int: ...


@dataclass(frozen=True)
class AskOptions:
    """Everything one ask depends on, built once from the settings and the call's arguments (`build`)."""

    question: str
    collection: str
    collection_id: int
    k: int
    answer_mode: AnswerMode
    search_mode: str | None  # None: the search_mode setting
    filters: Filters
    rerank: bool | None
    expand: bool
    history: tuple[dict[str, str], ...]
    use_cache: bool
    temperature: float | None
    top_p: float | None
    max_tokens: int
    stop: tuple[str, ...] | None
    min_relevance: float
    context_tokens: int
    compress_tokens: int  # 0: the model reads whole chunks
    doubt_p: float  # verified abstention: the model's P("I don't know") at which its answer is not used
    min_support: float  # verified abstention: the extractive support below which a generated answer is not used
    cache_margin: float  # a paraphrase hit: how much less its quotes may support the new question (cosine)
    verify_model: str | None  # verified abstention (auto): the checking model; None: no check
    verify_min: float  # verified abstention (auto): the checking model's P(yes) a generated answer needs
    verify_quote_min: float  # ... and the quote, when it stands in for a generated answer that was not used
    verify_alternatives: int  # ... and how many next-best quotes it reads when the first quote is not an answer
    retries: int
    score: bool
    default_search_mode: str

    @classmethod
    def build(
        cls, settings: Settings, question: str, collection: str, collection_id: int, *, k: int | None = None,
        mode: str | None = None, filters: Filters | dict[str, Any] | None = None, rerank: bool | None = None,
        expand: bool = False, history: Sequence[Any] | None = None, cache: bool | None = None,
        temperature: float | None = None, top_p: float | None = None, max_tokens: int | None = None,
        stop: Sequence[str] | None = None, answer_mode: str | None = None,
    ) -> AskOptions:
        """The options of one ask; raises ValueError (with what to do) for a bad value."""
        if not isinstance(question, str) or not question.strip():
            raise ValueError("empty question: type a question")
        try:
            amode = AnswerMode(answer_mode or settings.answer.mode)
        except ValueError:
            raise ValueError(f"unknown answer mode {answer_mode!r}: use one of "
                             f"{', '.join(m.value for m in AnswerMode)}") from None
        st = settings.answer
        return cls(
            question=question, collection=collection, collection_id=collection_id, k=k or st.k,
            answer_mode=amode, search_mode=mode, filters=Filters.coerce(filters), rerank=rerank, expand=expand,
            history=tuple(as_messages(history or ())), use_cache=st.cache_enabled if cache is None else cache,
            temperature=temperature, top_p=top_p, max_tokens=max_tokens or st.max_tokens,
            stop=tuple(stop) if stop else None, min_relevance=st.min_relevance,
            context_tokens=st.context_tokens, compress_tokens=st.compress_tokens, doubt_p=st.doubt_p,
            min_support=st.min_support, cache_margin=st.cache_margin, verify_model=st.verify_model,
            verify_min=st.verify_min, verify_quote_min=st.verify_quote_min,
            verify_alternatives=st.verify_alternatives,
            retries=st.retries, score=st.score,
            default_search_mode=settings.search.mode,
        )

    @property
    def sampling(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens,
                "stop": list(self.stop) if self.stop else None}

    @property
    def search_kwargs(self) -> dict[str, Any]:
        return {"mode": self.search_mode, "filters": self.filters, "rerank": self.rerank, "expand": self.expand}

    @property
    def scope(self) -> str:
        """The answer cache's scope: what besides the question and the corpus the answer depends on (JSON)."""
        return json.dumps({"prompt": PROMPT_VERSION, "answer_mode": self.answer_mode.value, "k": self.k,
                           "mode": self.search_mode or self.default_search_mode, "filters": self.filters.__dict__,
                           "expand": self.expand, "rerank": self.rerank, "floor": self.min_relevance,
                           "sampling": self.sampling, "compress": self.compress_tokens,
                           "verify": [self.doubt_p, self.min_support],
                           "check": [self.verify_model, self.verify_min, self.verify_quote_min,
                                     self.verify_alternatives, VERIFY_PROMPT_VERSION]}, sort_keys=True)


@dataclass
class Clock:
    """Seconds per stage of one ask, from its start."""

    t0: float = field(default_factory=time.perf_counter)
    timings: dict[str, float] = field(default_factory=dict)

    def total(self) -> float:
        return time.perf_counter() - self.t0


@dataclass
class Retrieved:
    results: SearchResults
    relevant: list[Hit]  # the hits at or above answer_min_relevance: the candidate sources


# --- the stages ----------------------------------------------------------------------------------------------
def standalone(parts: AskParts, opts: AskOptions, clock: Clock) -> str:
    """The question as searched: a follow-up rewritten from the history into a standalone question (by the LLM;
    in extractive mode, without it: the previous question plus this one when this one points back)."""
    question = opts.question.strip()
    if not opts.history:
        return question
    if opts.answer_mode == AnswerMode.EXTRACTIVE:
        users = [m["content"] for m in opts.history if m.get("role") == "user" and m.get("content", "").strip()]
        return f"{users[-1]} {question}" if users and _FOLLOW_UP.search(question) else question
    t = time.perf_counter()
    out = rewrite_question(parts.llm, list(opts.history), question)
    clock.timings["rewrite"] = time.perf_counter() - t
    return out


def model_id(parts: AskParts, opts: AskOptions) -> str:
    return EXTRACTIVE_MODEL_ID if opts.answer_mode == AnswerMode.EXTRACTIVE else parts.llm_model_id()


def cached(parts: AskParts, opts: AskOptions, question: str, model: str, clock: Clock,
           fetch: Callable[[], Retrieved]) -> Answer | None:
    """The cached answer to this question in this scope, model and corpus version: an exact repeat, or the same
    question asked another way (`answers_too` checks the stored answer against this question; `fetch` retrieves
    for it, once, and the route reuses that retrieval on a miss)."""
    t = time.perf_counter()
    version = parts.corpus_version(opts.collection_id)

    def key(text: str) -> str:
        return str(parts.cache.key_text(opts.collection_id, version, text))

    def verify(payload: dict[str, Any], qvec: np.ndarray) -> str | None:  # only for a similar stored question
        return answers_too(parts, opts, question, qvec, payload, fetch, version, key)

    hit = parts.cache.lookup(opts.collection_id, version, model, opts.scope, question, verify=verify)
    clock.timings["cache"] = time.perf_counter() - t
    if hit is None:
        return None
    old = Answer.from_dict(hit.payload)
    body = Outcome.of_answer(old)
    body.tokens = {"prompt": 0, "completion": 0}
    info = {"kind": hit.kind, "similarity": round(hit.similarity, 4), "matched_question": hit.matched_question,
            "age_s": round(hit.age_s, 1), "why": cache_why(hit.kind, hit.matched_question, hit.age_s)}
    return finish(opts, body, standalone=old.standalone_question, corpus_version=old.corpus_version, clock=clock,
                  cached_info=info, scores=old.scores)


def cache_why(kind: str, matched: str, age_s: float) -> str:
    """'answered from the cache: same question as '…' (asked 2 h ago)', for the CLI and the UI."""
    how = "same question as" if kind == "exact" else "the same question asked another way as"
    return f"answered from the cache: {how} {matched!r} (asked {ago(age_s)})"


def ago(seconds: float) -> str:
    s = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= size:
            return f"{s / size:.0f} {unit} ago"
    return "just now" if s < 5 else f"{s:.0f} s ago"


def answers_too(parts: AskParts, opts: AskOptions, question: str, qvec: Any, payload: dict[str, Any],
                fetch: Callable[[], Retrieved], version: int, key: Callable[[str], str] = str) -> str | None:
    """Why a cached answer to another wording is not an answer to `question`, or None when it is:

    - evidence: one of the chunks it cites is among this question's top hits;
    - subject: a rare word only this question has is in its quotes, or replaces a word of the old question and is
      not one the cited chunks tell apart ("deputy mayor" beside "mayor"): `new_words_check`;
    - support: its quoted sentences support this question nearly as well as the question it was written for
      (best cosine within answer.cache_margin; `qvec` and `key`: the questions as the cache embeds them)."""
    cites = payload.get("citations") or []
    old_q = payload.get("standalone_question") or payload.get("question") or ""
    if not cites or not old_q:
        return "no evidence to check (the cached answer cites no source)"
    top = {h.chunk_id: h for h in fetch().relevant[: opts.k]}
    cited = [top[c["chunk_id"]] for c in cites if c.get("chunk_id") in top]
    if not cited:
        return "evidence differs: the chunks it cites are not among this question's top hits"
    quotes = list(dict.fromkeys(c["quote"] for c in cites if c.get("quote"))) or [h.text for h in cited]
    rare = parts.cache.rare_terms(opts.collection_id, version)
    reason = verify_equivalent(question, old_q, set()) or new_words_check(question, old_q, quotes,
                                                                          [h.text for h in cited], rare)
    if reason is not None:
        return f"subject differs: {reason}"
    vecs = np.asarray(parts.embedder.encode([key(old_q), *quotes]), dtype=np.float32)
    new, old = float((vecs[1:] @ np.asarray(qvec, dtype=np.float32)).max()), float((vecs[1:] @ vecs[0]).max())
    if new < old - opts.cache_margin:
        return (f"support differs: its quotes support this question less ({new:.2f} vs {old:.2f} for its own, "
                f"margin {opts.cache_margin:.2f})")
    return None


def retrieve(parts: AskParts, opts: AskOptions, question: str, clock: Clock) -> Retrieved:
    """Search for the (standalone) question; keep the hits at or above answer_min_relevance."""
    res = parts.search(question, k=opts.k, collection=opts.collection, **opts.search_kwargs)
    clock.timings["retrieve"] = res.timings.get("total", 0.0)
    return Retrieved(res, [h for h in res if h.relevance >= opts.min_relevance])


def no_sources(opts: AskOptions, got: Retrieved, model: str) -> Outcome:
    """The abstention when no source is relevant enough (no writer runs)."""
    best = max((h.relevance for h in got.results), default=None)
    why = ("the collection has no matching chunks" if best is None else
           f"no source is relevant enough (best relevance {best:.2f} < answer_min_relevance {opts.min_relevance:.2f})")
    return Outcome.abstain(AbstainKind.NO_SOURCES, why, model_id=model, mode=opts.answer_mode.value)


def extractive(parts: AskParts, opts: AskOptions, question: str, relevant: list[Hit],
               mode: str = "extractive", vectors: dict[str, Any] | None = None) -> Outcome:
    """The extractive answer (app.answering.extractive): the same numbered sources as for the LLM (its context
    budget, counted with the embedder's tokenizer), the best supporting sentence(s) quoted and cited, or 'I don't
    know'. The LLM is not loaded."""
    t = time.perf_counter()
    embedder = parts.embedder
    sources, notes = assemble_context(relevant, lambda text: embedder.token_counts([text])[0], opts.context_tokens)
    t_assemble = time.perf_counter() - t
    if not sources:
        return Outcome.abstain(AbstainKind.CONTEXT_BUDGET, "no source fits the context budget",
                               model_id=EXTRACTIVE_MODEL_ID, warnings=notes, mode=mode,
                               timings={"assemble": t_assemble})
    out = quote(parts, question, sources, mode, vectors)
    out.warnings = notes + out.warnings
    out.timings = {"assemble": t_assemble, **out.timings}
    return out


def quote(parts: AskParts, question: str, sources: Sequence[Source], mode: str,
          vectors: dict[str, Any] | None = None) -> Outcome:
    """The extractive answer over numbered sources already assembled (`vectors`: sentence embeddings to reuse)."""
    return to_outcome(sources, extract_answer(question, sources, parts.embedder, cache=vectors), mode=mode)


def answerer(parts: AskParts, opts: AskOptions, vectors: dict[str, Any] | None = None) -> Answerer:
    """The generative answerer for these options: a context budget that leaves room for the instructions, the
    question, the answer and a retry's draft; the sources compressed to `compress_tokens` when that is set
    (`vectors`: sentence embeddings the quote already computed, reused)."""
    llm = parts.llm
    budget = opts.context_tokens
    n_ctx = getattr(llm, "n_ctx", None)
    if n_ctx:
        budget = max(64, min(budget, n_ctx - 2 * opts.max_tokens - 400))
    squeeze = None
    if opts.compress_tokens:
        embedder, count = parts.embedder, llm.count_tokens

        def squeeze(question: str, sources: list[Source]) -> list[Source]:
            return compress_sources(question, sources, embedder, count, budget=opts.compress_tokens, cache=vectors)

    return Answerer(llm, retries=opts.retries, context_tokens=budget, sampling=opts.sampling,
                    max_tokens=opts.max_tokens, compress=squeeze)


def generative(parts: AskParts, opts: AskOptions, question: str, relevant: list[Hit],
               stream: bool) -> Iterator[str | Restart | Outcome]:
    """The LLM writes the answer with the guardrails (app.answering.Answerer). Yields text pieces and Restarts,
    then the Outcome."""
    for event in answerer(parts, opts).run(question, relevant, stream=stream):
        if isinstance(event, Outcome):
            event.mode = "generative"
        yield event


def check(parts: AskParts, opts: AskOptions, question: str, gen: Outcome) -> None:
    """Verified abstention: the checking model (answer.verify_model) reads the quotes an answer cites and gives its
    P(yes) that they state it, as an answer to the question (`verified_p`; app/answering/verify.py) — the generated
    answer, and in auto mode the quote when it would stand in for a generated answer that was not used. A checking
    model that cannot be loaded or gives no probabilities leaves the answer unchecked, with a warning."""
    if opts.verify_model is None or gen.abstained:
        return
    t = time.perf_counter()
    try:
        llm = parts.verifier()
        p = None if llm is None else support_probability(llm, question, gen.text,
                                                                 cited_quotes(gen.citations, gen.sources))
    except LLMError as exc:
        gen.warnings.append(f"the answer was not checked: {exc}")
        return
    gen.timings["verify"] = time.perf_counter() - t
    if p is None:
        gen.warnings.append(f"the answer was not checked: the checking model ({opts.verify_model}) gave no "
                            "probabilities, or the answer cites no quote")
    gen.verified_p = p


def stand_in(parts: AskParts, opts: AskOptions, question: str, quote: Outcome) -> Outcome:
    """Auto mode, when the generated answer is not used: the quote that stands in, checked by the checking model
    (`check`). The first quote when it reaches `verify_quote_min`; else the first of the next-best quotes (up to
    `verify_alternatives`; after an extractive abstention they are the candidates it found too weak) that reaches
    the bar of a generated answer (`verify_min`, the higher of the two: a lower-ranked sentence needs more
    evidence); else the first quote with its low P(yes), or its abstention (`choose` then says "I don't know")."""
    if opts.verify_quote_min <= 0 or opts.verify_model is None:
        return quote
    tries = ([] if quote.abstained else [quote]) + quote.alternatives[:opts.verify_alternatives]
    for k, cand in enumerate(tries):
        check(parts, opts, question, cand)
        if cand.verified_p is None:
            return quote  # unchecked (no model, no probabilities): the quote stands as before, with the warning
        bar = opts.verify_quote_min if cand is quote else max(opts.verify_quote_min, opts.verify_min)
        if cand.verified_p >= bar:
            if cand is not quote:
                cand.timings = quote.timings
                cand.warnings = [f"the checking model did not take the best quote as an answer; this is the "
                                 f"next-best quote that it did (P(yes) = {cand.verified_p:.2f}, try {k + 1})",
                                 *cand.warnings]
            return cand
    return quote


def doubt(gen: Outcome, quote: Outcome, opts: AskOptions) -> str | None:
    """Why a generated answer that passed its checks is still not used (verified abstention), or None: the checking
    model does not find it in its quotes (`check`), the model itself leans to "I don't know" (its first-token
    probability), or no source sentence supports an answer well (the extractive score)."""
    if gen.verified_p is not None and gen.verified_p < opts.verify_min:
        return (f"the checking model ({opts.verify_model}) did not find it in the quoted sources (P(yes) = "
                f"{gen.verified_p:.2f} < answer.verify_min {opts.verify_min:.2f})")
    if gen.abstain_p is not None and gen.abstain_p >= opts.doubt_p:
        return (f"the model leaned to 'I don't know' (P = {gen.abstain_p:.2f} >= answer.doubt_p {opts.doubt_p:.2f})")
    if quote.support is not None and quote.support < opts.min_support:
        return (f"no source sentence supports an answer well (support {quote.support:.2f} < answer.min_support "
                f"{opts.min_support:.2f})")
    return None


def choose(quote: Outcome, gen: Outcome, opts: AskOptions) -> Outcome:
    """Auto's choice between the quote and the generated answer over the same numbered sources: the generated
    answer when it passed its checks and its verification; else the quote when there is one (marked as a quote);
    else "I don't know", with why."""
    gen.mode = "auto:generative"
    gen.timings = {**quote.timings, **gen.timings}
    why = gen.abstain_reason if gen.abstained else doubt(gen, quote, opts)
    if why is None:
        gen.warnings = [w for w in quote.warnings if not w.startswith("extractive answer:")] + gen.warnings
        return gen
    if not quote.abstained and quote.verified_p is not None and quote.verified_p < opts.verify_quote_min:
        return Outcome.abstain(
            AbstainKind.NO_SUPPORT, f"the generated answer was not used ({why}), and the checking model did not find "
            f"the quote an answer either (P(yes) = {quote.verified_p:.2f} < answer.verify_quote_min "
            f"{opts.verify_quote_min:.2f})", sources=gen.sources, model_id=gen.model_id, mode="auto:generative",
            guardrails=gen.guardrails, attempts=gen.attempts, tokens=gen.tokens, timings=gen.timings,
            warnings=quote.warnings, abstain_p=gen.abstain_p)
    if not quote.abstained:
        quote.warnings = [f"the generated answer was not used ({why}); this answer quotes the sources"] + quote.warnings
        quote.guardrails, quote.attempts, quote.tokens = gen.guardrails, gen.attempts, gen.tokens
        quote.timings = gen.timings
        return quote
    if not gen.abstained:
        return Outcome.abstain(AbstainKind.NO_SUPPORT, why, sources=gen.sources, model_id=gen.model_id,
                               mode="auto:generative", guardrails=gen.guardrails, attempts=gen.attempts,
                               tokens=gen.tokens, timings=gen.timings, warnings=quote.warnings,
                               abstain_p=gen.abstain_p)
    gen.warnings = quote.warnings + gen.warnings + [f"no extractive answer either ({quote.abstain_reason})"]
    return gen


def auto(parts: AskParts, opts: AskOptions, question: str, relevant: list[Hit],
         stream: bool) -> Iterator[str | Replace | Outcome]:
    """Auto mode: the quote first, then the answer. The extractive answer is ready at once (no LLM) and streamed;
    the LLM then writes an answer over the same numbered sources, and when it passes its checks and its
    verification (`doubt`) it replaces the quote (a `Replace` event, then its text). Otherwise the quote stays,
    marked as a quote, or the answer is "I don't know" (`choose`)."""
    vectors: dict[str, Any] = {}  # the sentences the quote embeds, reused by the compression
    out = extractive(parts, opts, question, relevant, mode="auto:extractive", vectors=vectors)
    if out.abstain_kind == AbstainKind.CONTEXT_BUDGET:
        yield out
        return
    if stream and not out.abstained:
        yield out.text
    gen: Outcome | None = None
    for event in answerer(parts, opts, vectors).write(question, out.sources, stream=False):
        if isinstance(event, Outcome):
            gen = event
    assert gen is not None
    check(parts, opts, question, gen)
    quote = out
    if gen.abstained or doubt(gen, out, opts) is not None:
        quote = stand_in(parts, opts, question, out)  # the quote would stand in: is it an answer?
    final = choose(quote, gen, opts)
    if stream and final is not out:
        if final.abstained:
            yield Replace("auto", final.abstain_reason or "")
        elif final is quote:
            yield Replace("auto:extractive", "the checking model took a next-best quote as the answer")
        else:
            yield Replace("auto:generative", "the generated answer passed its checks")
        yield final.text
    yield final


def write(parts: AskParts, opts: AskOptions, question: str, relevant: list[Hit],
          stream: bool) -> Iterator[str | Restart | Replace | Outcome]:
    """The writer of the answer mode: yields text pieces (streaming) and events, the Outcome last."""
    if opts.answer_mode == AnswerMode.EXTRACTIVE:
        out = extractive(parts, opts, question, relevant)
        if stream:
            yield out.text
        yield out
    elif opts.answer_mode == AnswerMode.GENERATIVE:
        yield from generative(parts, opts, question, relevant, stream)
    else:
        yield from auto(parts, opts, question, relevant, stream)


def finish(opts: AskOptions, body: Outcome, *, standalone: str | None, corpus_version: int, clock: Clock,
           warnings: Sequence[str] = (), scores: dict[str, Any] | None = None,
           cached_info: dict[str, Any] | None = None) -> Answer:
    """The Answer, built once: the writer's Outcome, the asked and the searched question, the collection and its
    version, the search's notes, the scores and the timings of every stage."""
    fields = body.answer_fields()
    fields["warnings"] = list(warnings) + body.warnings
    timings = {**clock.timings, **body.timings, "total": clock.total()}
    if cached_info is not None:
        timings = {**clock.timings, "total": clock.total()}
    fields["timings"] = timings
    rewritten = standalone if standalone and standalone != opts.question.strip() else None
    return Answer(question=opts.question, standalone_question=rewritten, collection=opts.collection,
                  corpus_version=corpus_version, cached=cached_info is not None, cache=cached_info, scores=scores,
                  **fields)


def score(parts: AskParts, opts: AskOptions, question: str, body: Outcome, clock: Clock) -> dict[str, Any] | None:
    """The proxy scores of an answer with sources, when score_answers is on."""
    if not (opts.score and body.sources):
        return None
    t = time.perf_counter()
    out = parts.score_answer(question, body)
    clock.timings["score"] = time.perf_counter() - t
    return out


# --- the route -----------------------------------------------------------------------------------------------
def answer_events(parts: AskParts, opts: AskOptions, *, stream: bool) -> Iterator[AskEvent]:
    """The stages in order; yields text pieces (streaming), Restart/Replace events, and the Answer last."""
    clock = Clock()
    question = standalone(parts, opts, clock)
    model = model_id(parts, opts)
    fetched: list[Retrieved] = []

    def fetch() -> Retrieved:  # one retrieval per ask, whether the cache's check or the writer needs it first
        if not fetched:
            fetched.append(retrieve(parts, opts, question, clock))
        return fetched[0]

    if opts.use_cache:
        hit = cached(parts, opts, question, model, clock, fetch)
        if hit is not None:
            if stream:
                yield hit.text
            yield hit
            return
    got = fetch()
    if not got.relevant:
        ans = finish(opts, no_sources(opts, got, model), standalone=question, clock=clock, warnings=got.results.notes,
                     corpus_version=got.results.corpus_version)
        if stream:
            yield ans.text
        yield ans
        return
    body: Outcome | None = None
    for event in write(parts, opts, question, got.relevant, stream):
        if isinstance(event, Outcome):
            body = event
        else:
            if isinstance(event, str) and event:
                clock.timings.setdefault("first_words", clock.total())  # what a reader waits for (streaming)
            yield event
    assert body is not None
    scores = score(parts, opts, question, body, clock)
    ans = finish(opts, body, standalone=question, corpus_version=got.results.corpus_version, clock=clock,
                 warnings=got.results.notes, scores=scores)
    if opts.use_cache and not ans.abstained:
        t = time.perf_counter()
        parts.cache.put(opts.collection_id, ans.corpus_version, model, opts.scope, question, ans.to_dict())
        ans.timings["cache_store"] = time.perf_counter() - t
    yield ans


def as_messages(history: Sequence[Any]) -> list[dict[str, str]]:
    """Chat history as messages: accepts message dicts or (question, answer) pairs."""
    msgs: list[dict[str, str]] = []
    for item in history:
        if isinstance(item, dict):
            msgs.append({"role": str(item.get("role")), "content": str(item.get("content", ""))})
        else:
            q, a = item
            msgs += [{"role": "user", "content": str(q)}, {"role": "assistant", "content": str(a)}]
    return msgs


__all__ += ["MODEL_IDK", "AbstainKind"]
