"""Answer modes side by side on a QA set with a fixed dev/test split: extractive (localrag.app.answering.extractive) and
generative (`Rag.ask`, the bundled LLM, cache off).

    python -m bench.answer_modes --set data/eval/qa.jsonl --corpus data/sample --split dev \
        [--mode extractive|generative|both] [--data-dir DIR] [--json] [--out items.jsonl] [--param threshold=0.4]
    python -m bench.answer_modes --set data/eval/qa.jsonl --corpus data/sample \
        --set data/eval/qa_articles.jsonl --corpus ../shared/corpora/articles --split dev --tune

`--set`/`--corpus` (and `--data-dir`) may be repeated, pairwise. Each corpus is ingested into `--data-dir` (a
temporary folder by default; an ingest of unchanged files costs only their hashing, so pass the same folder again
to reuse it). Every question of the split is asked, and per mode and set it prints:

* **grounded**: the share of answerable questions answered (not abstained) with grounded citations: every quote is
  in its cited chunk (whitespace and case aside) AND the evidence is cited — a cited chunk matches one of the item's
  `relevant` evidence specs (localrag.eval.retrieval_metrics.spec_matches), or the cited quotes themselves state the
  reference answer's key facts (a corpus often states a fact twice — the lighthouse's designer in its history page
  and in the knowledge graph — and a label names one copy); a knowledge-graph quote is read with its node's label, as
  the answer shows it ("Elias Thornbury: Civil engineer who designed ..."). **grounded (label)** counts only the
  first way; **grounded (strict)** reads the quotes without the label (the figures before 2026-12-08);
* **key facts**: the share of answerable questions whose answer states the reference answer's key facts
  (`states_key_facts`: every number of the reference and at least half of its other key facts);
* **abstain**: the share of unanswerable questions answered with "I don't know";
* **median s**: median seconds per answer (retrieval included; for extractive also the extraction alone).

Extractive answers use the same retrieval and source assembly as `Rag.ask` (`answer_k` hits, those at or above
`answer_min_relevance`, numbered by `assemble_context` within `answer_context_tokens`, counted here with the
embedder's tokenizer because no LLM is loaded). `--tune` grid-searches the extractive parameters on the split given
(never on test) and prints the best settings by the mean of the three rates over the sets.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see app/cli.py

from localrag.app.answering import Answer, assemble_context  # noqa: E402
from localrag.app.answering.extractive import (  # noqa: E402
    ExtractiveParams,
    ExtractiveResult,
    extract_answer,
    format_sentence,
)
from localrag.app.answering.verify import cited_quotes  # noqa: E402
from localrag.eval.answer_format import IDK, is_idk, strip_citations  # noqa: E402
from localrag.eval.retrieval_metrics import spec_matches  # noqa: E402
from localrag.index.jsonl import read_jsonl  # noqa: E402
from localrag.index.text import STOPWORDS, content_words, numbers, tokens  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODES = ("extractive", "generative")
_GENERIC = frozenset("answer question source sources year years people about".split())


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- key facts ---------------------------------------------------------------------------------------------------
def key_facts(reference: str, question: str = "") -> dict[str, list[str]]:
    """The key facts of a reference answer, the yardstick for 'the answer states the facts':

    * `numbers`: every number in it (index.text.numbers: canonical, so '1,150' is '1150' and '3.20' is '3.2'),
      except those the question already gives;
    * `words`: its names (capitalised words) and its rarer content words (4+ letters), stemmed, without stopwords
      and without the words the question already contains: repeating the question states nothing.

    Both are sorted lists of normalised strings; `key_fact_recall` looks for them in an answer the same way."""
    q_terms = set(content_words(question, stemmed=True))
    words: set[str] = set()
    for tok in tokens(reference):
        if any(c.isdigit() for c in tok.low) or tok.low in STOPWORDS or tok.low in _GENERIC:
            continue
        if tok.stem in q_terms or not tok.low.isalpha():
            continue
        if tok.text[:1].isupper() or len(tok.low) >= 4:
            words.add(tok.stem)
    return {"numbers": sorted(numbers(reference) - numbers(question)), "words": sorted(words)}


def key_fact_recall(answer: str, reference: str, question: str = "") -> tuple[float, bool]:
    """(share of the reference's key facts found in the answer, whether the answer states them: every number
    found and at least half of the other key facts). Citation markers are ignored; an 'I don't know' states
    nothing. A reference without key facts counts as stated by any non-abstaining answer."""
    if is_idk(answer):
        return 0.0, False
    facts = key_facts(reference, question)
    text = strip_citations(answer)
    a_nums = numbers(text)
    a_words = {t.stem for t in tokens(text)}
    n_found = sum(n in a_nums for n in facts["numbers"])
    w_found = sum(w in a_words for w in facts["words"])
    total = len(facts["numbers"]) + len(facts["words"])
    if total == 0:
        return 1.0, True
    ok = n_found == len(facts["numbers"]) and (not facts["words"] or w_found >= len(facts["words"]) / 2)
    return (n_found + w_found) / total, ok


# --- items -------------------------------------------------------------------------------------------------------
def load_set(path: str | Path, split: str | None) -> list[dict[str, Any]]:
    """QA items of a split (`"split": "dev"|"test"` on every line; None: all). Read leniently: only the keys used
    here matter (question, reference, answerable, relevant, type, id, split)."""
    items = []
    for n, obj in read_jsonl(path, comments=True, what="QA file"):
        sp = obj.get("split")
        if split and sp not in ("dev", "test"):
            raise SystemExit(f"{path}:{n}: no 'split' (dev or test) on this item")
        if split and sp != split:
            continue
        ref = (obj.get("reference") or "").strip()
        answerable = bool(obj.get("answerable", bool(ref)))
        items.append({"id": str(obj.get("id") or f"line{n}"), "question": obj["question"].strip(), "reference": ref,
                      "answerable": answerable, "relevant": list(obj.get("relevant") or []),
                      "type": obj.get("type", ""), "split": sp})
    return items


@dataclass
class Graded:
    id: str
    type: str
    answerable: bool
    question: str
    reference: str
    text: str
    abstained: bool
    reason: str | None
    seconds: float
    citations: list[dict[str, Any]] = field(default_factory=list)
    grounded: bool = False
    grounded_label: bool = False  # a cited chunk matches the item's evidence spec (the stricter, label-bound count)
    grounded_strict: bool = False  # as grounded, the quotes read without a knowledge-graph node's label (stop 28's)
    key_fact_share: float = 0.0
    key_facts_ok: bool = False
    stated_and_cited: bool = False  # key facts stated, cited, and every quote in its chunk (whatever the spec)
    extra: dict[str, Any] = field(default_factory=dict)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def graded_answer(question: str, sources: Sequence[Any], result: ExtractiveResult) -> Answer:
    """An extractive result as the Answer that `grade` reads (text, sources, citations, why it abstained), built from
    the result itself so that the bench does not depend on how the product wraps it."""
    ans = Answer(question=question, text=result.text, sources=list(sources), model_id="extractive")
    if result.abstained:
        ans.abstained, ans.abstain_reason = True, result.reason
    else:
        ans.citations = result.citations(sources)
    return ans


def grade(item: dict[str, Any], ans: Answer, seconds: float, chunk_text: dict[int, str],
          extra: dict[str, Any] | None = None) -> Graded:
    """Grade one answer against its item (see the module docstring for the definitions)."""
    cites = []
    by_n = {s.n: s for s in ans.sources}
    for c in ans.citations:
        src = by_n.get(c.n)
        chunk = chunk_text.get(c.chunk_id, src.text if src else "")
        quote_ok = bool(c.quote.strip()) and _norm(c.quote.rstrip("…")) in _norm(chunk)
        spec_ok = any(spec_matches(spec, c.source, chunk, c.page, c.kg_uri) for spec in item["relevant"])
        cites.append({"n": c.n, "source": Path(c.source).name, "chunk_id": c.chunk_id, "quote": c.quote[:200],
                      "quote_in_chunk": quote_ok, "chunk_matches_spec": spec_ok})
    abstained = ans.abstained or is_idk(ans.text)
    share, ok = (key_fact_recall(ans.text, item["reference"], item["question"]) if item["answerable"]
                 else (0.0, False))
    quotes_ok = bool(cites) and all(c["quote_in_chunk"] for c in cites)
    by_label = any(c["quote_in_chunk"] and c["chunk_matches_spec"] for c in cites)

    def states(quotes: str) -> bool:
        return bool(item["answerable"] and quotes.strip()
                    and key_fact_recall(quotes, item["reference"], item["question"])[1])

    # a knowledge-graph quote is read with its node's label ("Elias Thornbury: Civil engineer who designed ..."), as
    # the answer shows it and the checking model reads it: the source states the label's fact too
    by_quote = states(" ".join(cited_quotes(ans.citations, ans.sources)))
    by_quote_strict = states(" ".join(c.quote for c in ans.citations))
    return Graded(
        id=item["id"], type=item["type"], answerable=item["answerable"], question=item["question"],
        reference=item["reference"], text=ans.text, abstained=abstained, reason=ans.abstain_reason, seconds=seconds,
        citations=cites, grounded=not abstained and quotes_ok and (by_label or by_quote),
        grounded_strict=not abstained and quotes_ok and (by_label or by_quote_strict),
        grounded_label=not abstained and by_label,
        key_fact_share=share, key_facts_ok=ok and not abstained,
        stated_and_cited=ok and not abstained and bool(cites) and all(c["quote_in_chunk"] for c in cites),
        extra=extra or {},
    )


def summarize(rows: Sequence[Graded]) -> dict[str, Any]:
    ans = [r for r in rows if r.answerable]
    un = [r for r in rows if not r.answerable]
    secs = [r.seconds for r in rows]
    out = {
        "items": len(rows), "answerable": len(ans), "unanswerable": len(un),
        "grounded": sum(r.grounded for r in ans) / len(ans) if ans else None,
        "grounded_label": sum(r.grounded_label for r in ans) / len(ans) if ans else None,
        "grounded_strict": sum(r.grounded_strict for r in ans) / len(ans) if ans else None,
        "key_facts": sum(r.key_facts_ok for r in ans) / len(ans) if ans else None,
        "abstain_unanswerable": sum(r.abstained for r in un) / len(un) if un else None,
        "stated_and_cited": sum(r.stated_and_cited for r in ans) / len(ans) if ans else None,
        "answered": sum(not r.abstained for r in ans) / len(ans) if ans else None,
        "cited_quote_in_chunk": (sum(all(c["quote_in_chunk"] for c in r.citations) for r in rows if r.citations)
                                 / max(1, sum(bool(r.citations) for r in rows))),
        "median_s": statistics.median(secs) if secs else None,
        "p95_s": sorted(secs)[min(len(secs) - 1, round(0.95 * (len(secs) - 1)))] if secs else None,
    }
    ext = [r.extra["extract_s"] for r in rows if "extract_s" in r.extra]
    if ext:
        out["median_extract_s"] = statistics.median(ext)
    ttft = [r.extra["ttft_s"] for r in rows if r.extra.get("ttft_s") is not None]
    if ttft:
        out["median_ttft_s"] = statistics.median(ttft)
    return out


# --- running -----------------------------------------------------------------------------------------------------
class _Ctx:
    """One corpus ingested into a data dir, and what the extractive path needs from it."""

    def __init__(self, corpus: Path, data_dir: Path | None, generative: bool) -> None:
        from localrag.app.rag import Rag

        self.data_dir = data_dir or Path(tempfile.mkdtemp(prefix="localrag-answer-modes-"))
        self.probe_alternatives = 0  # bench.answer_grid: next-best quotes to check and grade
        self.rag = Rag.open(self.data_dir, score_answers=False)
        t = time.perf_counter()
        report = self.rag.ingest([corpus])
        log(f"{corpus}: {report.counts} in {time.perf_counter() - t:.1f} s (data dir {self.data_dir})")
        if report.exit_code != 0:
            raise SystemExit(f"ingest of {corpus} failed: {report.to_dict()}")
        self.embedder = self.rag.embedder
        self.cache: dict[str, Any] = {}
        self._chunks: dict[int, str] = {}
        self.generative = generative

    def chunk_texts(self, ids: Sequence[int]) -> dict[int, str]:
        from sqlalchemy import select

        from localrag.index.store import ChunkRow

        todo = [i for i in ids if i not in self._chunks]
        if todo:
            with self.rag.store.session() as s:
                for cid, text in s.execute(select(ChunkRow.id, ChunkRow.text).where(ChunkRow.id.in_(todo))):
                    self._chunks[cid] = text
        return {i: self._chunks[i] for i in ids if i in self._chunks}

    def count_tokens(self, text: str) -> int:
        return self.embedder.token_counts([text])[0]

    def sources(self, question: str) -> tuple[list[Any], str | None]:
        """The numbered sources `Rag.ask` would give the LLM (retrieval, relevance floor, context budget), or
        ([], why) when it would abstain before answering."""
        st = self.rag.settings.answer
        res = self.rag.search(question, k=st.k)
        relevant = [h for h in res if h.relevance >= st.min_relevance]
        if not relevant:
            return [], "no relevant sources"
        sources, _ = assemble_context(relevant, self.count_tokens, st.context_tokens)
        return sources, None if sources else "no source fits the context budget"

    def extractive(self, item: dict[str, Any], params: ExtractiveParams) -> Graded:
        t = time.perf_counter()
        sources, why = self.sources(item["question"])
        if not sources:
            ans = Answer(question=item["question"], text=IDK, abstained=True, abstain_reason=why)
            result: ExtractiveResult | None = None
            t_ext = 0.0
        else:
            t1 = time.perf_counter()
            result = extract_answer(item["question"], sources, self.embedder, params=params)
            t_ext = time.perf_counter() - t1
            ans = graded_answer(item["question"], sources, result)
        secs = time.perf_counter() - t
        extra: dict[str, Any] = {"extract_s": t_ext}
        if result is not None and result.best is not None:
            extra["best"] = {"n": result.best.n, "score": round(result.best.score, 4), "text": result.best.text[:200],
                             "parts": {k: round(v, 3) for k, v in result.best.parts.items()}}
        return grade(item, ans, secs, self.chunk_texts([c.chunk_id for c in ans.citations]), extra)

    def generative_answer(self, item: dict[str, Any]) -> Graded:
        t = time.perf_counter()
        ans = self.rag.ask(item["question"], cache=False)
        secs = time.perf_counter() - t
        extra = {"ttft_s": ans.timings.get("ttft"), "attempts": ans.attempts, "attributed": ans.attributed,
                 "guardrails": [g["name"] for g in ans.guardrails]}
        return grade(item, ans, secs, self.chunk_texts([c.chunk_id for c in ans.citations]), extra)


def run_set(ctx: _Ctx, items: list[dict[str, Any]], modes: Sequence[str], params: ExtractiveParams,
            out: TextIO | None, set_name: str, done: dict[tuple[str, str, str], dict[str, Any]] | None = None,
            ) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for mode in modes:
        rows = []
        for k, item in enumerate(items, 1):
            prev = (done or {}).get((set_name, mode, item["id"]))
            if prev is not None:  # --resume: graded before
                rows.append(Graded(**{f: prev[f] for f in Graded.__dataclass_fields__ if f in prev}))
                continue
            g = ctx.extractive(item, params) if mode == "extractive" else ctx.generative_answer(item)
            rows.append(g)
            if out is not None:  # one line per answer as it comes: a long generative run keeps what it did
                out.write(json.dumps({"set": set_name, "mode": mode, **asdict(g)}, default=str) + "\n")
                out.flush()
            if mode == "generative":
                log(f"  [{k}/{len(items)}] {item['id']}: {'IDK' if g.abstained else 'answer'} {g.seconds:.1f} s")
        result[mode] = summarize(rows)
    return result


# --- tuning ------------------------------------------------------------------------------------------------------
WEIGHTS = ("w_dense", "w_lexical", "w_cue", "w_new", "w_rank", "w_graph")
_PART = {"w_dense": "dense", "w_lexical": "lexical", "w_cue": "cue", "w_new": "new", "w_rank": "rank",
         "w_graph": "graph"}
GRID: dict[str, list[Any]] = {
    "w_dense": [0.3, 0.5, 0.7, 0.9],
    "w_lexical": [0.0, 0.2, 0.35, 0.5, 0.7],
    "w_cue": [0.0, 0.1, 0.2, 0.3, 0.4],
    "w_new": [0.0, 0.1, 0.2],
    "w_rank": [0.0, 0.1, 0.2],
    "w_graph": [0.0, 0.1, 0.2],
    "context": [0.0, 0.3],
}


def _best_threshold(per_item: list[tuple[str, bool, float | None, bool, bool]], names: list[str],
                    ) -> tuple[float, float, dict[str, dict[str, float]]]:
    """(objective, threshold, rates per set) for the threshold that maximises `objective`. per_item: (set,
    answerable, best score or None when nothing was retrieved, grounded, key facts)."""
    scores = sorted({x[2] for x in per_item if x[2] is not None})
    best: tuple[float, float, dict[str, dict[str, float]]] | None = None
    for t in [(scores[0] if scores else 0.0) - 1e-6] + [x + 1e-6 for x in scores]:
        per_set = {}
        for name in names:
            rows = [x for x in per_item if x[0] == name]
            ans = [x for x in rows if x[1]]
            un = [x for x in rows if not x[1]]
            answered = [x for x in ans if x[2] is not None and x[2] >= t]
            per_set[name] = {
                "grounded": sum(x[3] for x in answered) / max(1, len(ans)),
                "key_facts": sum(x[4] for x in answered) / max(1, len(ans)),
                "abstain_unanswerable": (sum(x[2] is None or x[2] < t for x in un) / len(un)) if un else 1.0,
            }
        obj = objective(per_set)
        if best is None or obj > best[0] + 1e-12:
            best = (obj, t, per_set)
    assert best is not None
    return best


TARGETS = {"grounded": 0.8, "key_facts": 0.6, "abstain_unanswerable": 0.9}  # the targets (test halves)


def objective(per_set: dict[str, dict[str, float]]) -> float:
    """What tuning maximises: the mean over sets and the three rates of min(1, rate / target), so that a rate
    counts up to its target and no further (abstaining on everything does not buy more than 1/3), plus 1e-3 of
    the plain mean as a tie-breaker."""
    capped = [min(1.0, v[k] / t) for v in per_set.values() for k, t in TARGETS.items()]
    plain = [v[k] for v in per_set.values() for k in TARGETS]
    return statistics.mean(capped) + 1e-3 * statistics.mean(plain)


def tune(ctxs: list[tuple[str, _Ctx, list[dict[str, Any]]]], base: ExtractiveParams,
         grid: dict[str, list[Any]] | None = None, top: int = 10) -> dict[str, Any]:
    """Grid search of the extractive weights, `context` and the threshold, then 1 vs 2 sentences for the best.

    The score is linear in the weights, so every candidate sentence's parts are computed once per item and
    `context` value and each weight combination only re-ranks them; every threshold that changes an outcome is
    tried (the scores do not depend on it); see `objective`. The `top` combinations are then run through
    `extract_answer` itself with 1 and with 2 sentences."""
    import numpy as np

    grid = grid or GRID
    t0 = time.perf_counter()
    names = list(dict.fromkeys(n for n, *_ in ctxs))
    prepared = []  # (set, ctx, item, sources, chunk texts)
    for name, ctx, items in ctxs:
        for item in items:
            sources, _ = ctx.sources(item["question"])
            prepared.append((name, ctx, item, sources, ctx.chunk_texts([s.chunk_id for s in sources])))
    combos = np.array(list(itertools.product(*(grid[w] for w in WEIGHTS))), dtype=np.float64)
    combos[:, WEIGHTS.index("w_graph")] *= -1  # the graph part is subtracted
    results = []
    for context in grid["context"]:
        cols = []  # per item: (scores per combo, grounded per combo, key facts per combo) or None
        for _name, ctx, item, sources, chunks in prepared:
            if not sources:
                cols.append(None)
                continue
            params = base.with_(context=context, threshold=-1e9, min_coverage=0.0, max_sentences=1,
                                keep_ranked=10**6)
            r = extract_answer(item["question"], sources, ctx.embedder, params=params, cache=ctx.cache)
            if not r.ranked:
                cols.append(None)
                continue
            parts = np.array([[c.parts[_PART[w]] for w in WEIGHTS] for c in r.ranked])
            ok = []
            for c in r.ranked:
                one = ExtractiveResult(question=item["question"], text="", sentences=[c], score=c.score,
                                       abstained=False, reason=None)
                one.text = format_sentence(c)
                g = grade(item, graded_answer(item["question"], sources, one), 0.0, chunks)
                ok.append((g.grounded, g.key_facts_ok))
            s = parts @ combos.T  # candidates x combos
            pick = s.argmax(axis=0)
            cols.append((s[pick, np.arange(len(combos))], np.array([ok[i][0] for i in pick]),
                         np.array([ok[i][1] for i in pick])))
        for j in range(len(combos)):
            per_item = []
            for (name, _, item, _, _), col in zip(prepared, cols, strict=True):
                if col is None:
                    per_item.append((name, item["answerable"], None, False, False))
                else:
                    per_item.append((name, item["answerable"], float(col[0][j]), bool(col[1][j]), bool(col[2][j])))
            obj, thr, per_set = _best_threshold(per_item, names)
            w = {k: float(abs(v)) for k, v in zip(WEIGHTS, combos[j], strict=True)}
            results.append({"objective": obj, "params": {**w, "context": context, "threshold": round(thr, 4)},
                            "per_set": per_set})
    results.sort(key=lambda r: -r["objective"])
    # the best few, through the real function, with 1 and 2 sentences
    checked = []
    for r in results[:top]:
        for n_sent in (1, 2):
            params = base.with_(**{k: v for k, v in r["params"].items() if k != "threshold"}, threshold=-1e9,
                                min_coverage=0.0, max_sentences=n_sent)
            per_item = []
            for name, ctx, item, sources, chunks in prepared:
                if not sources:
                    per_item.append((name, item["answerable"], None, False, False))
                    continue
                res = extract_answer(item["question"], sources, ctx.embedder, params=params, cache=ctx.cache)
                g = grade(item, graded_answer(item["question"], sources, res), 0.0, chunks)
                per_item.append((name, item["answerable"], res.score, g.grounded, g.key_facts_ok))
            obj, thr, per_set = _best_threshold(per_item, names)
            checked.append({"objective": obj, "params": {**r["params"], "max_sentences": n_sent,
                                                         "threshold": round(thr, 4)}, "per_set": per_set})
    checked.sort(key=lambda r: -r["objective"])
    keys = [*WEIGHTS, "context"]
    return {"combinations": len(results), "seconds": time.perf_counter() - t0, "best": checked[:top],
            "grid_top": results[:top], "by_setting": _marginals(results, keys)}


def _marginals(results: list[dict[str, Any]], keys: list[str]) -> dict[str, dict[str, float]]:
    """For each parameter value, the best objective reached with it (how much each choice matters)."""
    out: dict[str, dict[str, float]] = {}
    for k in keys:
        vals: dict[str, float] = {}
        for r in results:
            v = str(r["params"][k])
            vals[v] = max(vals.get(v, -1.0), r["objective"])
        out[k] = vals
    return out


# --- report ------------------------------------------------------------------------------------------------------
def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def format_report(res: dict[str, Any]) -> str:
    L = [f"answer modes, split {res['split']}; extractive parameters: {res['params']}"]
    L.append("| set | mode | items (ans/unans) | grounded | grounded (label) | key facts | abstain (unans.) "
             "| answered | key facts + cited | median s |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    for name, modes in res["sets"].items():
        for mode, s in modes.items():
            med = f"{s['median_s']:.2f}"
            if "median_extract_s" in s:
                med += f" (extract {1e3 * s['median_extract_s']:.0f} ms)"
            if "median_ttft_s" in s:
                med += f" (ttft {s['median_ttft_s']:.1f})"
            L.append(f"| {name} | {mode} | {s['items']} ({s['answerable']}/{s['unanswerable']}) | {_pct(s['grounded'])}"
                     f" | {_pct(s.get('grounded_label'))} | {_pct(s['key_facts'])} | {_pct(s['abstain_unanswerable'])}"
                     f" | {_pct(s['answered'])} | "
                     f"{_pct(s['stated_and_cited'])} | {med} |")
    return "\n".join(L)


def _parse_param(text: str) -> tuple[str, Any]:
    key, _, value = text.partition("=")
    if key not in ExtractiveParams.__dataclass_fields__:
        raise SystemExit(f"unknown extractive parameter {key!r}")
    return key, (int(value) if key in ("max_sentences", "min_words", "max_chars") else float(value))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", action="append", required=True, help="QA JSON-lines file (repeatable)")
    ap.add_argument("--corpus", action="append", required=True, help="folder or file to ingest, one per --set")
    ap.add_argument("--data-dir", action="append", default=None, help="data dir per --set (default: a temp dir)")
    ap.add_argument("--split", choices=["dev", "test", "all"], default="dev")
    ap.add_argument("--mode", choices=[*MODES, "both"], default="extractive")
    ap.add_argument("--param", action="append", default=[], help="extractive parameter, e.g. threshold=0.45")
    ap.add_argument("--tune", action="store_true", help="grid-search the extractive parameters (dev split only)")
    ap.add_argument("--out", type=Path, help="write one JSON line per answer here")
    ap.add_argument("--resume", action="store_true",
                    help="with --out: keep the answers already in that file (same set, mode and id), append the rest")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if len(args.corpus) != len(args.set) or (args.data_dir and len(args.data_dir) != len(args.set)):
        ap.error("give one --corpus (and one --data-dir, if any) per --set")
    if args.tune and args.split != "dev":
        ap.error("--tune only runs on the dev split: the test split is for reporting")
    params = ExtractiveParams().with_(**dict(_parse_param(p) for p in args.param))
    split = None if args.split == "all" else args.split
    modes = list(MODES) if args.mode == "both" else [args.mode]
    ctxs = []
    for k, (qa, corpus) in enumerate(zip(args.set, args.corpus, strict=True)):
        items = load_set(qa, split)
        dd = Path(args.data_dir[k]) if args.data_dir else None
        ctxs.append((Path(qa).name, _Ctx(Path(corpus), dd, "generative" in modes), items))
    if args.tune:
        res = tune(ctxs, params)
        print(json.dumps(res, indent=2))
        return 0
    res = {"split": args.split, "params": asdict(params), "sets": {}}
    done: dict[tuple[str, str, str], dict[str, Any]] = {}
    if args.resume and args.out and args.out.exists():
        for _, row in read_jsonl(args.out):
            done[(row["set"], row["mode"], row["id"])] = row
    out = args.out.open("a" if args.resume else "w", encoding="utf-8") if args.out else None
    try:
        for name, ctx, items in ctxs:
            log(f"{name}: {len(items)} items ({args.split}), modes {', '.join(modes)}")
            res["sets"][name] = run_set(ctx, items, modes, params, out, name, done)
    finally:
        if out is not None:
            out.close()
        for _, ctx, _ in ctxs:
            ctx.rag.close()
    print(json.dumps(res, indent=2, default=str) if args.json else format_report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
