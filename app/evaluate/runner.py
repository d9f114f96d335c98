"""`localrag eval`: run a QA set through retrieval, answering and scoring, and aggregate the run's numbers.

The run is a chain of named stages, each a function:

    prepare_items -> build_context (collection, evidence rows, judges)
    -> per item: retrieve_stage (items with evidence specs) -> generate_stage (ask) -> score_stage
       -> robustness_stage (when asked)   [evaluate_item: one item's failure is recorded, the run goes on]
    -> retrieval_summary (ir-measures) -> build_result (abstention, scores, latency, notes)

and the CLI then writes the files (localrag.app.evaluate.report.write_report).

An item that brings its own `answer` and `contexts` (a ragas-style `response` / `retrieved_contexts`) skips the
generate stage: its answer is scored as given (app.evaluate.given), by the same judges, into the same report; the
run needs no ingested collection when every item is like that.

Items that list `relevant` evidence get recall@k, MRR@10 and nDCG@10 through ir-measures, with the matching rule of
localrag.eval.retrieval_metrics. An unanswerable item counts as correct when the system abstains, an answerable item
when it answers: that is the abstention accuracy. Scores come from the fast proxy judge (ProxyScorer, the one `ask`
uses); `judge="llm"` adds LLMJudge next to it, each labelled. The LLM judge's model is eval.judge_model (default
qwen2.5-coder-1.5b), loaded once per run apart from the answering model (llm.model), or that same instance when both
name the same file; none: the answering LLM judges. A judge model that is not pulled stops the run before any item,
with the command that pulls it; nothing is downloaded here. A metric that cannot be scored is
None with its reason and is counted as unscored, never NaN. `robustness=N` asks each question N more times with
non-semantic perturbations and reports how far the answers' embeddings spread around their centroid.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from localrag.app.evaluate.aggregate import (
    abstention,
    finite,
    judge_labels,
    latency,
    robustness_summary,
    score_summary,
)
from localrag.app.evaluate.given import given_answer
from localrag.app.evaluate.items import prepare_items
from localrag.app.evaluate.robustness import PERTURBATIONS, perturb, spread
from localrag.eval.retrieval_metrics import ChunkFacts, LabeledQuery, chunk_rows, evidence_units, measure

__all__ = [
    "GIVEN_NOTE", "JUDGE_CAVEAT", "PANEL_JUDGES", "PROXY_NOTE", "RAGAS_NOTE", "EvalContext", "ItemOutcome",
    "answer_record", "build_context", "build_result", "evaluate_item", "generate_stage", "retrieval_summary",
    "retrieve_stage", "robustness_stage", "run_eval", "score_stage",
]

PANEL_JUDGES = ("proxy", "llm")
JUDGE_CAVEAT = (
    "The LLM judge is {model} (eval.judge_model; none: the answering model, llm.model). How far to trust a judge, on "
    "the 66 hand-labelled statements of data/eval/judge_statements.jsonl: qwen2.5-coder-1.5b agrees with the labels "
    "better than the proxy (Cohen's κ 0.61 against 0.43), SmolLM2-135M is no better than chance (κ -0.05; "
    "BENCHMARKS.md, The judge). Measure another model with "
    "`python -m bench.judges --llm --model NAME` before trusting its scores."
)
PROXY_NOTE = (
    "Proxy scores are heuristics without an LLM (embedding similarity and word overlap between the answer, its "
    "cited sources, the question and the reference): fast and repeatable, but they measure support, not truth."
)
RAGAS_NOTE = (
    "The ragas columns come from the official ragas library on the same LLM and embeddings: a metric ragas "
    "returned as NaN is reported unscored (\"ragas returned NaN\"), never as a number."
)

GIVEN_NOTE = (
    "{n} item(s) brought their own answer and contexts (ragas-style `response` / `retrieved_contexts`): those "
    "answers were scored as given, not asked again; their context [n] is the n-th retrieved context."
)

ProgressFn = Callable[[int, int, str], None]


@dataclass
class EvalContext:
    """What every item's stages share: the open Rag, the run's settings, the evidence rows and the judges."""

    rag: Any
    collection: str
    judge: str
    k: int | None
    answer_k: int
    depth: int
    robustness: int
    rows: list[ChunkFacts] = field(default_factory=list)
    llm_judge: Any = None
    judge_llm: Any = None  # the LLM behind the LLM judge (its own or the answering model)
    owns_judge_llm: bool = False  # loaded for this run: closed at its end
    panel: Any = None
    panel_names: list[str] = field(default_factory=list)
    aggregate: str = "mean"
    ragas: Any = None

    @property
    def metric_names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((f"R@{self.answer_k}", "R@5", "R@10", "RR@10", "nDCG@10")))


@dataclass
class ItemOutcome:
    """One item's record for the report, the answering model, and (for items with evidence specs that ran) the
    chunk -> evidence-unit map and the ranked chunk ids that retrieval_summary measures."""

    record: dict[str, Any]
    model_id: str | None = None
    units: dict[int, list[str]] | None = None
    ranked: list[int] | None = None


# --- setup -------------------------------------------------------------------------------------------------------
def _check_options(judge: str, panel: Sequence[str] | None, engine: str | None, robustness: int) -> list[str]:
    if judge not in ("proxy", "llm"):
        raise ValueError(f"judge must be 'proxy' or 'llm', got {judge!r}")
    names = list(dict.fromkeys(panel or []))
    if any(p not in PANEL_JUDGES for p in names):
        raise ValueError(f"panel judges must be among {', '.join(PANEL_JUDGES)}, got {', '.join(names)}")
    if engine not in (None, "ours", "ragas"):
        raise ValueError(f"engine must be 'ragas' (or None), got {engine!r}")
    if robustness < 0:
        raise ValueError(f"robustness must be >= 0, got {robustness}")
    return names


def build_context(rag: Any, items: list[dict[str, Any]], collection: str = "default", judge: str = "proxy",
                  k: int | None = None, robustness: int = 0, panel: Sequence[str] = (), aggregate: str = "mean",
                  engine: str | None = None) -> EvalContext:
    """The collection checked, the evidence rows read (only when some item has specs), the judges built."""
    coll = rag.store.collection(collection)
    needs_collection = any(it.get("answer") is None or it["relevant"] for it in items)
    if coll is None and needs_collection:
        raise ValueError(f"no collection {collection!r}: ingest your documents first")
    default_k: int = rag.settings.answer.k
    answer_k = int(k or default_k)
    ctx = EvalContext(rag=rag, collection=collection, judge=judge, k=k, answer_k=answer_k, depth=max(10, answer_k),
                      robustness=robustness, panel_names=list(panel), aggregate=aggregate)
    if coll is not None and any(it["relevant"] for it in items):
        ctx.rows = chunk_rows(rag.store, coll.id)
    if engine == "ragas":
        ctx.ragas = _make_ragas(rag)
    if judge == "llm" or "llm" in ctx.panel_names:
        from localrag.eval.scoring import LLMJudge

        ctx.judge_llm, ctx.owns_judge_llm = rag.judge_llm()  # eval.judge_model, or the answering model
        if judge == "llm":
            ctx.llm_judge = LLMJudge(ctx.judge_llm, rag.embedder)
    if ctx.panel_names:
        ctx.panel = _make_panel(rag, ctx.panel_names, aggregate, ctx.llm_judge, ctx.judge_llm)
    return ctx


def _llm_label(llm: Any) -> str:
    return f"llm:{getattr(llm, 'model_id', type(llm).__name__)}"


def _make_panel(rag: Any, names: Sequence[str], aggregate: str, llm_judge: Any = None, llm: Any = None) -> Any:
    """A JudgePanel of the named judges (an LLM judge the run already has is reused, not built twice; a new one asks
    `llm`, the judge's model)."""
    from localrag.eval.panel import JudgePanel
    from localrag.eval.scoring import LLMJudge, ProxyScorer

    judges = [ProxyScorer(rag.embedder) if n == "proxy" else llm_judge or LLMJudge(llm, rag.embedder)
              for n in names]
    return JudgePanel(judges, aggregate=aggregate)


def _make_ragas(rag: Any) -> Any:
    """The ragas engine on the app's LLM server; RagasUnavailableError without the extra or a server."""
    from localrag.eval.ragas_engine import RagasEngine, RagasUnavailableError, require_ragas

    require_ragas()
    st = rag.settings.llm
    url = st.base_url if st.backend == "openai" else None
    if not url:
        from localrag.eval.ragas_engine import _NEEDS_SERVER

        raise RagasUnavailableError(_NEEDS_SERVER)
    return RagasEngine(url, rag.embedder, model=st.model)


# --- per-item stages ---------------------------------------------------------------------------------------------
def retrieve_stage(ctx: EvalContext, item: dict[str, Any]) -> tuple[dict[int, list[str]], list[int], list[dict]]:
    """For an item with evidence specs: the chunk -> evidence-unit map (a spec matching no chunk is an error), the
    ranked chunk ids of a search `depth` deep, and the retrieved hits as report rows."""
    units = evidence_units(item["id"], item["relevant"], ctx.rows)
    res = ctx.rag.search(item["question"], k=ctx.depth, collection=ctx.collection)
    retrieved = [{"chunk_id": h.chunk_id, "source": h.source.rsplit("/", 1)[-1],
                  "relevance": round(float(h.relevance), 4), "evidence": units.get(h.chunk_id, [])} for h in res]
    return units, [h.chunk_id for h in res], retrieved


def generate_stage(ctx: EvalContext, question: str) -> Any:
    """The answer, as `localrag ask` gives it but repeatable: cache off, temperature 0."""
    return ctx.rag.ask(question, collection=ctx.collection, k=ctx.k, cache=False, temperature=0)


def answer_record(ans: Any) -> dict[str, Any]:
    """The JSON-ready answer of one item: text, abstention, citations and sources by file name, tokens, model."""
    return {
        "text": ans.text, "abstained": bool(ans.abstained), "abstain_reason": ans.abstain_reason,
        "citations": [{"n": c.n, "chunk_id": c.chunk_id, "source": c.source.rsplit("/", 1)[-1], "page": c.page,
                       "kg_uri": c.kg_uri, "quote": c.quote} for c in ans.citations],
        "sources": [{"n": s.n, "chunk_id": s.chunk_id, "source": s.source.rsplit("/", 1)[-1],
                     "relevance": round(float(s.relevance), 4), "page": s.page, "kg_uri": s.kg_uri}
                    for s in ans.sources],
        "warnings": list(ans.warnings), "attributed": bool(getattr(ans, "attributed", False)),
        "tokens": dict(ans.tokens or {}), "model_id": ans.model_id,
    }


def score_stage(ctx: EvalContext, item: dict[str, Any], ans: Any, timings: dict[str, float]) -> dict[str, Any]:
    """Judge label -> scores of one answer: the proxy (always), the LLM judge, the panel and ragas when the run
    has them. Each judge's time goes into `timings` (score, judge, panel, ragas)."""
    q, ref = item["question"], item["reference"]
    t = time.perf_counter()
    proxy = ctx.rag.score_answer(q, ans, reference=ref)
    timings["score"] = time.perf_counter() - t
    scores = {proxy.get("judge", "proxy"): proxy}
    by_n = {s.n: s.text for s in ans.sources}
    cited = {c.n: by_n[c.n] for c in ans.citations if c.n in by_n} or None
    contexts = [s.text for s in ans.sources]
    llm_scores = None
    if ctx.llm_judge is not None:
        t = time.perf_counter()
        llm_scores = ctx.llm_judge.score(q, ans.text, contexts, cited=cited, reference=ref, abstained=ans.abstained)
        scored = llm_scores.to_dict()
        timings["judge"] = time.perf_counter() - t
        scores[scored["judge"]] = scored
    if ctx.panel is None and ctx.ragas is None:
        return scores
    args = (q, ans.text, contexts)
    kw = {"cited": cited, "reference": ref, "abstained": ans.abstained,
          "metrics": ["faithfulness", "answer_relevancy", "context_precision"] + (["context_recall"] if ref else [])}
    if ctx.panel is not None:
        t = time.perf_counter()
        reuse = {i: llm_scores for i, j in enumerate(ctx.panel.judges)
                 if ctx.llm_judge is not None and j is ctx.llm_judge}
        pooled = ctx.panel.score(*args, **kw, reuse=reuse).to_dict()
        timings["panel"] = time.perf_counter() - t
        scores[pooled["judge"]] = pooled
    if ctx.ragas is not None:
        t = time.perf_counter()
        rs = ctx.ragas.score(*args, **kw).to_dict()
        timings["ragas"] = time.perf_counter() - t
        scores[rs["judge"]] = rs
    return scores


def robustness_stage(ctx: EvalContext, item: dict[str, Any], ans: Any) -> dict[str, Any]:
    """Ask `ctx.robustness` perturbed variants of the question; how far the answers spread, and how often the
    abstain decision flipped."""
    variants = [perturb(item["question"], j, item["id"]) for j in range(ctx.robustness)]
    answers = [generate_stage(ctx, v) for v in variants]
    texts = [ans.text] + [a.text for a in answers]
    return {
        "n": ctx.robustness, "deviation": round(spread(ctx.rag.embedder.encode(texts)), 6),
        "abstain_flips": sum(bool(a.abstained) != bool(ans.abstained) for a in answers),
        "variants": [{"question": v, "kind": PERTURBATIONS[j % len(PERTURBATIONS)],
                      "abstained": bool(a.abstained), "text": a.text}
                     for j, (v, a) in enumerate(zip(variants, answers, strict=True))],
    }


def evaluate_item(ctx: EvalContext, item: dict[str, Any]) -> ItemOutcome:
    """All stages for one item. An exception is recorded as the item's `error` (its partial results dropped), so
    that one failure never stops the run."""
    rec: dict[str, Any] = {
        "id": item["id"], "type": item["type"], "question": item["question"], "reference": item["reference"],
        "answerable": item["answerable"], "relevant": item["relevant"], "error": None,
    }
    out = ItemOutcome(rec)
    units = ranked = None
    try:
        timings: dict[str, float] = {}
        if item["relevant"]:
            units, ranked, rec["retrieved"] = retrieve_stage(ctx, item)
        if item.get("answer") is not None:  # made elsewhere: scored as given, not asked again
            rec["given"] = True
            ans = given_answer(item["answer"], item["contexts"] or [])
        else:
            ans = generate_stage(ctx, item["question"])
            out.model_id = ans.model_id
        timings.update({s: float(v) for s, v in ans.timings.items() if isinstance(v, int | float)})
        rec["answer"] = answer_record(ans)
        rec["abstained"] = bool(ans.abstained)
        rec["correct"] = rec["abstained"] != item["answerable"]
        rec["scores"] = score_stage(ctx, item, ans, timings)
        if ctx.robustness and not rec.get("given"):
            rec["robustness"] = robustness_stage(ctx, item, ans)
        rec["timings"] = {s: round(v, 4) for s, v in timings.items()}
        out.units, out.ranked = units, ranked
    except Exception as exc:  # noqa: BLE001 - one item's failure is reported, the others still run
        rec["error"] = f"{type(exc).__name__}: {exc}"
        for key in ("answer", "abstained", "correct", "scores", "robustness", "retrieved"):
            rec.pop(key, None)
    return out


# --- run-level stages --------------------------------------------------------------------------------------------
def retrieval_summary(ctx: EvalContext, items: list[dict[str, Any]],
                      outcomes: list[ItemOutcome]) -> dict[str, Any] | None:
    """ir-measures over the items with evidence specs that ran (None when there are none); each such record gets
    its own values under `retrieval`."""
    done = [(it, o) for it, o in zip(items, outcomes, strict=True) if o.ranked is not None]
    if not done:
        return None
    queries = [LabeledQuery(it["id"], it["question"], it["type"], it["relevant"]) for it, _ in done]
    units = {it["id"]: o.units or {} for it, o in done}
    run = {it["id"]: o.ranked or [] for it, o in done}
    m = measure(queries, units, run, ctx.metric_names)
    for o in outcomes:
        if o.record["id"] in m["per_query"]:
            o.record["retrieval"] = m["per_query"][o.record["id"]]
    return {"metrics": list(ctx.metric_names), "n": m["n"], "depth": ctx.depth, "overall": m["overall"],
            "by_type": m["by_type"]}


def build_result(ctx: EvalContext, outcomes: list[ItemOutcome], retrieval: dict[str, Any] | None,
                 started: str, seconds: float) -> dict[str, Any]:
    """The JSON-ready report: settings, abstention accuracy, retrieval, score statistics, latency, robustness,
    notes, failed items and every record; `exit_code` 1 when some item failed."""
    records = [o.record for o in outcomes]
    failed = [r for r in records if r["error"]]
    llm_judge = ctx.llm_judge
    result: dict[str, Any] = {
        "created": started, "seconds": round(seconds, 2),
        "settings": {"collection": ctx.collection, "judge": ctx.judge, "k": ctx.answer_k,
                     "judge_model": getattr(ctx.judge_llm, "model_id", None),
                     "retrieval_depth": ctx.depth, "robustness": ctx.robustness, "temperature": 0, "cache": False},
        "model_id": next((o.model_id for o in outcomes if o.model_id), None), "judges": judge_labels(records),
        "n_items": len(records), "n_failed": len(failed), "n_given": sum(bool(r.get("given")) for r in records),
        "abstention": abstention(records), "retrieval": retrieval, "scores": score_summary(records),
        "latency": latency(records), "robustness": robustness_summary(records) if ctx.robustness else None,
        "notes": [PROXY_NOTE] + ([JUDGE_CAVEAT.format(model=llm_judge.judge)] if llm_judge is not None else []),
        "errors": [{"id": r["id"], "error": r["error"]} for r in failed],
        "items": records, "exit_code": 1 if failed else 0,
    }
    if result["n_given"]:
        result["notes"].append(GIVEN_NOTE.format(n=result["n_given"]))
    if llm_judge is not None:
        result["llm_judge_stats"] = dict(llm_judge.stats)
    if ctx.panel is not None:
        result["settings"]["panel"], result["settings"]["aggregate"] = ctx.panel_names, ctx.aggregate
        result["panel"] = _panel_summary(ctx.panel, records)
        if "llm" in ctx.panel_names and llm_judge is None:
            result["notes"].append(JUDGE_CAVEAT.format(model=_llm_label(ctx.judge_llm)))
    if ctx.ragas is not None:
        result["settings"]["engine"] = "ragas"
        result["notes"].append(RAGAS_NOTE)
    return finite(result)


def _panel_summary(judge_panel: Any, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Run-level inter-judge agreement per metric, from the per-item judge values in the panel's details."""
    from localrag.eval.panel import agreement, per_item_values

    label = judge_panel.judge
    out: dict[str, Any] = {"judge": label, "aggregate": judge_panel.aggregate, "judges": judge_panel.labels,
                           "threshold": judge_panel.threshold, "agreement": {}}
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        for name, m in (((r.get("scores") or {}).get(label) or {}).get("metrics") or {}).items():
            by_metric.setdefault(name, []).append(m.get("details") or {})
    for name, details in by_metric.items():
        out["agreement"][name] = agreement(per_item_values(details, judge_panel.labels), judge_panel.threshold)
    return out


def run_eval(
    rag: Any, items: Iterable[dict[str, Any]], collection: str = "default", judge: str = "proxy",
    k: int | None = None, robustness: int = 0, progress: ProgressFn | None = None,
    panel: Sequence[str] | None = None, aggregate: str = "mean", engine: str | None = None,
) -> dict[str, Any]:
    """Evaluate `items` (raw or from load_items) against an open Rag; one item's failure is recorded on the item
    and the run goes on. `progress(done, total, current_id)` is called before each item and once at the end.
    `panel` (e.g. ["proxy", "llm"]) adds a pooled panel of those judges (eval.panel.JudgePanel, `aggregate`) as
    one more judge plus a run-level inter-judge agreement; `engine="ragas"` adds the official ragas library's
    scores next to ours (eval.ragas_engine; needs the extra and an OpenAI-compatible LLM server).
    Returns the JSON-ready report; its `exit_code` is 1 when some item failed, else 0."""
    panel_names = _check_options(judge, panel, engine, robustness)
    norm = prepare_items(items)
    ctx = build_context(rag, norm, collection, judge, k, robustness, panel_names, aggregate, engine)
    try:
        t_run = time.perf_counter()
        started = datetime.now(UTC).isoformat(timespec="seconds")
        outcomes: list[ItemOutcome] = []
        for i, item in enumerate(norm):
            if progress:
                progress(i, len(norm), item["id"])
            outcomes.append(evaluate_item(ctx, item))
        if progress:
            progress(len(norm), len(norm), "")
        retrieval = retrieval_summary(ctx, norm, outcomes)
        return build_result(ctx, outcomes, retrieval, started, time.perf_counter() - t_run)
    finally:
        if ctx.owns_judge_llm:
            ctx.judge_llm.close()

