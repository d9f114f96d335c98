"""`localrag eval`: run a QA set through retrieval, answering and scoring, and write a report with charts.

A QA file has one JSON object per line:

    {"id": "a01", "question": "...", "reference": "short answer", "relevant": [{"source": "f.md", "contains": "..."}]}
    {"id": "u01", "question": "...", "reference": "", "answerable": false}

`reference` (optional) is the reference answer: it enables context recall. `relevant` (optional) lists the evidence
as in data/eval/retrieval.jsonl; items that have it get recall@k, MRR@10 and nDCG@10 through ir-measures, with the
matching rule of eval/retrieval_eval.py. An item whose reference is "" (or null with `"answerable": false`) is
unanswerable from the corpus: it counts as correct when the system abstains, and an answerable item counts as
correct when it answers. That is the abstention accuracy.

Scores come from the fast proxy judge (eval.scoring.ProxyScorer, the one `ask` uses); `judge="llm"` adds
eval.scoring.LLMJudge with the app's LLM next to it, each labelled. A metric that cannot be scored is None with its
reason and is counted as unscored, never NaN. `robustness=N` asks each question N more times with non-semantic
perturbations (spacing, punctuation, zero-width joiners, case) and reports how far the answers' embeddings spread
around their centroid (mean cosine deviation; 0 = the same answer every time).

This module does not import app/ (eval/ sits below it): the caller passes an open `app.rag.Rag`.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from localrag.eval.retrieval_eval import LabeledQuery, measure, spec_matches

__all__ = [
    "EvalInputError", "JUDGE_CAVEAT", "PERTURBATIONS", "load_items", "normalize_item", "perturb", "run_eval",
    "summary_rows", "write_report",
]

SPEC_KEYS = {"source", "contains", "page", "uri"}
ITEM_KEYS = {"id", "question", "reference", "relevant", "answerable", "type"}
STAGES = ("retrieve", "ttft", "generate", "guardrails", "score", "judge", "panel", "ragas", "total")
PERTURBATIONS = ("spaces", "punctuation", "zero-width", "case", "padding")
ZWJ = "\u200d"
JUDGE_CAVEAT = (
    "The LLM judge uses the configured LLM ({model}). The bundled SmolLM2-135M model is NOT a reliable judge: "
    "it is far too small to decompose answers into claims and check them against sources, so its verdicts on the "
    "hand-labelled statements of data/eval/judge_statements.jsonl are not trustworthy (measure it with "
    "`python -m eval.judge_eval --llm`). Read its scores as a check that the pipeline runs, not as answer quality; "
    "point LOCALRAG_LLM_MODEL at a capable instruction model for judging that means something."
)
PROXY_NOTE = (
    "Proxy scores are heuristics without an LLM (embedding similarity and word overlap between the answer, its "
    "cited sources, the question and the reference): fast and repeatable, but they measure support, not truth."
)

ProgressFn = Callable[[int, int, str], None]


class EvalInputError(ValueError):
    """A QA file or item that cannot be evaluated (the CLI's exit code 2); the message names the line."""


# --- input -----------------------------------------------------------------------------------------------------
def normalize_item(obj: Any, where: str = "item") -> dict[str, Any]:
    """One QA item checked and completed (answerable decided, specs validated), so that a bad label is caught
    before the slow part starts rather than turning into a misleading score."""
    if not isinstance(obj, dict):
        raise EvalInputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = set(obj) - ITEM_KEYS
    if unknown:
        raise EvalInputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    q = obj.get("question")
    if not isinstance(q, str) or not q.strip():
        raise EvalInputError(f"{where}: 'question' must be a non-empty string")
    ref = obj.get("reference")
    if ref is not None and not isinstance(ref, str):
        raise EvalInputError(f"{where}: 'reference' must be a string or null")
    flag = obj.get("answerable")
    if flag is not None and not isinstance(flag, bool):
        raise EvalInputError(f"{where}: 'answerable' must be true or false")
    specs = obj.get("relevant") or []
    if not isinstance(specs, list):
        raise EvalInputError(f"{where}: 'relevant' must be a list of evidence specs")
    for n, spec in enumerate(specs, start=1):
        if not isinstance(spec, dict) or not isinstance(spec.get("source"), str) or not spec["source"].strip():
            raise EvalInputError(f"{where}: relevant[{n}] needs a 'source' (a file name)")
        bad = set(spec) - SPEC_KEYS
        if bad:
            raise EvalInputError(f"{where}: relevant[{n}] has unknown key(s) {', '.join(sorted(bad))}")
        if "contains" in spec and (not isinstance(spec["contains"], str) or not spec["contains"].strip()):
            raise EvalInputError(f"{where}: relevant[{n}].contains must be a non-empty string")
        if "page" in spec and (not isinstance(spec["page"], int) or isinstance(spec["page"], bool)):
            raise EvalInputError(f"{where}: relevant[{n}].page must be an integer")
        if "uri" in spec and not isinstance(spec["uri"], str):
            raise EvalInputError(f"{where}: relevant[{n}].uri must be a string")
    empty_ref = isinstance(ref, str) and not ref.strip()
    unanswerable = flag is False or (empty_ref and flag is None)
    if flag is True and empty_ref:
        raise EvalInputError(f"{where}: 'answerable' is true but the reference is empty")
    if unanswerable and ref and ref.strip():
        raise EvalInputError(f"{where}: an unanswerable item cannot have a reference answer")
    if unanswerable and specs:
        raise EvalInputError(f"{where}: an unanswerable item cannot list relevant evidence")
    item_id = obj.get("id")
    if item_id is not None and not isinstance(item_id, str | int):
        raise EvalInputError(f"{where}: 'id' must be a string or a number")
    return {
        "id": None if item_id is None else str(item_id), "question": q.strip(),
        "reference": ref.strip() if ref and ref.strip() else None, "answerable": not unanswerable,
        "relevant": [dict(s) for s in specs], "type": str(obj.get("type") or ""),
    }


def load_items(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Read a QA file (JSON lines; blank lines and lines starting with '#' are skipped). Raises EvalInputError
    naming the file and line for a missing file, bad JSON or a bad item."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise EvalInputError(f"{path}: is a folder, not a QA file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalInputError(f"{path}: cannot read it ({exc})") from None
    items: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvalInputError(f"{path}:{n}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        item = normalize_item(obj, f"{path}:{n}")
        item["id"] = item["id"] or f"line{n}"
        if item["id"] in seen:
            raise EvalInputError(f"{path}:{n}: duplicate id {item['id']!r} (first on line {seen[item['id']]})")
        seen[item["id"]] = n
        items.append(item)
    if not items:
        raise EvalInputError(f"{path}: no QA items")
    return items[:limit] if limit else items


# --- perturbations for harmonic robustness ------------------------------------------------------------------------
def perturb(question: str, i: int, seed: int | str = 0) -> str:
    """The i-th non-semantic variant of a question (deterministic per seed): the meaning stays, the characters
    change, so a robust system gives (nearly) the same answer."""
    rng = random.Random(f"{seed}:{i}")
    kind = PERTURBATIONS[i % len(PERTURBATIONS)]
    words = question.split(" ")
    if kind == "spaces" and len(words) > 1:
        gaps = rng.sample(range(len(words) - 1), k=max(1, (len(words) - 1) // 3))
        out = "".join(w + (" " * rng.choice((2, 3)) if j in gaps else " " if j < len(words) - 1 else "")
                      for j, w in enumerate(words))
    elif kind == "punctuation":
        out = question.rstrip(" ?.!") + rng.choice(("??", "?!", " ?", "...?", "?.", "???"))
    elif kind == "zero-width":
        long = [j for j, w in enumerate(words) if len(w) >= 4] or list(range(len(words)))
        for j in rng.sample(long, k=min(len(long), 2)):
            w = words[j]
            at = rng.randrange(1, len(w)) if len(w) > 1 else 1
            words[j] = w[:at] + ZWJ + w[at:]
        out = " ".join(words)
    elif kind == "case":
        out = rng.choice((str.lower, str.upper, lambda s: s[:1].swapcase() + s[1:]))(question)
    else:
        out = rng.choice(("  ", "\t", "\n")) + question + rng.choice(("  ", " \n", "\t"))
    return out if out != question else question + " "


def _spread(vectors: np.ndarray) -> float:
    """Mean cosine deviation of unit vectors from their (normalized) centroid: 0 when all are identical."""
    v = np.asarray(vectors, dtype=np.float64)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    c = v.mean(axis=0)
    c = c / max(float(np.linalg.norm(c)), 1e-12)
    return float(np.mean(1.0 - np.clip(v @ c, -1.0, 1.0)))


# --- running -----------------------------------------------------------------------------------------------------
def _chunk_rows(store: Any, collection_id: int) -> list[tuple]:
    """(chunk id, source, text, page, kg_uri) of every chunk, read once to resolve all evidence specs."""
    from sqlalchemy import select

    from localrag.index.store import ChunkRow, DocumentRow

    with store.session() as s:
        return list(s.execute(
            select(ChunkRow.id, DocumentRow.source, ChunkRow.text, ChunkRow.page, ChunkRow.kg_uri)
            .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
            .where(ChunkRow.collection_id == collection_id)
        ).all())


def _units(item_id: str, specs: list[dict[str, Any]], rows: list[tuple]) -> dict[int, list[str]]:
    """chunk id -> the evidence units (`id/n`) it holds; a spec that matches no chunk is a labelling error."""
    units: dict[int, list[str]] = {}
    for n, spec in enumerate(specs):
        hits = [cid for cid, source, text, page, uri in rows if spec_matches(spec, source, text, page, uri)]
        if not hits:
            raise ValueError(f"evidence {json.dumps(spec, ensure_ascii=False)} matches no chunk of the collection")
        for cid in hits:
            units.setdefault(cid, []).append(f"{item_id}/{n}")
    return units


def _answer_record(ans: Any) -> dict[str, Any]:
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


def _retrieval_metrics(answer_k: int) -> tuple[str, ...]:
    return tuple(dict.fromkeys((f"R@{answer_k}", "R@5", "R@10", "RR@10", "nDCG@10")))


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
    if judge not in ("proxy", "llm"):
        raise ValueError(f"judge must be 'proxy' or 'llm', got {judge!r}")
    panel = list(dict.fromkeys(panel or []))
    if any(p not in PANEL_JUDGES for p in panel):
        raise ValueError(f"panel judges must be among {', '.join(PANEL_JUDGES)}, got {', '.join(panel)}")
    if engine not in (None, "ours", "ragas"):
        raise ValueError(f"engine must be 'ragas' (or None), got {engine!r}")
    if robustness < 0:
        raise ValueError(f"robustness must be >= 0, got {robustness}")
    norm: list[dict[str, Any]] = []
    for i, raw in enumerate(items, start=1):
        item = normalize_item(raw, f"item {i}")  # idempotent: items from load_items pass unchanged
        norm.append({**item, "id": item.get("id") or f"item{i}"})
    if len({it["id"] for it in norm}) != len(norm):
        raise EvalInputError("duplicate item ids")
    coll = rag.store.collection(collection)
    if coll is None:
        raise ValueError(f"no collection {collection!r}: ingest your documents first")
    answer_k = int(k or getattr(rag.settings, "answer_k", 4))
    depth = max(10, answer_k)
    metric_names = _retrieval_metrics(answer_k)
    rows = _chunk_rows(rag.store, coll.id) if any(it["relevant"] for it in norm) else []
    llm_judge = None
    if judge == "llm":
        from localrag.eval.scoring import LLMJudge

        llm_judge = LLMJudge(rag.llm, rag.embedder)
    judge_panel = _make_panel(rag, panel, aggregate, llm_judge) if panel else None
    ragas_engine = _make_ragas(rag) if engine == "ragas" else None

    t_run = time.perf_counter()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    records: list[dict[str, Any]] = []
    queries: list[LabeledQuery] = []
    units: dict[str, dict[int, list[str]]] = {}
    run: dict[str, list[int]] = {}
    model_id = None
    total = len(norm)
    for i, item in enumerate(norm):
        if progress:
            progress(i, total, item["id"])
        rec: dict[str, Any] = {
            "id": item["id"], "type": item["type"], "question": item["question"], "reference": item["reference"],
            "answerable": item["answerable"], "relevant": item["relevant"], "error": None,
        }
        try:
            q = item["question"]
            timings: dict[str, float] = {}
            if item["relevant"]:
                item_units = _units(item["id"], item["relevant"], rows)
                res = rag.search(q, k=depth, collection=collection)
                ranked = [h.chunk_id for h in res]
                rec["retrieved"] = [{"chunk_id": h.chunk_id, "source": h.source.rsplit("/", 1)[-1],
                                     "relevance": round(float(h.relevance), 4),
                                     "evidence": item_units.get(h.chunk_id, [])} for h in res]
            ans = rag.ask(q, collection=collection, k=k, cache=False, temperature=0)
            model_id = model_id or ans.model_id
            timings.update({s: float(v) for s, v in ans.timings.items() if isinstance(v, int | float)})
            rec["answer"] = _answer_record(ans)
            rec["abstained"] = bool(ans.abstained)
            rec["correct"] = rec["abstained"] != item["answerable"]
            t = time.perf_counter()
            proxy = rag.score_answer(q, ans, reference=item["reference"])
            timings["score"] = time.perf_counter() - t
            rec["scores"] = {proxy.get("judge", "proxy"): proxy}
            if llm_judge is not None:
                by_n = {s.n: s.text for s in ans.sources}
                cited = {c.n: by_n[c.n] for c in ans.citations if c.n in by_n}
                t = time.perf_counter()
                llm_scores = llm_judge.score(q, ans.text, [s.text for s in ans.sources], cited=cited or None,
                                             reference=item["reference"], abstained=ans.abstained)
                scored = llm_scores.to_dict()
                timings["judge"] = time.perf_counter() - t
                rec["scores"][scored["judge"]] = scored
            if judge_panel is not None or ragas_engine is not None:
                by_n = {s.n: s.text for s in ans.sources}
                args = (q, ans.text, [s.text for s in ans.sources])
                kw = {"cited": {c.n: by_n[c.n] for c in ans.citations if c.n in by_n} or None,
                      "reference": item["reference"], "abstained": ans.abstained,
                      "metrics": ["faithfulness", "answer_relevancy", "context_precision"]
                      + (["context_recall"] if item["reference"] else [])}
                if judge_panel is not None:
                    t = time.perf_counter()
                    reuse = {i: llm_scores for i, j in enumerate(judge_panel.judges)
                             if llm_judge is not None and j is llm_judge}
                    pooled = judge_panel.score(*args, **kw, reuse=reuse).to_dict()
                    timings["panel"] = time.perf_counter() - t
                    rec["scores"][pooled["judge"]] = pooled
                if ragas_engine is not None:
                    t = time.perf_counter()
                    rs = ragas_engine.score(*args, **kw).to_dict()
                    timings["ragas"] = time.perf_counter() - t
                    rec["scores"][rs["judge"]] = rs
            if robustness:
                variants = [perturb(q, j, item["id"]) for j in range(robustness)]
                answers = [rag.ask(v, collection=collection, k=k, cache=False, temperature=0) for v in variants]
                texts = [ans.text] + [a.text for a in answers]
                rec["robustness"] = {
                    "n": robustness, "deviation": round(_spread(rag.embedder.encode(texts)), 6),
                    "abstain_flips": sum(bool(a.abstained) != bool(ans.abstained) for a in answers),
                    "variants": [{"question": v, "kind": PERTURBATIONS[j % len(PERTURBATIONS)],
                                  "abstained": bool(a.abstained), "text": a.text}
                                 for j, (v, a) in enumerate(zip(variants, answers, strict=True))],
                }
            rec["timings"] = {s: round(v, 4) for s, v in timings.items()}
            if item["relevant"]:
                queries.append(LabeledQuery(item["id"], q, item["type"], item["relevant"]))
                units[item["id"]] = item_units
                run[item["id"]] = ranked
        except Exception as exc:  # noqa: BLE001 - one item's failure is reported, the others still run
            rec["error"] = f"{type(exc).__name__}: {exc}"
            for key in ("answer", "abstained", "correct", "scores", "robustness", "retrieved"):
                rec.pop(key, None)
        records.append(rec)
    if progress:
        progress(total, total, "")

    retrieval = None
    if queries:
        m = measure(queries, units, run, metric_names)
        for rec in records:
            if rec["id"] in m["per_query"]:
                rec["retrieval"] = m["per_query"][rec["id"]]
        retrieval = {"metrics": list(metric_names), "n": m["n"], "depth": depth, "overall": m["overall"],
                     "by_type": m["by_type"]}
    failed = [r for r in records if r["error"]]
    result = {
        "created": started, "seconds": round(time.perf_counter() - t_run, 2),
        "settings": {"collection": collection, "judge": judge, "k": answer_k, "retrieval_depth": depth,
                     "robustness": robustness, "temperature": 0, "cache": False},
        "model_id": model_id, "judges": _judge_labels(records),
        "n_items": len(records), "n_failed": len(failed),
        "abstention": _abstention(records), "retrieval": retrieval, "scores": _score_summary(records),
        "latency": _latency(records), "robustness": _robustness(records) if robustness else None,
        "notes": [PROXY_NOTE] + ([JUDGE_CAVEAT.format(model=llm_judge.judge)] if llm_judge is not None else []),
        "errors": [{"id": r["id"], "error": r["error"]} for r in failed],
        "items": records, "exit_code": 1 if failed else 0,
    }
    if llm_judge is not None:
        result["llm_judge_stats"] = dict(llm_judge.stats)
    if judge_panel is not None:
        result["settings"]["panel"], result["settings"]["aggregate"] = panel, aggregate
        result["panel"] = _panel_summary(judge_panel, records)
        if "llm" in panel and llm_judge is None:
            result["notes"].append(JUDGE_CAVEAT.format(model=_llm_label(rag)))
    if ragas_engine is not None:
        result["settings"]["engine"] = "ragas"
        result["notes"].append(RAGAS_NOTE)
    return _finite(result)


PANEL_JUDGES = ("proxy", "llm")
RAGAS_NOTE = (
    "The ragas columns come from the official ragas library on the same LLM and embeddings: a metric ragas "
    "returned as NaN is reported unscored (\"ragas returned NaN\"), never as a number."
)


def _llm_label(rag: Any) -> str:
    return f"llm:{getattr(rag.llm, 'model_id', type(rag.llm).__name__)}"


def _make_panel(rag: Any, names: Sequence[str], aggregate: str, llm_judge: Any = None) -> Any:
    """A JudgePanel of the named judges (an LLM judge the run already has is reused, not built twice)."""
    from localrag.eval.panel import JudgePanel
    from localrag.eval.scoring import LLMJudge, ProxyScorer

    judges = [ProxyScorer(rag.embedder) if n == "proxy" else llm_judge or LLMJudge(rag.llm, rag.embedder)
              for n in names]
    return JudgePanel(judges, aggregate=aggregate)


def _make_ragas(rag: Any) -> Any:
    """The ragas engine on the app's LLM server; RagasUnavailableError without the extra or a server."""
    from localrag.eval.ragas_engine import RagasEngine, RagasUnavailableError, require_ragas

    require_ragas()
    st = rag.settings
    url = getattr(st, "llm_base_url", None) if getattr(st, "llm_backend", None) == "openai" else None
    if not url:
        from localrag.eval.ragas_engine import _NEEDS_SERVER

        raise RagasUnavailableError(_NEEDS_SERVER)
    return RagasEngine(url, rag.embedder, model=getattr(st, "llm_model", None))


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


# --- summaries ---------------------------------------------------------------------------------------------------
def _judge_labels(records: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(j for r in records for j in (r.get("scores") or {})))


def _abstention(records: list[dict[str, Any]]) -> dict[str, Any]:
    done = [r for r in records if not r["error"]]
    ans = [r for r in done if r["answerable"]]
    una = [r for r in done if not r["answerable"]]
    answered = sum(not r["abstained"] for r in ans)
    abstained = sum(r["abstained"] for r in una)
    return {
        "n": len(done), "correct": answered + abstained,
        "accuracy": (answered + abstained) / len(done) if done else None,
        "answerable": {"n": len(ans), "answered": answered, "rate": answered / len(ans) if ans else None},
        "unanswerable": {"n": len(una), "abstained": abstained, "rate": abstained / len(una) if una else None},
    }


def _stats(values: Sequence[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"n": len(values), "mean": statistics.fmean(values), "median": statistics.median(values),
            "min": min(values), "max": max(values)}


def _score_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per judge and metric: statistics of the scored values, how many were unscored and why."""
    out: dict[str, Any] = {}
    for judge in _judge_labels(records):
        metrics: dict[str, Any] = {}
        for r in records:
            s = (r.get("scores") or {}).get(judge)
            if not s:
                continue
            for name, value in s.get("values", {}).items():
                m = metrics.setdefault(name, {"values": [], "unscored": Counter()})
                if value is None:
                    m["unscored"][(s.get("unscored") or {}).get(name) or "unscored"] += 1
                else:
                    m["values"].append(float(value))
        out[judge] = {name: {**_stats(m["values"]), "n_unscored": sum(m["unscored"].values()),
                             "unscored_reasons": dict(m["unscored"].most_common())}
                      for name, m in metrics.items()}
    return out


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _latency(records: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for stage in STAGES:
        vals = [r["timings"][stage] for r in records if not r["error"] and stage in r.get("timings", {})]
        if vals:
            out[stage] = {"n": len(vals), "mean": statistics.fmean(vals), "p50": _percentile(vals, 50),
                          "p95": _percentile(vals, 95), "max": max(vals)}
    return out


def _robustness(records: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [r["robustness"] for r in records if r.get("robustness")]
    devs = [x["deviation"] for x in rows]
    return {"n_items": len(rows), "perturbations_per_item": rows[0]["n"] if rows else 0,
            "mean_deviation": statistics.fmean(devs) if devs else None,
            "max_deviation": max(devs) if devs else None,
            "abstain_flips": sum(x["abstain_flips"] for x in rows), "kinds": list(PERTURBATIONS)}


def _finite(x: Any) -> Any:
    """The report with any non-finite float replaced by None: JSON stays strict and nothing reads as NaN."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    if isinstance(x, np.generic):
        return _finite(x.item())
    return x


def _f(x: Any, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.0f}%" if pct else f"{x:.3f}"


def summary_rows(result: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(section, measure, value) rows for a summary table: the CLI and report.md print the same numbers."""
    rows: list[tuple[str, str, str]] = []
    a = result["abstention"]
    rows.append(("items", "run / failed", f"{result['n_items'] - result['n_failed']} / {result['n_failed']}"))
    rows.append(("abstention", "accuracy", f"{_f(a['accuracy'], True)} ({a['correct']} of {a['n']})"))
    rows.append(("abstention", "answered answerable",
                 f"{_f(a['answerable']['rate'], True)} ({a['answerable']['answered']} of {a['answerable']['n']})"))
    rows.append(("abstention", "abstained on unanswerable",
                 f"{_f(a['unanswerable']['rate'], True)} "
                 f"({a['unanswerable']['abstained']} of {a['unanswerable']['n']})"))
    r = result.get("retrieval")
    if r:
        for m in r["metrics"]:
            rows.append(("retrieval", m, f"{_f(r['overall'][m])} (n={r['n']})"))
    for judge, metrics in result["scores"].items():
        for name, m in metrics.items():
            rows.append((f"scores [{judge}]", name, f"{_f(m['mean'])} (scored {m['n']}, unscored {m['n_unscored']})"))
    for stage, s in result["latency"].items():
        rows.append(("latency", stage, f"p50 {s['p50'] * 1000:.0f} ms · p95 {s['p95'] * 1000:.0f} ms"))
    for name, ag in ((result.get("panel") or {}).get("agreement") or {}).items():
        kappa = ag.get("fleiss_kappa")
        rows.append(("panel agreement", name,
                     f"mean |diff| {_f(ag.get('mean_abs_diff'))} · pairs agreeing "
                     f"{_f(ag.get('binary_agreement'), True)} · kappa {_f(kappa)} (n={ag.get('n_compared', 0)})"))
    rob = result.get("robustness")
    if rob:
        rows.append(("robustness", "mean cosine deviation",
                     f"{_f(rob['mean_deviation'])} (n={rob['n_items']}, {rob['perturbations_per_item']} variants, "
                     f"{rob['abstain_flips']} abstain flips)"))
    return rows


# --- report files ------------------------------------------------------------------------------------------------
def _md(text: Any, limit: int | None = None) -> str:
    s = " ".join(str(text if text is not None else "").split())
    if limit and len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("|", "\\|")


def format_markdown(result: dict[str, Any]) -> str:
    """report.md: settings, caveats, the summary table, then one row and one answer per item."""
    st = result["settings"]
    lines = [
        "# localrag eval report", "",
        f"- created: {result['created']} · {result['seconds']} s",
        f"- QA file: {result.get('qa_file', '-')}" + (f" (first {result['limit']})" if result.get("limit") else ""),
        f"- collection: `{st['collection']}` · answer k {st['k']} · retrieval depth {st['retrieval_depth']} · "
        f"judge `{st['judge']}` · robustness {st['robustness']}",
        f"- answering model: `{result.get('model_id') or '-'}`", "",
    ]
    for note in result.get("notes", []):
        lines += [f"> **Note.** {note}", ""]
    lines += ["## Summary", "", "| section | measure | value |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {_md(c)} |" for a, b, c in summary_rows(result)]
    if result.get("errors"):
        lines += ["", "## Failed items", ""]
        lines += [f"- `{e['id']}`: {_md(e['error'], 300)}" for e in result["errors"]]
    judges = result.get("judges", [])
    metrics = list(dict.fromkeys(m for j in judges for m in result["scores"].get(j, {})))
    ret = (result.get("retrieval") or {}).get("metrics", [])
    head = ["id", "answerable", "abstained", "correct"] + ret[:1] + [f"{m} [{j}]" for j in judges for m in metrics]
    lines += ["", "## Items", "", "`correct` means the answer/abstain decision was right (answered an answerable "
              "question, abstained on an unanswerable one); it does not check what the answer says: read the "
              "scores and the answers below for that.", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["items"]:
        if r["error"]:
            lines.append(f"| {r['id']} | {r['answerable']} | error | - |" + " - |" * (len(head) - 4))
            continue
        cells = [r["id"], str(r["answerable"]), str(r["abstained"]), "yes" if r["correct"] else "**no**"]
        cells += [_f((r.get("retrieval") or {}).get(m)) for m in ret[:1]]
        cells += [_f(((r.get("scores") or {}).get(j) or {}).get("values", {}).get(m)) for j in judges for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Answers", ""]
    for r in result["items"]:
        lines.append(f"**{r['id']}** {_md(r['question'])}  ")
        if r.get("reference"):
            lines.append(f"reference: {_md(r['reference'], 300)}  ")
        if r["error"]:
            lines += [f"error: {_md(r['error'], 300)}", ""]
            continue
        a = r["answer"]
        why = f" (abstained: {_md(a['abstain_reason'], 120)})" if a["abstained"] and a["abstain_reason"] else ""
        lines += [f"answer: {_md(a['text'], 600)}{why}", ""]
    lines += ["", "Charts: `scores.png` (score distributions per metric and judge), `latency.png` (per-stage "
              "latency).", ""]
    return "\n".join(lines)


def _plot_scores(result: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    judges = result.get("judges", [])
    metrics = list(dict.fromkeys(m for j in judges for m in result["scores"].get(j, {}))) or ["(no scores)"]
    cols = min(2, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(5.5 * cols, 3.6 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    bins = np.linspace(0.0, 1.0, 11)
    for i, name in enumerate(metrics):
        ax = fig.add_subplot(nrows, cols, i + 1)
        plotted = False
        for j in judges:
            vals = [float(v) for r in result["items"] if not r["error"]
                    for v in [((r.get("scores") or {}).get(j) or {}).get("values", {}).get(name)] if v is not None]
            unscored = (result["scores"].get(j, {}).get(name) or {}).get("n_unscored", 0)
            if vals:
                ax.hist(vals, bins=bins, alpha=0.55, label=f"{j} (n={len(vals)}, unscored {unscored})")
                plotted = True
        if not plotted:
            ax.text(0.5, 0.5, "no scored values", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(fontsize=7)
        ax.set_title(name.replace("_", " "))
        ax.set_xlim(0, 1)
        ax.set_xlabel("score")
        ax.set_ylabel("answers")
    fig.suptitle(f"Score distributions ({result['n_items']} items)")
    fig.savefig(path, format="png", dpi=100)


def _plot_latency(result: dict[str, Any], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    stages = [s for s in STAGES if s in result["latency"]]
    data = [[max(r["timings"][s], 1e-4) for r in result["items"] if not r["error"] and s in r.get("timings", {})]
            for s in stages]
    if stages:
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(stages) + 1), stages)
        ax.set_yscale("log")
    else:
        ax.text(0.5, 0.5, "no timings", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("seconds (log scale)")
    ax.set_title(f"Per-stage latency ({result.get('model_id') or 'no model'})")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, format="png", dpi=100)


def write_report(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write report.json, report.md, scores.png and latency.png into out_dir (created); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "scores.png", out / "latency.png"]
    clean = _finite(result)
    paths[0].write_text(json.dumps(clean, ensure_ascii=False, indent=1, allow_nan=False, default=str) + "\n",
                        encoding="utf-8")
    paths[1].write_text(format_markdown(clean), encoding="utf-8")
    _plot_scores(clean, paths[2])
    _plot_latency(clean, paths[3])
    return paths
