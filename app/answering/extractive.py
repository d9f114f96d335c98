"""Extractive answers: the answer is the supporting sentence(s) of the retrieved sources, copied verbatim and cited
with the [n] of the source they come from. No free text and no LLM: a question gets one or two source sentences,
or the standard "I don't know" when no sentence supports an answer well enough.

Candidates are the sentences of the numbered sources (`Source`, as `assemble_context` builds them; sentences by
index.text.sentence_spans, list items flattened into one line split apart, questions, removed instructions,
headings and other pieces under `min_words` left out). Each is scored against the question:

* **dense**: cosine between the question's and the sentence's MiniLM embeddings (one `encode` call per question for
  all sentences not in the optional cache);
* **lexical**: the BM25-IDF-weighted share of the question's topic terms (stemmed content words, question-frame
  words such as "year" or "many" left out) that the sentence holds, IDF over the candidates; a term that no
  candidate holds keeps its weight, so a question about something the sources never mention cannot reach full
  coverage. `context` > 0 also credits the sentence before (its terms and its embedding);
* **cue**: the share of what the question asks for (`question_cues`: a year or date for "when"/"what year", a number
  for "how many/much/long/...", a name for "who"/"where"/"which company") that the sentence holds and the question
  does not already say;
* **new**: the sentence says something the question does not (3+ new terms or numbers = 1), against headings and
  labels that only repeat the question;
* **rank**: the relevance of the source the sentence comes from, relative to the best source;
* **graph**: 1 for a knowledge-graph source (facts verbalised from triples, not prose), subtracted.

`score = w_dense·dense + w_lexical·lexical + w_cue·cue + w_new·new + w_rank·rank − w_graph·graph`. The best
sentence is the answer; with `max_sentences` 2 a second one is added when the question asks for two things
("Who ... and when ...?"), the first holds only one of them and another sentence within `second_margin` holds the
other. A chosen sentence that starts with a pronoun ("It is refreshed at 1:5:5 ...") is quoted together with the
sentence before it; a knowledge-graph sentence that does not name its node is shown after the node's label. The
answer abstains when the best score is below `threshold` (or its coverage below `min_coverage`, off by default).
The defaults were tuned on the dev halves of data/eval/qa.jsonl and data/eval/qa_articles.jsonl with
`python -m bench.answer_modes --tune` (see that module and data/eval/README.md).

`extract_answer` is a pure function of (question, sources, embedder, params); `to_outcome` turns its result into the
`Outcome`/`Citation` types the rest of the application uses. `ExtractiveResult.ranked` lists the top candidates with
their scores, for a model that chooses among numbered sentences instead of writing.
"""


from __future__ import annotations

import math
import re
import time
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from localrag.app.answering.answer import AbstainKind, Outcome
from localrag.app.answering.citations import Citation
from localrag.app.answering.sources import REMOVED_MARK, Source, restore_fences
from localrag.eval.answer_format import IDK
from localrag.index.text import content_words, numbers, sentence_spans, stem

__all__ = [
    "EXTRACTIVE_MODEL_ID", "ExtractiveParams", "ExtractiveResult", "ExtractedSentence", "candidate_sentences",
    "extract_answer", "format_sentence", "question_cues", "to_outcome",
]

EXTRACTIVE_MODEL_ID = "extractive"


class EncoderLike(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class ExtractiveParams:
    """Weights and thresholds of the sentence score (defaults: tuned on the dev halves, see the module docstring)."""

    w_dense: float = 0.7
    w_lexical: float = 0.5
    w_cue: float = 0.3
    w_new: float = 0.2
    w_rank: float = 0.1
    w_graph: float = 0.1  # taken off sentences of knowledge-graph sources (facts verbalised from triples, not prose)
    context: float = 0.0  # share of the dense and lexical scores that may come from the sentence before
    threshold: float = 1.194  # abstain when the best sentence scores below this
    min_coverage: float = 0.0  # abstain when the best sentence (with context) holds less of the question's terms
    max_sentences: int = 2  # 2: a second sentence for a two-part question that the first answers only in part
    second_margin: float = 0.25  # a second sentence must score at least best - margin
    min_words: int = 3  # shorter pieces (headings, stray lines) are not candidates
    max_chars: int = 400  # longer pieces are not candidates (code, run-on text)
    resolve_anaphora: bool = True  # a chosen sentence starting with 'It'/'She'/... is quoted with the one before
    keep_ranked: int = 8  # how many top candidates the result lists (for a model choosing among them)

    def with_(self, **kw: Any) -> ExtractiveParams:
        return replace(self, **kw)


@dataclass
class ExtractedSentence:
    """One chosen sentence: `text` is a verbatim piece of the source's text (whitespace collapsed)."""

    n: int  # the source number it is cited with
    text: str
    start: int  # character offsets in Source.text
    end: int
    score: float
    parts: dict[str, float] = field(default_factory=dict)  # dense, lexical, coverage, cue, rank
    subject: str = ""  # the knowledge-graph node's label, shown before a sentence that does not name it


@dataclass
class ExtractiveResult:
    question: str
    text: str  # the answer with [n] markers, or IDK
    sentences: list[ExtractedSentence]  # the chosen sentences (empty when abstained)
    score: float  # the best sentence's score (0.0 when there were no candidates)
    abstained: bool
    reason: str | None  # why it abstained
    best: ExtractedSentence | None = None  # the best candidate, also when it was not good enough
    ranked: list[ExtractedSentence] = field(default_factory=list)  # the top candidates, best first
    candidates: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def citations(self, sources: Sequence[Source]) -> list[Citation]:
        """One Citation per cited source, its quote the chosen sentence from that source."""
        by_n = {s.n: s for s in sources}
        out: dict[int, Citation] = {}
        for sent in self.sentences:
            s = by_n[sent.n]
            if sent.n not in out:
                out[sent.n] = Citation.of(s, sent.text)
        return [out[n] for n in sorted(out)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text, "abstained": self.abstained, "reason": self.reason, "score": round(self.score, 4),
            "candidates": self.candidates,
            "sentences": [{"n": s.n, "text": s.text, "score": round(s.score, 4),
                           "parts": {k: round(v, 4) for k, v in s.parts.items()}} for s in self.sentences],
        }


# --- candidates --------------------------------------------------------------------------------------------------
_LEAD = re.compile(r"^(?:[#>*\-•|]+\s*|\d{1,2}[.)]\s+)+")  # markdown heading / quote / bullet / list markers
# list items and headings that the loaders flattened into one line: "... stay. - Harbour Master: ... ### Findings"
_INLINE_BREAK = re.compile(r"\s+[-•]\s+(?=\S)|\s+#{1,6}\s+")


@dataclass
class _Cand:
    n: int
    start: int
    end: int
    text: str
    prev: str  # the sentence before it in the same source ("" for the first)
    subject: str = ""  # a knowledge-graph node's label when the sentence does not name it
    prev_start: int | None = None  # where the sentence before starts (in the same source)


def _pieces(text: str) -> list[tuple[int, int]]:
    """(start, end) of the sentences of `text` (index.text.sentence_spans), with list items and headings that
    the loaders flattened into one line ("... - Harbour Master: ... - Deputy ...") split off."""
    spans: list[tuple[int, int]] = []
    for a, b in sentence_spans(text):
        for m in _INLINE_BREAK.finditer(text, a, b):
            spans.append((a, m.start()))
            a = m.end()
        spans.append((a, b))
    return [(a, b) for a, b in spans if b > a]


def candidate_sentences(sources: Sequence[Source], params: ExtractiveParams | None = None) -> list[_Cand]:
    """The sentences of the sources that may be quoted, each located in its source's text (so the quote is a
    verbatim piece of it): list markers at the start are left out, removed instructions and the '…' that marks a
    shortened source are never part of one."""
    p = params or ExtractiveParams()
    out: list[_Cand] = []
    for s in sources:
        text = s.text
        prev, prev_start = "", None
        for a, b in _pieces(text):
            piece = text[a:b]
            if REMOVED_MARK in piece:
                prev, prev_start = "", None
                continue
            lead = _LEAD.match(piece)
            start = a + (lead.end() if lead else 0)
            body = text[start:b]
            if s.truncated and b >= len(text.rstrip()) and body.endswith("…"):
                body = body[:-1].rstrip()
            end = start + len(body)
            clean = " ".join(body.split())
            words = len(re.findall(r"\w+", clean))
            if clean.endswith("?"):  # a question in a document does not answer one
                prev, prev_start = clean, start
                continue
            if words >= p.min_words and len(clean) <= p.max_chars and re.search(r"[A-Za-z]", clean):
                subject = ""
                if s.kind == "rdf" and s.label and s.label.lower() not in clean.lower():
                    subject = s.label
                out.append(_Cand(n=s.n, start=start, end=end, text=clean, prev=prev or subject, subject=subject,
                                 prev_start=prev_start if prev else None))
            prev, prev_start = clean, start
    return out


# --- question cues -----------------------------------------------------------------------------------------------
_FRAME = frozenset(
    "year years date day time many much number name called long far large big tall high old deep wide shallow "
    "often kind type sort".split()
)  # question-frame words: they say what kind of answer is wanted, they are not the topic
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
_YEAR = re.compile(r"\b(1[5-9]\d\d|20\d\d)s?\b")
_DATE = re.compile(rf"\b{_MONTH}\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}\b")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'’\-]+(?:\s+[A-Z][\w'’\-]+)*")
_CUES = {
    "time": re.compile(r"\bwhen\b|\b(?:what|which)\s+(?:year|date|day|month|decade|century)\b"),
    "number": re.compile(
        r"\bhow\s+(?:many|much|long|far|large|big|tall|high|old|deep|wide|shallow|fast|often|heavy)\b"
        r"|\b(?:what|which)\s+(?:\w+\s+)?(?:percentage|percent|share|proportions?|ratio|price|cost|speed|frequency|size|"
        r"number|amount|depth|height|length|limit|rate|channel|temperature|scale|count)\b"
        r"|\b(?:largest|smallest|highest|lowest|maximum|minimum)\s+(?:number|count|amount)\b"),
    "name": re.compile(r"^\s*(?:who|whom|whose)\b|\bwho\b|\bwhere\b|\b(?:which|what)\s+(?:company|person|engineer|"
                       r"organisation|organization|university|yard|firm|lab|team|researchers?|model|tool)\b"),
}
_ANAPHOR = re.compile(r"^(?:it|its|it's|she|he|her|his|they|their|them|this|these|those|there)\b", re.IGNORECASE)


def question_cues(question: str) -> list[str]:
    """What kinds of answer the question wants, in a fixed order: 'time' (when, what year/date), 'number' (how
    many/much/long..., what percentage/price/speed...), 'name' (who, where, which company/person...). A question
    such as 'Who ... and when ...?' wants two."""
    q = question.strip().lower()
    return [cue for cue, rx in _CUES.items() if rx.search(q)]


def _cue_holds(cue: str, sentence: str, question: str) -> bool:
    """The sentence holds what the cue asks for, and the question does not already say it."""
    if cue == "time":
        found = {m.group(0) for m in _YEAR.finditer(sentence)} | {m.group(0) for m in _DATE.finditer(sentence)}
        return any(f not in question for f in found)
    if cue == "number":
        return bool(numbers(sentence) - numbers(question))
    q_words = {w.lower() for w in re.findall(r"\w+", question)}
    names = [w for m in _NAME.finditer(sentence) for w in re.findall(r"\w+", m.group(0))]
    return any(w.lower() not in q_words for w in names)


# --- scoring -----------------------------------------------------------------------------------------------------
def _terms(text: str) -> set[str]:
    return set(content_words(text, stemmed=True))


def extract_answer(
    question: str, sources: Sequence[Source], embedder: EncoderLike, *, params: ExtractiveParams | None = None,
    cache: MutableMapping[str, np.ndarray] | None = None,
) -> ExtractiveResult:
    """The extractive answer to `question` from numbered `sources`: the best supporting sentence(s), verbatim and
    cited, or IDK with the reason. `embedder.encode(texts)` must return L2-normalised vectors (localrag's Embedder
    does). `cache` (optional) maps a text to its vector, so that sentences seen before are not encoded again."""
    p = params or ExtractiveParams()
    t0 = time.perf_counter()
    cands = candidate_sentences(sources, p)
    res = ExtractiveResult(question=question, text=IDK, sentences=[], score=0.0, abstained=True, reason=None,
                           candidates=len(cands))
    if not cands:
        res.reason = "extractive: the sources hold no sentence to quote"
        res.timings = {"extract": time.perf_counter() - t0}
        return res
    dense = _dense_scores(question, cands, embedder, p, cache, res.timings)
    scored = _score_candidates(question, cands, sources, dense, p)
    pick = _Picker(question, cands, scored, {s.n: s for s in sources}, p)
    best = pick.chosen(0)
    res.best, res.score = best, best.score
    res.ranked = [pick.chosen(k) for k in range(min(p.keep_ranked, len(scored)))]
    res.timings["extract"] = time.perf_counter() - t0
    if best.score < p.threshold:
        res.reason = (f"extractive: no sentence supports an answer well enough (best score {best.score:.2f} < "
                      f"{p.threshold:.2f})")
        return res
    if best.parts["coverage"] < p.min_coverage:
        res.reason = (f"extractive: the best sentence covers too little of the question ({best.parts['coverage']:.2f}"
                      f" < {p.min_coverage:.2f})")
        return res
    picks = [best] + pick.second(best)
    picks.sort(key=lambda s: (s.n, s.start))  # in reading order
    res.sentences = picks
    res.text = " ".join(format_sentence(s) for s in picks)
    res.abstained, res.reason = False, None
    res.timings["extract"] = time.perf_counter() - t0
    return res


def _dense_scores(question: str, cands: Sequence[_Cand], embedder: EncoderLike, p: ExtractiveParams,
                  cache: MutableMapping[str, np.ndarray] | None, timings: dict[str, float]) -> np.ndarray:
    """Cosine of each candidate (with `p.context` of the sentence before) to the question: one encode call for the
    question and every sentence not cached."""
    texts = [c.text for c in cands]
    prevs = [c.prev if p.context > 0 else "" for c in cands]  # the sentence before only counts with context > 0
    todo = [t for t in dict.fromkeys([question, *texts, *(x for x in prevs if x)])
            if cache is None or t not in cache]
    t_enc = time.perf_counter()
    fresh = dict(zip(todo, np.asarray(embedder.encode(todo), dtype=np.float32), strict=True)) if todo else {}
    timings["encode"] = time.perf_counter() - t_enc
    if cache is not None:
        cache.update(fresh)

    def vec(t: str) -> np.ndarray:
        return fresh[t] if t in fresh else cache[t]  # type: ignore[index]

    qv = vec(question)
    own = np.stack([vec(t) for t in texts])
    dense: np.ndarray = own @ qv
    if p.context > 0:
        ctx = own + np.stack([vec(x) if x else np.zeros_like(qv) for x in prevs])
        ctx /= np.maximum(np.linalg.norm(ctx, axis=1, keepdims=True), 1e-9)
        dense = (1 - p.context) * dense + p.context * (ctx @ qv)
    return dense


_Scored = list[tuple[float, int, dict[str, float]]]


def _score_candidates(question: str, cands: Sequence[_Cand], sources: Sequence[Source], dense: np.ndarray,
                      p: ExtractiveParams) -> _Scored:
    """(score, candidate index, parts) best first: dense, lexical coverage (BM25-IDF-weighted over the candidates;
    a term no candidate holds keeps its weight), cue, new, rank and graph (see the module docstring)."""
    q_all = _terms(question)
    q_terms = (q_all - {stem(w) for w in _FRAME}) or q_all
    sent_terms = [_terms(c.text) | (_terms(c.subject) if c.subject else set()) for c in cands]
    prev_terms = [_terms(c.prev) if c.prev else set() for c in cands]
    n_docs = len(cands)
    df = {t: sum(t in st for st in sent_terms) for t in q_terms}
    idf = {t: math.log(1 + (n_docs - df[t] + 0.5) / (df[t] + 0.5)) for t in q_terms}
    total = sum(idf.values()) or 1.0

    def cover(terms: set[str]) -> float:
        return sum(idf[t] for t in q_terms & terms) / total

    best_rel = max((s.relevance for s in sources), default=0.0) or 1.0
    rel_by_n = {s.n: max(0.0, s.relevance) / best_rel for s in sources}
    kind_by_n = {s.n: s.kind for s in sources}
    cues = question_cues(question)
    q_nums = numbers(question)
    scored: _Scored = []
    for i, c in enumerate(cands):
        shown = f"{c.subject} {c.text}" if c.subject else c.text
        with_ctx = cover(sent_terms[i] | prev_terms[i])
        new_terms = len(sent_terms[i] - q_all) + len(numbers(c.text) - q_nums)
        parts = {
            "dense": float(dense[i]),
            "lexical": (1 - p.context) * cover(sent_terms[i]) + p.context * with_ctx,
            "coverage": with_ctx,
            "cue": (sum(_cue_holds(cue, shown, question) for cue in cues) / len(cues)) if cues else 1.0,
            "new": min(1.0, new_terms / 3),
            "rank": rel_by_n.get(c.n, 0.0),
            "graph": 1.0 if kind_by_n.get(c.n) == "rdf" else 0.0,
        }
        score = (p.w_dense * parts["dense"] + p.w_lexical * parts["lexical"] + p.w_cue * parts["cue"]
                 + p.w_new * parts["new"] + p.w_rank * parts["rank"] - p.w_graph * parts["graph"])
        scored.append((score, i, parts))
    scored.sort(key=lambda x: (-x[0], x[1]))
    return scored


@dataclass
class _Picker:
    """Turns ranked candidates into quoted sentences: the k-th best (with the sentence before when it starts with a
    pronoun), and the second sentence of a two-part question."""

    question: str
    cands: Sequence[_Cand]
    scored: _Scored
    by_source: dict[int, Source]
    p: ExtractiveParams

    def chosen(self, k: int, resolve: bool = True) -> ExtractedSentence:
        score, i, parts = self.scored[k]
        c = self.cands[i]
        start, text = c.start, c.text
        if resolve and self.p.resolve_anaphora and c.prev_start is not None and _ANAPHOR.match(c.text):
            # 'It is refreshed at 1:5:5 ...': quote the sentence before too, so that the answer says what 'it' is
            start = c.prev_start
            text = " ".join(self.by_source[c.n].text[start:c.end].split())
        return ExtractedSentence(n=c.n, text=text, start=start, end=c.end, score=score, parts=parts,
                                 subject=c.subject)

    def second(self, best: ExtractedSentence) -> list[ExtractedSentence]:
        """A two-part question ('Who ... and when ...?') whose best sentence answers one part: the best-scoring
        sentence within `second_margin` that holds what the first lacks ([] when none, or not wanted)."""
        q = self.question
        missing = [cue for cue in question_cues(q) if not _cue_holds(cue, f"{best.subject} {best.text}", q)]
        if self.p.max_sentences <= 1 or not missing:
            return []
        for k in range(1, len(self.scored)):
            if self.scored[k][0] < best.score - self.p.second_margin:
                break
            cand = self.chosen(k)
            if cand.n == best.n and cand.start < best.end and best.start < cand.end:
                cand = self.chosen(k, resolve=False)  # 'She served from 1961' right after the sentence naming her
                if cand.start < best.end and best.start < cand.end:
                    continue  # overlaps the first
            if any(_cue_holds(cue, f"{cand.subject} {cand.text}", q) for cue in missing):
                return [cand]
        return []


def format_sentence(s: ExtractedSentence) -> str:
    """'The light was first shown in 1867 [2].': the sentence as the answer shows it (markdown emphasis markers
    dropped, a knowledge-graph node's label before a sentence that does not name it), the marker before its closing
    punctuation."""
    body = restore_fences(re.sub(r"\*\*|__|(?<!\w)\*(?=\S)|(?<=\S)\*(?!\w)", "", s.text).rstrip())
    if s.subject:
        body = f"{s.subject}: {body}"
    m = re.search(r"[.!?…:;,]+[\"'’”)\]]*$", body)
    if m:
        return f"{body[:m.start()].rstrip()} [{s.n}]{body[m.start():]}"
    return f"{body} [{s.n}]."


def to_outcome(sources: Sequence[Source], result: ExtractiveResult, mode: str = "extractive") -> Outcome:
    """The extractive result as the body of an answer (citations quote the chosen sentences; model_id
    'extractive')."""
    timings = dict(result.timings)
    if result.abstained:
        out = Outcome.abstain(AbstainKind.NO_SUPPORT, result.reason or "extractive: no supporting sentence",
                              sources=list(sources), model_id=EXTRACTIVE_MODEL_ID, mode=mode, timings=timings,
                              support=result.score)
    else:
        out = Outcome(text=result.text, sources=list(sources), citations=result.citations(sources),
                      model_id=EXTRACTIVE_MODEL_ID, mode=mode, timings=timings, support=result.score,
                      warnings=[QUOTE_NOTE])
    out.alternatives = alternatives(sources, result, mode)
    return out


QUOTE_NOTE = "extractive answer: sentences quoted from the sources, not written by a model"


def alternatives(sources: Sequence[Source], result: ExtractiveResult, mode: str) -> list[Outcome]:
    """The ranked candidates that the answer does not already quote, best first, each as a one-sentence quote: what
    auto mode offers the checking model when the first quote is not an answer. After an abstention every ranked
    candidate is one (the best among them scored under the threshold)."""
    by_n = {s.n: s for s in sources}
    taken = {(s.n, s.start, s.end) for s in result.sentences}
    out: list[Outcome] = []
    for s in result.ranked:
        if (s.n, s.start, s.end) in taken or s.n not in by_n:
            continue
        taken.add((s.n, s.start, s.end))
        out.append(Outcome(text=format_sentence(s), sources=list(sources), citations=[Citation.of(by_n[s.n], s.text)],
                           model_id=EXTRACTIVE_MODEL_ID, mode=mode, support=s.score, warnings=[QUOTE_NOTE]))
    return out
