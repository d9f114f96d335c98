"""The LLM judge: the ragas metrics judged by an LLM whose output is constrained by a JSON schema.

A call whose output cannot be parsed or does not fit the schema is retried (`retries`), then the metric is reported
unscored: value None with `unscored_reason`, and counted in `LLMJudge.stats`. A NaN never leaves this module.

The LLM is any object with ``generate_json(messages, schema, temperature=..., max_tokens=...) -> dict`` and a
``model_id`` (the protocol of app.llm, which this module does not import: eval sits below app). Its errors are
`RuntimeError` subclasses (app.llm.LLMError).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import numpy as np
from jsonschema import Draft202012Validator

from localrag.eval.answer_format import is_abstention, plain_sentences, strip_citations
from localrag.eval.metrics import EmbedderLike, MetricScore, Scores, clip01, precision_at_k, select_metrics

__all__ = ["VERDICT_SCHEMA", "JsonLLM", "LLMJudge", "schema_problems"]

log = logging.getLogger(__name__)


class JsonLLM(Protocol):
    """What the judge needs from an LLM (app.llm's backends fit)."""

    model_id: str

    def generate_json(
        self, messages: list[dict], schema: dict, *, temperature: float | None = None, max_tokens: int | None = None,
    ) -> dict: ...


class _BadOutput(ValueError):
    """The model's JSON parsed but does not fit the schema or the task (e.g. no questions at all)."""


# Length and count bounds (minItems, maxLength, ...) steer generation: llama.cpp turns them into its grammar. A
# backend that ignores the schema may overstep them; such output is trimmed by the judge, not rejected, so only the
# shape (types, required keys, enums) is validated.
_BOUNDS = frozenset({"minItems", "maxItems", "minLength", "maxLength"})


def _shape(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _shape(v) for k, v in schema.items() if k not in _BOUNDS}
    if isinstance(schema, list):
        return [_shape(v) for v in schema]
    return schema


def schema_problems(value: Any, schema: dict) -> list[str]:
    """What keeps `value` from the shape `schema` describes (types, required keys, enums; see _BOUNDS), as
    "$.path: message" lines; [] when it fits. Backends and fakes may ignore the schema they were given."""
    validator = Draft202012Validator(_shape(schema))
    return [f"{e.json_path}: {e.message}" for e in sorted(validator.iter_errors(value), key=lambda e: e.json_path)]


VERDICT_SCHEMA = {
    "type": "object", "properties": {"verdict": {"type": "string", "enum": ["yes", "no"]}}, "required": ["verdict"],
}


def _list_schema(key: str, max_items: int, max_chars: int, extra: dict | None = None) -> dict:
    """An object holding a bounded list of short strings. The bounds become part of llama.cpp's grammar: without
    them SmolLM2 wrote questions until max_tokens (82 s for one cut-off call on 2 busy cores)."""
    props: dict[str, Any] = {key: {"type": "array", "minItems": 1, "maxItems": max_items,
                                   "items": {"type": "string", "minLength": 1, "maxLength": max_chars}}}
    props |= extra or {}
    return {"type": "object", "properties": props, "required": list(props)}


_FATAL = {"ContextOverflow", "LLMUnavailable", "LLMConfigError"}  # app.llm errors that a retry cannot fix


def _fatal(exc: BaseException) -> bool:
    return any(c.__name__ in _FATAL for c in type(exc).__mro__)


def _each(
    items: Iterable[Any], judge: Callable[[Any], tuple[bool | None, list[str]]], item_key: str, verdict_key: str,
) -> tuple[list[dict[str, Any]], list[str]]:
    """One verdict per item: rows {item_key: item, verdict_key: True / False / None, "error": ...}, and the last
    error of each item left unscored (None)."""
    rows: list[dict[str, Any]] = []
    failed: list[str] = []
    for item in items:
        v, errors = judge(item)
        rows.append({item_key: item, verdict_key: v, "error": errors[-1] if v is None and errors else None})
        if v is None:
            failed.append(errors[-1] if errors else "unscored")
    return rows, failed


class LLMJudge:
    """ragas-style metrics judged by an LLM through schema-constrained JSON.

    Each model call is tried ``1 + retries`` times (greedy first, then at `retry_temperature` so that a retry can
    differ); when every try fails the metric is unscored with the last error as its reason. `stats` counts calls,
    failed attempts and unscored calls over the judge's life. Faithfulness and context recall use `verdict()`,
    the single judgement that eval/judge_eval.py measures against labelled statements.
    """

    def __init__(
        self, llm: JsonLLM, embedder: EmbedderLike, *, retries: int = 2, n_questions: int = 3, max_tokens: int = 512,
        max_claims: int = 8, max_context_tokens: int = 1400, retry_temperature: float = 0.7, decompose: bool = True,
    ) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.llm = llm
        self.embedder = embedder
        self.retries = int(retries)
        self.n_questions = int(n_questions)
        self.max_tokens = int(max_tokens)
        self.max_claims = int(max_claims)
        self.max_context_tokens = int(max_context_tokens)
        self.retry_temperature = float(retry_temperature)
        self.decompose = decompose
        self.judge = f"llm:{getattr(llm, 'model_id', type(llm).__name__)}"
        self.claims_schema = _list_schema("claims", self.max_claims, 200)
        self.questions_schema = _list_schema("questions", max(1, self.n_questions), 160,
                                             {"noncommittal": {"type": "boolean"}})
        self.stats = {"calls": 0, "attempts": 0, "failed_attempts": 0, "unscored_calls": 0}
        self.last_error: str | None = None

    # -- one schema-constrained call with retries
    def _ask(
        self, messages: list[dict], schema: dict, *, max_tokens: int, check: Callable[[dict], None] | None = None,
    ) -> tuple[dict | None, list[str]]:
        errors: list[str] = []
        self.stats["calls"] += 1
        for attempt in range(self.retries + 1):
            self.stats["attempts"] += 1
            temperature = 0.0 if attempt == 0 else self.retry_temperature
            try:
                out = self.llm.generate_json(messages, schema, temperature=temperature, max_tokens=max_tokens)
                problems = schema_problems(out, schema)
                if problems:
                    raise _BadOutput("output does not match the schema: " + "; ".join(problems[:3]))
                if check is not None:
                    check(out)
                return out, errors
            except _BadOutput as exc:
                errors.append(str(exc))
            except RuntimeError as exc:  # app.llm.LLMError and its subclasses
                errors.append(f"{type(exc).__name__}: {exc}")
                if _fatal(exc):
                    self.stats["failed_attempts"] += 1
                    break
            self.stats["failed_attempts"] += 1
        self.stats["unscored_calls"] += 1
        self.last_error = errors[-1] if errors else None
        log.info("LLM judge call unscored after %d attempt(s): %s", len(errors), self.last_error)
        return None, errors

    def _fit(self, text: str) -> tuple[str, bool]:
        """Cut `text` to max_context_tokens (the model's own count when it has one) so the prompt fits n_ctx."""
        count = getattr(self.llm, "count_tokens", None)

        def n_tokens(s: str) -> int:
            if callable(count):
                try:
                    return int(count(s))
                except Exception:  # noqa: BLE001 - a count is only a guide here
                    pass
            return math.ceil(len(s) / 4)

        n = n_tokens(text)
        if n <= self.max_context_tokens:
            return text, False
        for _ in range(4):
            text = text[: max(1, int(len(text) * self.max_context_tokens / n * 0.95))]
            n = n_tokens(text)
            if n <= self.max_context_tokens:
                break
        return text, True

    def _verdict(self, statement: str, context: str) -> tuple[bool | None, list[str]]:
        context, _ = self._fit(context)
        messages = [
            {"role": "system", "content": "You check whether a statement is supported by a context. "
                                          "Use only the context, not what you know."},
            {"role": "user", "content": (
                f"Context:\n{context}\n\nStatement: {statement}\n\n"
                'Is the statement supported by the context? Answer "yes" only if the context says it. '
                'Answer "no" if the context contradicts it or does not say it.')},
        ]
        out, errors = self._ask(messages, VERDICT_SCHEMA, max_tokens=min(self.max_tokens, 32))
        return (None if out is None else out["verdict"] == "yes"), errors

    def verdict(self, statement: str, context: str) -> bool | None:
        """One supported (True) / unsupported (False) judgement; None when the model's output stayed unusable
        (`last_error` says why)."""
        v, _ = self._verdict(statement, context)
        return v

    def score(
        self, question: str, answer: str, contexts: list[str], cited: dict[int, str] | None = None,
        reference: str | None = None, *, abstained: bool = False, metrics: Iterable[str] | None = None,
    ) -> Scores:
        """The metrics by ragas definitions with this judge's LLM (each takes one or more model calls)."""
        t0 = time.perf_counter()
        wanted = select_metrics(metrics)
        abstained = abstained or is_abstention(answer)
        contexts = [c or "" for c in contexts]
        out: dict[str, MetricScore] = {}
        for name in wanted:
            before = dict(self.stats)
            t = time.perf_counter()
            if name == "faithfulness":
                m = self._faithfulness(question, answer, contexts, cited, abstained)
            elif name == "answer_relevancy":
                m = self._relevancy(question, answer, abstained)
            elif name == "context_precision":
                m = self._precision(question, answer, contexts, reference, abstained)
            else:
                m = self._recall(reference, contexts)
            m.details["llm_calls"] = self.stats["calls"] - before["calls"]
            m.details["failed_attempts"] = self.stats["failed_attempts"] - before["failed_attempts"]
            m.details["seconds"] = round(time.perf_counter() - t, 3)
            out[name] = m
        return Scores(out, time.perf_counter() - t0, self.judge)

    def _m(self, name: str, value: float | None, details: dict, reason: str | None = None) -> MetricScore:
        return MetricScore(name, value, self.judge, details, reason)

    def _faithfulness(
        self, question: str, answer: str, contexts: list[str], cited: dict[int, str] | None, abstained: bool,
    ) -> MetricScore:
        name = "faithfulness"
        if abstained:
            return self._m(name, None, {}, "abstained")
        clean = strip_citations(answer or "")
        if not clean:
            return self._m(name, None, {}, "empty answer")
        sources = dict(cited) if cited is not None else {i + 1: c for i, c in enumerate(contexts)}
        context = "\n\n".join(f"[{n}] {t.strip()}" for n, t in sources.items() if t and t.strip())
        if not context:
            if cited is not None:
                return self._m(name, 0.0, {"claims": [], "note": "the answer cites no sources"})
            return self._m(name, None, {}, "no source text to check against")
        if self.decompose:
            claims, errors = self._claims(question, clean)
            if claims is None:
                return self._m(name, None, {"errors": errors},
                               f"claim extraction failed after {len(errors)} attempt(s): {errors[-1]}")
        else:
            claims = plain_sentences(clean)[: self.max_claims]
        fitted, cut = self._fit(context)
        rows, failed = _each(claims, lambda c: self._verdict(c, fitted), "claim", "supported")
        details = {"claims": rows, "claims_from": "llm" if self.decompose else "sentences", "context_cut": cut,
                   "unsupported": [r["claim"] for r in rows if r["supported"] is False]}
        if failed:
            return self._m(name, None, details, f"{len(failed)} of {len(rows)} claim verdicts unscored: {failed[0]}")
        return self._m(name, sum(bool(r["supported"]) for r in rows) / len(rows), details)

    def _ask_list(self, messages: list[dict], schema: dict, key: str,
                  empty: str) -> tuple[dict | None, list[str] | None, list[str]]:
        """A call for a list of strings under `key`; a list without a non-blank entry is bad output (`empty` says
        why). Returns the output, its non-blank entries (stripped) and the errors of the attempts."""

        def check(out: dict) -> None:
            if not [x for x in out[key] if x.strip()]:
                raise _BadOutput(empty)

        out, errors = self._ask(messages, schema, max_tokens=self.max_tokens, check=check)
        return out, (None if out is None else [x.strip() for x in out[key] if x.strip()]), errors

    def _claims(self, question: str, answer: str) -> tuple[list[str] | None, list[str]]:
        messages = [
            {"role": "system", "content": "You split an answer into short factual claims."},
            {"role": "user", "content": (
                f"Question: {question}\nAnswer: {answer}\n\nList the factual claims the answer makes, each as one "
                f"short sentence that can be understood without the others. At most {self.max_claims} claims.")},
        ]
        _, claims, errors = self._ask_list(messages, self.claims_schema, "claims",
                                           "no claims extracted from a non-empty answer")
        if claims is None:
            return None, errors
        return list(dict.fromkeys(claims))[: self.max_claims], errors

    def _relevancy(self, question: str, answer: str, abstained: bool) -> MetricScore:
        name = "answer_relevancy"
        if abstained:
            return self._m(name, None, {}, "abstained")
        clean = strip_citations(answer or "")
        if not clean:
            return self._m(name, None, {}, "empty answer")
        if not (question or "").strip():
            return self._m(name, None, {}, "no question")
        messages = [
            {"role": "system", "content": "You write the questions that an answer responds to."},
            {"role": "user", "content": (
                f"Answer: {clean}\n\nWrite {self.n_questions} different questions that this answer answers. Set "
                '"noncommittal" to true if the answer is evasive or vague (for example "I am not sure"), else false.')},
        ]
        out, questions, errors = self._ask_list(messages, self.questions_schema, "questions", "no questions generated")
        if out is None or questions is None:
            return self._m(name, None, {"errors": errors},
                           f"question generation failed after {len(errors)} attempt(s): {errors[-1]}")
        generated = questions[: self.n_questions]
        vecs = np.asarray(self.embedder.encode([question.strip(), *generated]), dtype=np.float32)
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        sims = [float(vecs[0] @ v) for v in vecs[1:]]
        details = {"generated_questions": [{"question": q, "cosine": s} for q, s in zip(generated, sims, strict=True)],
                   "noncommittal": bool(out["noncommittal"]), "n_requested": self.n_questions}
        value = 0.0 if out["noncommittal"] else sum(clip01(s) for s in sims) / len(sims)
        return self._m(name, value, details)

    def _precision(
        self, question: str, answer: str, contexts: list[str], reference: str | None, abstained: bool,
    ) -> MetricScore:
        name = "context_precision"
        if not contexts:
            return self._m(name, None, {}, "no contexts")
        target_kind = "reference" if reference else "answer"
        target = reference if reference else strip_citations(answer or "")
        if not reference and (abstained or not target):
            return self._m(name, None, {}, "needs a reference answer (the answer abstained or is empty)")

        def useful(rank: int) -> tuple[bool | None, list[str]]:
            fitted, _ = self._fit(contexts[rank - 1])
            messages = [
                {"role": "system", "content": "You judge whether a context passage was useful for an answer."},
                {"role": "user", "content": (
                    f"Question: {question}\n{target_kind.capitalize()}: {target}\n\nContext:\n{fitted}\n\n"
                    f'Was this context useful in arriving at the {target_kind}? Answer "yes" or "no".')},
            ]
            out, errors = self._ask(messages, VERDICT_SCHEMA, max_tokens=min(self.max_tokens, 32))
            return (None if out is None else out["verdict"] == "yes"), errors

        rows, failed = _each(range(1, len(contexts) + 1), useful, "rank", "useful")
        details = {"target": target_kind, "contexts": rows}
        if failed:
            return self._m(name, None, details, f"{len(failed)} of {len(rows)} context verdicts unscored: {failed[0]}")
        return self._m(name, precision_at_k([bool(r["useful"]) for r in rows]), details)

    def _recall(self, reference: str | None, contexts: list[str]) -> MetricScore:
        name = "context_recall"
        if not reference or not plain_sentences(reference):
            return self._m(name, None, {}, "needs a reference answer")
        context = "\n\n".join(f"[{i}] {c.strip()}" for i, c in enumerate(contexts, start=1) if c.strip())
        if not context:
            return self._m(name, None, {}, "no contexts")
        fitted, cut = self._fit(context)
        rows, failed = _each(plain_sentences(reference), lambda s: self._verdict(s, fitted), "sentence", "attributed")
        details = {"sentences": rows, "context_cut": cut}
        if failed:
            return self._m(name, None, details, f"{len(failed)} of {len(rows)} sentence verdicts unscored: {failed[0]}")
        return self._m(name, sum(bool(r["attributed"]) for r in rows) / len(rows), details)
