"""RAGAS-style answer scores: faithfulness, answer relevancy, context precision@k and context recall.

Two judges return the same `Scores`:

- `ProxyScorer` needs no LLM, so it can run on every answer: per-sentence support of the answer against its
  cited sources (embedding cosine + content-word recall over the best source sentence and its neighbours, plus
  checks for numbers and names the sources do not contain and for a negation the best-matching source sentence does
  not share), question/answer similarity, and
  similarity of each context to the reference or question. One batched embedding call per `score()`; sentence
  vectors are cached, so contexts that come back again cost nothing.
- `LLMJudge` follows the ragas definitions with an LLM whose output is constrained by a JSON schema. A call whose
  output cannot be parsed or does not fit the schema is retried (`retries`), then the metric is reported unscored:
  value None with `unscored_reason`, and counted in `LLMJudge.stats`. A NaN never leaves this module.

Definitions (ragas): faithfulness = supported claims / claims in the answer; answer relevancy = mean cosine between
the question and N questions generated from the answer (0 when the answer is noncommittal); context precision@k =
sum_k(precision@k * v_k) / number of relevant contexts in the top K; context recall = share of reference-answer
sentences attributable to the contexts.

The LLM is any object with ``generate_json(messages, schema, temperature=..., max_tokens=...) -> dict`` and a
``model_id`` (the protocol of app/llm.py, which this module does not import: eval/ sits below app/). Its errors are
`RuntimeError` subclasses (app.llm.LLMError).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = [
    "METRICS", "LLMJudge", "MetricScore", "ProxyScorer", "Scores", "content_tokens", "is_abstention",
    "split_sentences", "strip_citations",
]

log = logging.getLogger(__name__)

METRICS = ("faithfulness", "answer_relevancy", "context_precision", "context_recall")
ABSTAIN_PREFIXES = ("i don't know", "i do not know")


class EmbedderLike(Protocol):
    def encode(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray: ...


class JsonLLM(Protocol):
    model_id: str

    def generate_json(
        self, messages: list[dict], schema: dict, *, temperature: float | None = None, max_tokens: int | None = None,
    ) -> dict: ...


# --- results ---------------------------------------------------------------------------------------------------
@dataclass
class MetricScore:
    """One metric's value in [0, 1], or None with the reason it could not be scored (never NaN)."""

    name: str
    value: float | None
    judge: str
    details: dict = field(default_factory=dict)
    unscored_reason: str | None = None

    def __post_init__(self) -> None:
        if self.value is not None:
            v = float(self.value)
            if not math.isfinite(v):  # a NaN must never pass silently: turn it into an explained None
                log.warning("metric %s got a non-finite value %r from %s: reported unscored", self.name, v, self.judge)
                self.value = None
                self.unscored_reason = self.unscored_reason or f"non-finite value ({v!r})"
                return
            self.value = min(1.0, max(0.0, v))
        elif not self.unscored_reason:
            self.unscored_reason = "unscored"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "judge": self.judge,
                "unscored_reason": self.unscored_reason, "details": _jsonable(self.details)}


@dataclass
class Scores:
    """The metrics of one answer, from one judge, with the wall time they took."""

    metrics: dict[str, MetricScore]
    seconds: float
    judge: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge, "seconds": round(self.seconds, 4),
            "values": {n: m.value for n, m in self.metrics.items()},
            "unscored": {n: m.unscored_reason for n, m in self.metrics.items() if m.value is None},
            "metrics": {n: m.to_dict() for n, m in self.metrics.items()},
        }

    def value(self, name: str) -> float | None:
        """The metric's value; None when it was unscored or not computed (an unknown name is a KeyError)."""
        if name not in METRICS:
            raise KeyError(f"unknown metric {name!r}: one of {', '.join(METRICS)}")
        m = self.metrics.get(name)
        return None if m is None else m.value


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return round(v, 4) if math.isfinite(v) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _select(metrics: Iterable[str] | None) -> tuple[str, ...]:
    if metrics is None:
        return METRICS
    chosen = tuple(dict.fromkeys(metrics))
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}: choose from {', '.join(METRICS)}")
    return chosen


# --- text helpers ----------------------------------------------------------------------------------------------
_CITE = re.compile(r"\[\s*\d+(?:\s*(?:[,;–-]|and)\s*\d+)*\s*\]")
_CITE_AFTER_STOP = re.compile(r"([.!?])((?:\s*\[\s*\d+(?:\s*(?:[,;–-]|and)\s*\d+)*\s*\])+)")
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d{1,2}[.)]|#{1,6})\s+")
_SPLIT = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9£$€])")
_ABBREV = {
    "dr", "mr", "mrs", "ms", "cllr", "cllrs", "st", "no", "nos", "capt", "prof", "e.g", "i.e", "etc", "approx",
    "vs", "fig", "cf", "jr", "sr", "inc", "ltd", "co", "mt", "rev", "gen", "col", "lt", "sgt", "ca", "al",
}


def strip_citations(text: str) -> str:
    """The text without citation markers such as [1] or [2, 3] (they would only add noise to embeddings)."""
    out = _CITE.sub("", text or "")
    out = re.sub(r"[ \t]+([.,;:!?])", r"\1", out)
    return re.sub(r"[ \t]{2,}", " ", out).strip()


def _cite_numbers(text: str) -> list[int]:
    nums: list[int] = []
    for m in _CITE.finditer(text):
        body = m.group(0)[1:-1]
        for part in re.split(r"\s*(?:[,;]|and)\s*", body):
            if re.fullmatch(r"\d+\s*[–-]\s*\d+", part.strip()):
                a, b = (int(x) for x in re.split(r"[–-]", part))
                nums.extend(range(a, b + 1) if 0 < b - a < 50 else (a, b))
            elif part.strip().isdigit():
                nums.append(int(part))
    return sorted(set(nums))


def _blocks(text: str) -> list[str]:
    """Lines joined into paragraphs: hard-wrapped prose (PDF text) is joined, bullets/headings/short lines are not."""
    blocks: list[str] = []
    cur, prev = "", ""
    for raw in text.replace("\r", "\n").split("\n"):
        line = raw.strip()
        if not line:
            if cur:
                blocks.append(cur)
            cur, prev = "", ""
            continue
        starts_new = bool(_BULLET.match(line)) or line.startswith("|")
        wrapped = len(prev) >= 60 and not prev.endswith((".", "!", "?", ":", ";"))
        if cur and wrapped and not starts_new:
            cur = f"{cur} {line}"
        else:
            if cur:
                blocks.append(cur)
            cur = line
        prev = line
    if cur:
        blocks.append(cur)
    return blocks


def _clean_markup(line: str) -> str:
    line = _BULLET.sub("", line)
    line = line.replace("**", "").replace("__", "").replace("*", "")
    if line.startswith("|"):
        line = " ".join(c.strip() for c in line.strip("|").split("|") if c.strip() and not set(c.strip()) <= {"-", ":"})
    return line.strip()


def _split_with_cites(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of `text` with the citation numbers each one carried (markers after a full stop stay with it)."""
    text = _CITE_AFTER_STOP.sub(lambda m: m.group(2) + m.group(1), text or "")
    out: list[tuple[str, list[int]]] = []
    for block in _blocks(text):
        block = _clean_markup(block)
        if not block:
            continue
        parts = _SPLIT.split(block)
        merged: list[str] = []
        for p in parts:
            if merged:
                last = merged[-1].rstrip()
                word = re.split(r"[\s(]", last)[-1].rstrip(".").lower() if last.endswith(".") else ""
                if word in _ABBREV:  # no rule for initials: "Pontoon B." ends sentences more often here
                    merged[-1] = f"{merged[-1]} {p}"
                    continue
            merged.append(p)
        for s in merged:
            clean = strip_citations(s)
            if re.search(r"[A-Za-z0-9]", clean):
                out.append((clean, _cite_numbers(s)))
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer or a source (markdown bullets, tables and hard-wrapped PDF lines handled; citation
    markers removed). A rule-based splitter: good enough for support matching, not a linguistic parser."""
    return [s for s, _ in _split_with_cites(text)]


def _source_units(text: str) -> list[str]:
    """Source sentences plus the clauses of those joined by ';' or ':' (each of 4+ words), so that a statement
    about one clause of a long sentence is compared with that clause and not diluted by the rest."""
    out: list[str] = []
    for s in split_sentences(text):
        out.append(s)
        parts = [p.strip() for p in re.split(r";\s+|:\s+", s)]
        if len(parts) > 1:
            out += [p for p in parts if len(p.split()) >= 4]
    return list(dict.fromkeys(out))


_STOP = set("""
a an the of in on at to for and or nor but if then than so as by from with without into onto over under about
above below after before between during since until while is are was were be been being am do does did done has
have had having will would shall should can could may might must it its it's this that these those there here
their theirs they them he him his she her hers we us our ours you your yours i me my mine who whom whose which what
when where why how also too very just only even such each every all any some both either other another more most
much many few one per via up out off again further once same own s t just yet still already which whereas
""".split())
_NEGATIONS = {"not", "no", "never", "none", "nor", "nothing", "nobody", "neither", "nowhere", "without"}
_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
    "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50",
    "hundred": "100", "thousand": "1000", "dozen": "12",
}
_TOKEN = re.compile(r"[a-z0-9]+(?:[.,'][a-z0-9]+)*")


def _stem(w: str) -> str:
    if any(c.isdigit() for c in w):
        return w
    if w.endswith("'s"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("ies"):
        w = w[:-3] + "y"
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed"):
        w = w[:-2]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    return w


def _norm_number(w: str) -> str:
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", w):
        w = w.replace(",", "")
    return w.rstrip(".,")


def _raw_tokens(text: str) -> list[str]:
    t = (text or "").lower().replace("’", "'").replace("n't", " not").replace("cannot", "can not")
    return [_norm_number(w) for w in _TOKEN.findall(t)]


def content_tokens(text: str) -> list[str]:
    """Lower-cased, lightly stemmed content words and numbers (stopwords, negations and single letters dropped)."""
    out = []
    for w in _raw_tokens(text):
        w = _NUMBER_WORDS.get(w, w)
        if w in _STOP or w in _NEGATIONS or (len(w) == 1 and w.isalpha()):
            continue
        out.append(_stem(w))
    return out


def _numbers(text: str) -> set[str]:
    return {t for t in content_tokens(text) if any(c.isdigit() for c in t)}


def _names(text: str) -> set[str]:
    """Capitalised words other than a sentence's first word (and all-caps acronyms anywhere), as content tokens."""
    names: set[str] = set()
    words = re.findall(r"[A-Za-z][A-Za-z'’-]*", text)
    for i, w in enumerate(words):
        if (i > 0 and w[0].isupper()) or (len(w) > 1 and w.isupper()):
            for tok in content_tokens(w.replace("-", " ")):
                names.add(tok)
    return names


def _has_negation(text: str) -> bool:
    return any(w in _NEGATIONS for w in _raw_tokens(text))


def is_abstention(answer: str) -> bool:
    """True for the app's abstention text ("I don't know ..."), normalised as app/answer.py's is_idk does."""
    t = unicodedata.normalize("NFKC", answer or "").strip().lower().replace("\u2019", "'").lstrip("*_\"' ")
    return t.startswith(ABSTAIN_PREFIXES)


def _clip01(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


# --- the proxy judge -------------------------------------------------------------------------------------------
class ProxyScorer:
    """Scores without an LLM: cheap enough for every answer, and explicit about which sentences lack support.

    A sentence is supported when its best-matching source sentence reaches
    ``(1 - lexical_weight) * cosine + lexical_weight * content_word_recall >= support_threshold``, and it neither
    introduces a number or a name that no source (nor the question) contains nor differs from that source sentence
    in negation. With `window`, content-word recall counts the source sentence's neighbours too (an answer sentence
    often joins two). Sources are split into sentences, plus the clauses of sentences joined by ';' or ':'.
    `relevance_threshold` (context precision) was set from the labelled queries in data/eval/retrieval.jsonl: 0.45
    kept 93 % of question/relevant-passage pairs and 3 % of question/random-passage pairs.
    """

    judge = "proxy"

    def __init__(
        self, embedder: EmbedderLike, *, support_threshold: float = 0.6, lexical_weight: float = 0.5,
        relevance_threshold: float = 0.45, cache_size: int = 8192, window: bool = True,
    ) -> None:
        self.window = window
        if not 0 <= lexical_weight <= 1:
            raise ValueError(f"lexical_weight must be in [0, 1], got {lexical_weight}")
        self.embedder = embedder
        self.support_threshold = float(support_threshold)
        self.lexical_weight = float(lexical_weight)
        self.relevance_threshold = float(relevance_threshold)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.encode_calls = 0

    # -- embeddings: one batched call for whatever the cache lacks
    def _embed(self, texts: Iterable[str]) -> dict[str, np.ndarray]:
        wanted = list(dict.fromkeys(t for t in texts if t))
        with self._lock:
            have = {t: self._cache[t] for t in wanted if t in self._cache}
            for t in have:
                self._cache.move_to_end(t)
        missing = [t for t in wanted if t not in have]
        if missing:
            vecs = np.asarray(self.embedder.encode(missing), dtype=np.float32)
            self.encode_calls += 1
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            vecs = vecs / np.where(norms > 0, norms, 1.0)
            with self._lock:
                for t, v in zip(missing, vecs, strict=True):
                    have[t] = v
                    self._cache[t] = v.copy()  # not a view that would keep the whole batch alive
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return have

    def _support(
        self, sentences: Sequence[str], sources: dict[int, list[str]], source_text: dict[int, str],
        vec: dict[str, np.ndarray], known: str = "",
    ) -> list[dict[str, Any]]:
        """Per-sentence support verdicts against the given sources (their sentences must already be embedded).
        Numbers and names in `known` (the question) count as given: repeating them introduces nothing."""
        cand = [(n, s) for n, sents in sources.items() for s in sents if s in vec]
        all_src = " ".join([*source_text.values(), known])
        src_numbers, src_tokens = _numbers(all_src), set(content_tokens(all_src))
        if cand:
            mat = np.stack([vec[s] for _, s in cand])
            cand_tokens = [set(content_tokens(s)) for _, s in cand]
            if self.window:  # lexical recall over the unit and its neighbours: one answer sentence often joins two
                cand_tokens = [
                    cand_tokens[i].union(*(cand_tokens[j] for j in (i - 1, i + 1)
                                           if 0 <= j < len(cand) and cand[j][0] == cand[i][0]))
                    for i in range(len(cand))
                ]
        out = []
        for sent in sentences:
            row: dict[str, Any] = {"text": sent, "supported": False, "source": None, "match": None,
                                   "cosine": 0.0, "lexical": 0.0, "score": 0.0, "reason": None}
            toks = content_tokens(sent)
            if not cand or sent not in vec:
                row["reason"] = "no source text to compare with"
                out.append(row)
                continue
            cos = mat @ vec[sent]
            if toks:
                lex = np.array([sum(t in ct for t in toks) / len(toks) for ct in cand_tokens], dtype=np.float32)
            else:
                lex = np.zeros(len(cand), dtype=np.float32)
            combined = (1 - self.lexical_weight) * cos + self.lexical_weight * lex
            i = int(np.argmax(combined))
            n, match = cand[i]
            row.update(source=n, match=match, cosine=float(cos[i]), lexical=float(lex[i]),
                       score=float(combined[i]))
            missing_nums = sorted(_numbers(sent) - src_numbers)
            missing_names = sorted(_names(sent) - src_tokens)
            reasons = []
            if row["score"] < self.support_threshold:
                reasons.append(f"best match scores {row['score']:.2f} < {self.support_threshold:.2f}")
            if missing_nums:
                reasons.append("numbers not in the sources: " + ", ".join(missing_nums))
            if missing_names:
                reasons.append("names not in the sources: " + ", ".join(missing_names))
            if _has_negation(sent) != _has_negation(match):
                reasons.append("negation differs from the best-matching source sentence")
            row["supported"] = not reasons
            row["reason"] = "; ".join(reasons) or None
            out.append(row)
        return out

    def support(self, sentences: Sequence[str], sources: dict[int, str]) -> list[dict[str, Any]]:
        """Support of each sentence against numbered source texts (one embedding call); used by judge_eval too."""
        src_sents = {n: _source_units(t) for n, t in sources.items()}
        vec = self._embed([*sentences, *(s for ss in src_sents.values() for s in ss)])
        return self._support(list(sentences), src_sents, dict(sources), vec)

    def judge_statement(self, statement: str, context: str) -> bool:
        """Whether the statement is supported by the context, by the same rule as answer sentences."""
        sents = split_sentences(statement) or [statement.strip()]
        return all(r["supported"] for r in self.support(sents, {1: context}))

    def score(
        self, question: str, answer: str, contexts: list[str], cited: dict[int, str] | None = None,
        reference: str | None = None, *, abstained: bool = False, metrics: Iterable[str] | None = None,
    ) -> Scores:
        """All four metrics by the proxy rules. `abstained` (or an answer starting "I don't know") leaves
        faithfulness and relevancy unscored; context metrics are still measured (they describe retrieval)."""
        t0 = time.perf_counter()
        wanted = _select(metrics)
        abstained = abstained or is_abstention(answer)
        contexts = [c or "" for c in contexts]
        sources = dict(cited) if cited is not None else {i + 1: c for i, c in enumerate(contexts)}
        answer_sents = _split_with_cites(answer or "")
        clean_answer = strip_citations(answer or "")
        src_sents = {n: _source_units(t) for n, t in sources.items()}
        ctx_sents = [_source_units(c) for c in contexts]
        ref_sents = split_sentences(reference) if reference else []
        q = (question or "").strip()

        texts: list[str] = []
        if "answer_relevancy" in wanted and not abstained:
            texts += [q, clean_answer]
        if "faithfulness" in wanted and not abstained:
            texts += [s for s, _ in answer_sents] + [s for ss in src_sents.values() for s in ss]
        if "context_precision" in wanted:
            texts += ref_sents or [q]
        if {"context_precision", "context_recall"} & set(wanted):
            texts += [s for ss in ctx_sents for s in ss]
        if "context_recall" in wanted:
            texts += ref_sents
        vec = self._embed(texts)

        out: dict[str, MetricScore] = {}
        for name in wanted:
            if name == "faithfulness":
                out[name] = self._faithfulness(answer_sents, sources, src_sents, vec, abstained, cited is not None, q)
            elif name == "answer_relevancy":
                out[name] = self._relevancy(q, clean_answer, vec, abstained)
            elif name == "context_precision":
                out[name] = self._precision(q, reference, ref_sents, ctx_sents, vec)
            else:
                out[name] = self._recall(reference, ref_sents, contexts, ctx_sents, vec)
        return Scores(out, time.perf_counter() - t0, self.judge)

    def _faithfulness(
        self, answer_sents: list[tuple[str, list[int]]], sources: dict[int, str], src_sents: dict[int, list[str]],
        vec: dict[str, np.ndarray], abstained: bool, cited_given: bool, question: str = "",
    ) -> MetricScore:
        name = "faithfulness"
        if abstained:
            return MetricScore(name, None, self.judge, {}, "abstained")
        if not answer_sents:
            return MetricScore(name, None, self.judge, {}, "empty answer")
        against = "cited sources" if cited_given else "all contexts"
        if not any(src_sents.values()):
            if cited_given and not sources:  # a claim with no cited source is not supported by a cited source
                rows = [{"text": s, "cites": c, "supported": False, "reason": "the answer cites no sources"}
                        for s, c in answer_sents]
                return MetricScore(name, 0.0, self.judge, {"against": against, "sentences": rows,
                                                           "unsupported": [r["text"] for r in rows]})
            return MetricScore(name, None, self.judge, {"against": against}, "no source text to check against")
        rows = self._support([s for s, _ in answer_sents], src_sents, sources, vec, question)
        for r, (_, cites) in zip(rows, answer_sents, strict=True):
            r["cites"] = cites
        n_ok = sum(r["supported"] for r in rows)
        details = {"against": against, "n_sentences": len(rows), "n_supported": n_ok,
                   "unsupported": [r["text"] for r in rows if not r["supported"]], "sentences": rows,
                   "threshold": self.support_threshold}
        return MetricScore(name, n_ok / len(rows), self.judge, details)

    def _relevancy(self, q: str, answer: str, vec: dict[str, np.ndarray], abstained: bool) -> MetricScore:
        name = "answer_relevancy"
        if abstained:
            return MetricScore(name, None, self.judge, {}, "abstained")
        if not q:
            return MetricScore(name, None, self.judge, {}, "no question")
        if not answer:
            return MetricScore(name, None, self.judge, {}, "empty answer")
        cos = float(vec[q] @ vec[answer])
        return MetricScore(name, _clip01(cos), self.judge, {"cosine": cos, "method": "cosine(question, answer)"})

    def _precision(
        self, q: str, reference: str | None, ref_sents: list[str], ctx_sents: list[list[str]],
        vec: dict[str, np.ndarray],
    ) -> MetricScore:
        name = "context_precision"
        if not ctx_sents:
            return MetricScore(name, None, self.judge, {}, "no contexts")
        targets = ref_sents if reference and ref_sents else ([q] if q else [])
        if not targets:
            return MetricScore(name, None, self.judge, {}, "needs a reference answer or a question")
        tmat = np.stack([vec[t] for t in targets])
        rows = []
        for i, sents in enumerate(ctx_sents, start=1):
            if not sents:
                rows.append({"rank": i, "score": 0.0, "relevant": False, "best_sentence": None})
                continue
            sims = np.stack([vec[s] for s in sents]) @ tmat.T
            j = int(np.argmax(sims.max(axis=1)))
            best = float(sims.max())
            rows.append({"rank": i, "score": best, "relevant": best >= self.relevance_threshold,
                         "best_sentence": sents[j]})
        value = _precision_at_k([r["relevant"] for r in rows])
        details = {"target": "reference" if targets is ref_sents else "question", "contexts": rows,
                   "threshold": self.relevance_threshold}
        return MetricScore(name, value, self.judge, details)

    def _recall(
        self, reference: str | None, ref_sents: list[str], contexts: list[str], ctx_sents: list[list[str]],
        vec: dict[str, np.ndarray],
    ) -> MetricScore:
        name = "context_recall"
        if not reference or not ref_sents:
            return MetricScore(name, None, self.judge, {}, "needs a reference answer")
        if not any(ctx_sents):
            return MetricScore(name, None, self.judge, {}, "no contexts")
        srcs = {i + 1: s for i, s in enumerate(ctx_sents)}
        rows = self._support(ref_sents, srcs, {i + 1: c for i, c in enumerate(contexts)}, vec)
        n_ok = sum(r["supported"] for r in rows)
        details = {"n_sentences": len(rows), "n_attributed": n_ok, "sentences": rows,
                   "not_attributed": [r["text"] for r in rows if not r["supported"]]}
        return MetricScore(name, n_ok / len(rows), self.judge, details)


def _precision_at_k(relevant: Sequence[bool]) -> float:
    """ragas context precision: mean of precision@k over the ranks k that hold a relevant item (0 when none)."""
    hits, total = 0, 0.0
    for k, rel in enumerate(relevant, start=1):
        if rel:
            hits += 1
            total += hits / k
    return total / hits if hits else 0.0


# --- the LLM judge ---------------------------------------------------------------------------------------------
class _BadOutput(ValueError):
    """The model's JSON parsed but does not fit the schema or the task (e.g. no questions at all)."""


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "number": (int, float), "integer": (int,),
    "boolean": (bool,), "null": (type(None),),
}


def _schema_problems(value: Any, schema: dict, where: str = "$") -> list[str]:
    """A small check of type/required/properties/items/enum: backends and fakes may ignore the schema."""
    t = schema.get("type")
    if t is not None:
        allowed = [t] if isinstance(t, str) else list(t)
        if not any(isinstance(value, _JSON_TYPES.get(a, (object,)))
                   and not (a in ("number", "integer") and isinstance(value, bool)) for a in allowed):
            return [f"{where}: expected {'/'.join(allowed)}, got {type(value).__name__}"]
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if isinstance(value, dict):
        problems += [f"{where}: missing {k!r}" for k in schema.get("required", []) if k not in value]
        for k, sub in (schema.get("properties") or {}).items():
            if k in value:
                problems += _schema_problems(value[k], sub, f"{where}.{k}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems += _schema_problems(item, schema["items"], f"{where}[{i}]")
    return problems


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
                problems = _schema_problems(out, schema)
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
        wanted = _select(metrics)
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
            claims = split_sentences(clean)[: self.max_claims]
        fitted, cut = self._fit(context)
        rows, failed = [], []
        for c in claims:
            v, errors = self._verdict(c, fitted)
            rows.append({"claim": c, "supported": v, "error": errors[-1] if v is None and errors else None})
            if v is None:
                failed.append(errors[-1] if errors else "unscored")
        details = {"claims": rows, "claims_from": "llm" if self.decompose else "sentences", "context_cut": cut,
                   "unsupported": [r["claim"] for r in rows if r["supported"] is False]}
        if failed:
            return self._m(name, None, details, f"{len(failed)} of {len(rows)} claim verdicts unscored: {failed[0]}")
        return self._m(name, sum(bool(r["supported"]) for r in rows) / len(rows), details)

    def _claims(self, question: str, answer: str) -> tuple[list[str] | None, list[str]]:
        def check(out: dict) -> None:
            if not [c for c in out["claims"] if c.strip()]:
                raise _BadOutput("no claims extracted from a non-empty answer")

        messages = [
            {"role": "system", "content": "You split an answer into short factual claims."},
            {"role": "user", "content": (
                f"Question: {question}\nAnswer: {answer}\n\nList the factual claims the answer makes, each as one "
                f"short sentence that can be understood without the others. At most {self.max_claims} claims.")},
        ]
        out, errors = self._ask(messages, self.claims_schema, max_tokens=self.max_tokens, check=check)
        if out is None:
            return None, errors
        claims = list(dict.fromkeys(c.strip() for c in out["claims"] if c.strip()))
        return claims[: self.max_claims], errors

    def _relevancy(self, question: str, answer: str, abstained: bool) -> MetricScore:
        name = "answer_relevancy"
        if abstained:
            return self._m(name, None, {}, "abstained")
        clean = strip_citations(answer or "")
        if not clean:
            return self._m(name, None, {}, "empty answer")
        if not (question or "").strip():
            return self._m(name, None, {}, "no question")

        def check(out: dict) -> None:
            if not [q for q in out["questions"] if q.strip()]:
                raise _BadOutput("no questions generated")

        messages = [
            {"role": "system", "content": "You write the questions that an answer responds to."},
            {"role": "user", "content": (
                f"Answer: {clean}\n\nWrite {self.n_questions} different questions that this answer answers. Set "
                '"noncommittal" to true if the answer is evasive or vague (for example "I am not sure"), else false.')},
        ]
        out, errors = self._ask(messages, self.questions_schema, max_tokens=self.max_tokens, check=check)
        if out is None:
            return self._m(name, None, {"errors": errors},
                           f"question generation failed after {len(errors)} attempt(s): {errors[-1]}")
        generated = [q.strip() for q in out["questions"] if q.strip()][: self.n_questions]
        vecs = np.asarray(self.embedder.encode([question.strip(), *generated]), dtype=np.float32)
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        sims = [float(vecs[0] @ v) for v in vecs[1:]]
        details = {"generated_questions": [{"question": q, "cosine": s} for q, s in zip(generated, sims, strict=True)],
                   "noncommittal": bool(out["noncommittal"]), "n_requested": self.n_questions}
        value = 0.0 if out["noncommittal"] else sum(_clip01(s) for s in sims) / len(sims)
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
        rows, failed = [], []
        for i, ctx in enumerate(contexts, start=1):
            fitted, _ = self._fit(ctx)
            messages = [
                {"role": "system", "content": "You judge whether a context passage was useful for an answer."},
                {"role": "user", "content": (
                    f"Question: {question}\n{target_kind.capitalize()}: {target}\n\nContext:\n{fitted}\n\n"
                    f'Was this context useful in arriving at the {target_kind}? Answer "yes" or "no".')},
            ]
            out, errors = self._ask(messages, VERDICT_SCHEMA, max_tokens=min(self.max_tokens, 32))
            v = None if out is None else out["verdict"] == "yes"
            rows.append({"rank": i, "useful": v, "error": errors[-1] if v is None and errors else None})
            if v is None:
                failed.append(errors[-1] if errors else "unscored")
        details = {"target": target_kind, "contexts": rows}
        if failed:
            return self._m(name, None, details, f"{len(failed)} of {len(rows)} context verdicts unscored: {failed[0]}")
        return self._m(name, _precision_at_k([bool(r["useful"]) for r in rows]), details)

    def _recall(self, reference: str | None, contexts: list[str]) -> MetricScore:
        name = "context_recall"
        if not reference or not split_sentences(reference):
            return self._m(name, None, {}, "needs a reference answer")
        context = "\n\n".join(f"[{i}] {c.strip()}" for i, c in enumerate(contexts, start=1) if c.strip())
        if not context:
            return self._m(name, None, {}, "no contexts")
        fitted, cut = self._fit(context)
        rows, failed = [], []
        for s in split_sentences(reference):
            v, errors = self._verdict(s, fitted)
            rows.append({"sentence": s, "attributed": v, "error": errors[-1] if v is None and errors else None})
            if v is None:
                failed.append(errors[-1] if errors else "unscored")
        details = {"sentences": rows, "context_cut": cut}
        if failed:
            return self._m(name, None, details, f"{len(failed)} of {len(rows)} sentence verdicts unscored: {failed[0]}")
        return self._m(name, sum(bool(r["attributed"]) for r in rows) / len(rows), details)
