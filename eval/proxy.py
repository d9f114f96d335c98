"""The proxy judge: answer metrics without an LLM, cheap enough to run on every answer.

Per-sentence support of the answer against its cited sources (embedding cosine + content-word recall over the best
source sentence and its neighbours, plus checks for numbers and names the sources do not contain and for a negation
the best-matching source sentence does not share), question/answer similarity, and similarity of each context to
the reference or question. One batched embedding call per `score()`; sentence vectors are cached, so contexts that
come back again cost nothing.

`ProxyScorer.score` depends only on its arguments (question, answer, contexts, cited sources, reference) and the
embedding model: the vector cache only saves work. It imports nothing from the app layer, which calls it for the
scores of each answer.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from localrag.eval.answer_format import cited_sentences, is_abstention, plain_sentences, strip_citations
from localrag.eval.metrics import EmbedderLike, MetricScore, Scores, clip01, precision_at_k, select_metrics
from localrag.index.text import NEGATIONS, content_words, numbers, words

__all__ = ["ProxyScorer"]


def _source_units(text: str) -> list[str]:
    """Source sentences plus the clauses of those joined by ';' or ':' (each of 4+ words), so that a statement
    about one clause of a long sentence is compared with that clause and not diluted by the rest."""
    out: list[str] = []
    for s in plain_sentences(text):
        out.append(s)
        parts = [p.strip() for p in re.split(r";\s+|:\s+", s)]
        if len(parts) > 1:
            out += [p for p in parts if len(p.split()) >= 4]
    return list(dict.fromkeys(out))


def _tokens(text: str) -> list[str]:
    """Stemmed content words and numbers: what lexical support compares."""
    return content_words(text, stemmed=True)


def _numbers(text: str) -> set[str]:
    return numbers(text, spelled=True)


def _names(text: str) -> set[str]:
    """Capitalised words other than a sentence's first word (and all-caps acronyms anywhere), as content tokens."""
    names: set[str] = set()
    found = re.findall(r"[A-Za-z][A-Za-z'’-]*", text)
    for i, w in enumerate(found):
        if (i > 0 and w[0].isupper()) or (len(w) > 1 and w.isupper()):
            names.update(_tokens(w.replace("-", " ")))
    return names


def _has_negation(text: str) -> bool:
    return any(w in NEGATIONS for w in words(text))


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
            vecs = (vecs / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)  # float32 already
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
        src_numbers, src_tokens = _numbers(all_src), set(_tokens(all_src))
        if cand:
            mat = np.stack([vec[s] for _, s in cand])
            cand_tokens = [set(_tokens(s)) for _, s in cand]
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
            toks = _tokens(sent)
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
        sents = plain_sentences(statement) or [statement.strip()]
        return all(r["supported"] for r in self.support(sents, {1: context}))

    def score(
        self, question: str, answer: str, contexts: list[str], cited: dict[int, str] | None = None,
        reference: str | None = None, *, abstained: bool = False, metrics: Iterable[str] | None = None,
    ) -> Scores:
        """All four metrics by the proxy rules. `abstained` (or an answer starting "I don't know") leaves
        faithfulness and relevancy unscored; context metrics are still measured (they describe retrieval)."""
        t0 = time.perf_counter()
        wanted = select_metrics(metrics)
        abstained = abstained or is_abstention(answer)
        contexts = [c or "" for c in contexts]
        sources = dict(cited) if cited is not None else {i + 1: c for i, c in enumerate(contexts)}
        answer_sents = cited_sentences(answer)
        clean_answer = strip_citations(answer or "")
        src_sents = {n: _source_units(t) for n, t in sources.items()}
        ctx_sents = [_source_units(c) for c in contexts]
        ref_sents = plain_sentences(reference) if reference else []
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
                rows: list[dict[str, Any]] = [
                    {"text": s, "cites": c, "supported": False, "reason": "the answer cites no sources"}
                    for s, c in answer_sents
                ]
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
        return MetricScore(name, clip01(cos), self.judge, {"cosine": cos, "method": "cosine(question, answer)"})

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
        rows: list[dict[str, Any]] = []
        for i, sents in enumerate(ctx_sents, start=1):
            if not sents:
                rows.append({"rank": i, "score": 0.0, "relevant": False, "best_sentence": None})
                continue
            sims = np.stack([vec[s] for s in sents]) @ tmat.T
            j = int(np.argmax(sims.max(axis=1)))
            best = float(sims.max())
            rows.append({"rank": i, "score": best, "relevant": best >= self.relevance_threshold,
                         "best_sentence": sents[j]})
        value = precision_at_k([r["relevant"] for r in rows])
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
