"""Answering benchmark: time to first token, tokens/s and per-stage latency of `ask` on the sample corpus; cache hit
vs miss latency; prompt lookup decoding against plain decoding on the same answer prompts (speed and whether the
greedy output is identical).

    python -m bench.answer [--questions 12] [--threads 2] [--lookup-tokens 10] [--json]
    (or: localrag bench answer)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from localrag.eval.retrieval_metrics import load_queries

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see app/cli.py

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
LABELED = ROOT / "data" / "eval" / "retrieval.jsonl"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    i = min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))
    return s[i]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def questions(n: int, path: Path = LABELED) -> list[str]:
    """The first n answerable labeled questions, alternating the query types so that the mix is stable."""
    by_type: dict[str, list[str]] = {}
    for q in load_queries(path):
        if q.answerable:
            by_type.setdefault(q.type, []).append(q.query)
    out: list[str] = []
    while len(out) < n and any(by_type.values()):
        for t in sorted(by_type):
            if by_type[t] and len(out) < n:
                out.append(by_type[t].pop(0))
    return out


def stage_table(answers: list[Any]) -> dict[str, dict[str, float]]:
    stages = ["cache", "retrieve", "assemble", "ttft", "generate", "guardrails", "score", "total"]
    out = {}
    for st in stages:
        vals = [a.timings[st] for a in answers if st in a.timings]
        if vals:
            out[st] = {"p50_ms": pct(vals, 50) * 1e3, "p95_ms": pct(vals, 95) * 1e3, "n": len(vals)}
    return out


def ask_section(rag: Any, qs: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """1. `ask`, streamed, cache off: TTFT, tokens/s, per stage. Returns the answers and their summary."""
    log(f"ask_stream x {len(qs)} (cache off) ...")
    answers = []
    for q in qs:
        final = None
        for event in rag.ask_stream(q, cache=False, temperature=0):
            final = event
        answers.append(final)
    decode = [a.tokens["completion"] / a.timings["generate"] for a in answers
              if a.tokens.get("completion") and a.timings.get("generate")]
    return answers, {
        "stages": stage_table(answers),
        "answered": sum(not a.abstained for a in answers),
        "abstained": sum(a.abstained for a in answers),
        "attributed": sum(a.attributed for a in answers),
        "attempts_mean": statistics.mean(a.attempts for a in answers),
        "prompt_tokens_mean": statistics.mean(a.tokens["prompt"] for a in answers),
        "completion_tokens_mean": statistics.mean(a.tokens["completion"] for a in answers),
        "tokens_per_s_p50": pct(decode, 50),
        # the inline proxy scores next to generation (goal <= 20 %): summed over the answers that were generated
        "score_vs_generate": (sum(a.timings.get("score", 0.0) for a in answers if "generate" in a.timings)
                              / max(1e-9, sum(a.timings.get("generate", 0.0) for a in answers))),
        "abstain_reasons": [a.abstain_reason for a in answers if a.abstained],
    }


def cache_section(rag: Any, qs: list[str]) -> dict[str, Any]:
    """2. The semantic cache: the first ask is a miss, the same question again is a hit."""
    log("cache: miss then hit ...")
    rag.clear_cache()
    miss, hit = [], []
    cache_qs = qs[: max(3, len(qs) // 3)]
    for q in cache_qs:
        a = rag.ask(q, temperature=0)
        b = rag.ask(q, temperature=0)
        if not a.abstained and b.cached:
            miss.append(a.timings["total"])
            hit.append(b.timings["total"])
    return {
        "pairs": len(miss), "miss_p50_ms": pct(miss, 50) * 1e3, "hit_p50_ms": pct(hit, 50) * 1e3,
        "speedup_p50": (pct(miss, 50) / pct(hit, 50)) if hit else None,
    }


def prompt_lookup_section(plain_llm: Any, answers: list[Any], threads: int | None,
                          lookup_tokens: int) -> dict[str, Any]:
    """3. Prompt lookup decoding vs plain, greedy, on the answer prompts of section 1."""
    from localrag.app.answering import build_messages
    from localrag.app.llm import LlamaCppLLM

    log(f"prompt lookup decoding ({lookup_tokens} draft tokens) vs plain ...")
    prompts = [build_messages(a.question, a.sources) for a in answers if a.sources]
    pld_llm = LlamaCppLLM(n_ctx=plain_llm.n_ctx, n_threads=threads, prompt_lookup=lookup_tokens)
    rows = []
    for msgs in prompts:
        a = plain_llm.generate(msgs, temperature=0, max_tokens=256)
        b = pld_llm.generate(msgs, temperature=0, max_tokens=256)
        rows.append({"plain_s": a.seconds, "pld_s": b.seconds, "identical": a.text == b.text,
                     "plain_tokens": a.completion_tokens, "pld_tokens": b.completion_tokens})
    pld_llm.close()
    plain_total = sum(r["plain_s"] for r in rows)
    pld_total = sum(r["pld_s"] for r in rows)
    return {
        "prompts": len(rows), "draft_tokens": lookup_tokens, "plain_s": plain_total, "pld_s": pld_total,
        "speedup": plain_total / pld_total if pld_total else None,
        "identical": sum(r["identical"] for r in rows),
        "plain_tokens_per_s": sum(r["plain_tokens"] or 0 for r in rows) / plain_total if plain_total else None,
        "pld_tokens_per_s": sum(r["pld_tokens"] or 0 for r in rows) / pld_total if pld_total else None,
    }


def run(n_questions: int = 12, threads: int | None = 2, lookup_tokens: int = 10) -> dict[str, Any]:
    """Ingest data/sample into a fresh data dir, load the LLM, then the three sections in order."""
    from localrag.app.rag import Rag

    t_run = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="localrag-bench-answer-"))
    rag = Rag.open(work / "data", llm_threads=threads)
    log("ingesting data/sample ...")
    rag.ingest([SAMPLE])
    t = time.perf_counter()
    llm = rag.llm
    load_s = time.perf_counter() - t
    qs = questions(n_questions)
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "loadavg_start": os.getloadavg()[0]},
        "model": llm.model_id, "llm_threads": threads, "model_load_s": load_s, "questions": len(qs),
    }
    answers, result["ask"] = ask_section(rag, qs)
    result["cache"] = cache_section(rag, qs)
    result["prompt_lookup"] = prompt_lookup_section(llm, answers, threads, lookup_tokens)
    rag.close()
    result["machine"]["loadavg_end"] = os.getloadavg()[0]
    result["wall_s"] = time.perf_counter() - t_run
    return result


def format_report(r: dict[str, Any]) -> str:
    L = [f"answering benchmark: {r['machine']['cpus']} CPUs, model {r['model']} ({r['llm_threads']} threads, "
         f"load {r['model_load_s']:.2f} s), {r['questions']} labeled questions from data/eval/retrieval.jsonl; "
         f"1-min load average {r['machine']['loadavg_start']:.2f} at start, {r['machine']['loadavg_end']:.2f} at end"]
    a = r["ask"]
    L.append(f"\nask (streamed, cache off, temperature 0): {a['answered']} answered, {a['abstained']} abstained, "
             f"{a['attributed']} with citations added by localrag; mean attempts {a['attempts_mean']:.2f}; "
             f"mean prompt {a['prompt_tokens_mean']:.0f} / completion {a['completion_tokens_mean']:.0f} tokens; "
             f"decode {a['tokens_per_s_p50']:.1f} tokens/s (p50, generate stage incl. retries)")
    L.append(f"inline proxy scoring costs {a['score_vs_generate']:.1%} of generation time (sum over answers)")
    L.append("| stage | p50 ms | p95 ms | n |")
    L.append("|---|---|---|---|")
    for st, v in a["stages"].items():
        L.append(f"| {st} | {v['p50_ms']:.1f} | {v['p95_ms']:.1f} | {v['n']} |")
    c = r["cache"]
    if c["pairs"]:
        L.append(f"\ncache: {c['pairs']} questions, miss p50 {c['miss_p50_ms']:.0f} ms, hit p50 "
                 f"{c['hit_p50_ms']:.2f} ms -> hit is {c['speedup_p50']:.0f}x faster")
    else:
        L.append("\ncache: no answered question to measure (all abstained)")
    p = r["prompt_lookup"]
    if p["prompts"]:
        L.append(f"\nprompt lookup decoding ({p['draft_tokens']} draft tokens) vs plain, greedy, {p['prompts']} answer "
                 f"prompts: plain {p['plain_s']:.2f} s ({p['plain_tokens_per_s']:.1f} tok/s), lookup "
                 f"{p['pld_s']:.2f} s ({p['pld_tokens_per_s']:.1f} tok/s) -> speedup {p['speedup']:.2f}x; "
                 f"identical output {p['identical']}/{p['prompts']}")
    L.append(f"\nwall {r['wall_s']:.0f} s")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    ap.add_argument("--lookup-tokens", type=int, default=10, help="prompt lookup draft tokens")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = run(args.questions, args.threads, args.lookup_tokens)
    print(json.dumps(res, indent=2, default=str) if args.json else format_report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
