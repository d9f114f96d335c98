"""Model x answer mode x compressed context on the dev (choose) or test (report) halves of the labelled QA sets
(issue 22): which packaged model and mode answer best within the latency goal.

    python -m bench.answer_grid --split dev --models qwen2.5-coder-0.5b,qwen2.5-coder-1.5b --compress 450
    python -m bench.answer_grid --split test --models qwen2.5-coder-0.5b --compress 450 --json
    python -m bench.answer_grid --evidence --split dev            # what compression costs in evidence (no LLM)
    python -m bench.answer_grid --sets sample,articles,pydocs,pyhowto --split dev   # every labelled QA set

Sets (`SETS`): `sample` (data/eval/qa.jsonl), `articles` (qa_articles.jsonl), `pydocs` (qa_pydocs.jsonl over the
python-docs corpus) and `pyhowto` (qa_pyhowto.jsonl over python-howto); the two Python corpora are prepared from
Debian's python3-doc by bench.corpora into bench-out/corpus-<corpus> when asked for (data/eval/README.md).

One pass per (model, compress, question) runs the stages of `localrag.app.ask` directly: retrieval and the
numbered sources, the extractive quote (its time is the **first words** of auto mode), then the model's answer
over the same numbered sources (guardrails, retries). The three modes are read off that pass:

* **extractive**: the quote (or its abstention);
* **generative**: the model's answer (its abstention when it says "I don't know" or fails its checks);
* **auto**: the model's answer when it passes its checks, else the quote, else the abstention (app.ask.auto).

Grades are bench.answer_modes.grade: grounded (a cited chunk holds the evidence or the quotes state the key facts,
every quote verbatim in its chunk), key facts, abstention on unanswerable questions; seconds per answer (to the
quote, and to the full generated answer). `--evidence` reports, for each compression budget, the share of
answerable questions whose evidence (the `relevant` spec) is still in what the model reads.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from bench.answer_modes import Graded, _Ctx, grade, load_set, log, summarize  # noqa: E402
from bench.corpora import CorpusError, corpus_folder  # noqa: E402
from localrag.app import ask  # noqa: E402
from localrag.app.answering import Outcome  # noqa: E402
from localrag.app.answering.compress import compress_sources  # noqa: E402
from localrag.eval.retrieval_metrics import spec_matches  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETS: dict[str, tuple[Path, Path | str]] = {  # name: (QA file, corpus: a folder, or a bench.corpora corpus name)
    "sample": (ROOT / "data/eval/qa.jsonl", ROOT / "data/sample"),
    "articles": (ROOT / "data/eval/qa_articles.jsonl", ROOT.parent / "shared/corpora/articles"),
    "pydocs": (ROOT / "data/eval/qa_pydocs.jsonl", "python-docs"),
    "pyhowto": (ROOT / "data/eval/qa_pyhowto.jsonl", "python-howto"),
}
MODES = ("extractive", "generative", "auto")


def set_corpus(name: str) -> Path:
    """The folder to ingest for QA set `name`: its folder, or for a corpus named by bench.corpora (the Python docs
    corpora, prepared from Debian's python3-doc) that corpus prepared on demand into bench-out/corpus-<corpus>
    (a CorpusError says what to install when the docs are missing)."""
    corpus = SETS[name][1]
    if isinstance(corpus, Path):
        return corpus
    return corpus_folder(corpus, dest=ROOT / "bench-out" / f"corpus-{corpus}")


def _answer(ctx: _Ctx, opts: ask.AskOptions, body: Outcome, item: dict[str, Any], secs: float,
            extra: dict[str, Any]) -> Graded:
    ans = ask.finish(opts, body, standalone=item["question"], corpus_version=0, clock=ask.Clock())
    return grade(item, ans, secs, ctx.chunk_texts([c.chunk_id for c in ans.citations]), extra)


def one_pass(ctx: _Ctx, item: dict[str, Any]) -> dict[str, Graded]:
    """The three modes of one question from one run of the stages (see the module docstring)."""
    rag = ctx.rag
    t0 = time.perf_counter()
    opts = rag.ask_options(item["question"], answer_mode="auto", cache=False)
    got = ask.retrieve(rag, opts, item["question"], ask.Clock())
    if not got.relevant:
        idk = ask.no_sources(opts, got, "none")
        secs = time.perf_counter() - t0
        return {m: _answer(ctx, opts, idk, item, secs, {"first_words_s": secs}) for m in MODES}
    quote = ask.extractive(rag, opts, item["question"], got.relevant, mode="extractive")
    t_quote = time.perf_counter() - t0
    gen: Outcome | None = None
    if quote.sources:
        for event in ask.answerer(rag, opts).write(item["question"], quote.sources, stream=False):
            if isinstance(event, Outcome):
                gen = event
    t_gen = time.perf_counter() - t0
    gen = gen or quote
    gen.mode = "generative"
    if gen is not quote:
        ask.check(rag, opts, item["question"], gen)  # the checking model's P(yes) (answer.verify_model), for auto
    checked_quote = stand = copy.deepcopy(quote)
    not_used = gen.abstained or ask.doubt(gen, quote, opts) is not None
    if not_used:
        stand = ask.stand_in(rag, opts, item["question"], checked_quote)  # as app.ask.auto: the quote that stands in
    t_checked = time.perf_counter() - t0
    auto = ask.choose(stand, copy.deepcopy(gen), opts)  # the product's rule, its settings
    probes = []  # to choose answer.verify_alternatives: the next-best quotes, each checked and graded
    if stand is checked_quote and not_used:
        for alt in checked_quote.alternatives[:ctx.probe_alternatives]:
            if alt.verified_p is None:
                ask.check(rag, opts, item["question"], alt)
            g = _answer(ctx, opts, copy.deepcopy(alt), item, 0.0, {})
            probes.append({"p": alt.verified_p, "grounded": g.grounded, "key_facts_ok": g.key_facts_ok})
    extra = {"first_words_s": t_quote, "generated_s": t_gen, "checked_s": t_checked, "quote_score": quote.support,
             "verified_p": gen.verified_p, "gen_abstained": gen.abstained, "quote_verified_p": checked_quote.verified_p,
             "abstain_p": gen.abstain_p, "ttft_s": gen.timings.get("ttft"), "attempts": gen.attempts,
             "gen_abstain": gen.abstain_reason,
             "guardrails": [g["name"] for g in gen.guardrails], "prompt_tokens": gen.tokens.get("prompt"),
             "stand_in": None if stand is checked_quote else stand.verified_p, "probes": probes}
    return {
        "extractive": _answer(ctx, opts, quote, item, t_quote, extra),
        "generative": _answer(ctx, opts, gen, item, t_gen, extra),
        "auto": _answer(ctx, opts, auto, item, t_checked if gen is not quote else t_quote, extra),
    }


def run_grid(sets: list[str], split: str, models: list[str], budgets: list[int], limit: int | None,
             out: Any, ids: set[str] | None = None, probe: int = 0, settings: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    res: dict[str, Any] = {"split": split, "cells": {}}
    for model in models:
        for budget in budgets:
            rows: dict[str, list[Graded]] = {m: [] for m in MODES}
            per_set: dict[str, dict[str, Any]] = {}
            for name in sets:
                qa, _ = SETS[name]
                items = [i for i in load_set(qa, split) if ids is None or i["id"] in ids][:limit]
                ctx = _Ctx(set_corpus(name), ROOT / f"bench-out/grid-{name}", generative=True)
                ctx.rag.close()
                from localrag.app.rag import Rag

                ctx.rag = Rag.open(ctx.data_dir, score_answers=False, llm_model=model, answer_compress_tokens=budget,
                                   embedder=ctx.embedder, **(settings or {}))
                ctx.probe_alternatives = probe
                set_rows: dict[str, list[Graded]] = {m: [] for m in MODES}
                for k, item in enumerate(items, 1):
                    graded = one_pass(ctx, item)
                    for m, g in graded.items():
                        set_rows[m].append(g)
                        rows[m].append(g)
                        if out is not None:
                            out.write(json.dumps({"model": model, "compress": budget, "set": name, "mode": m,
                                                  **asdict(g)}, default=str) + "\n")
                            out.flush()
                    a = graded["auto"]
                    log(f"  {model} c{budget} {name} [{k}/{len(items)}] {item['id']}: "
                        f"{'IDK' if a.abstained else a.text[:70]!r} {a.extra.get('generated_s', 0):.1f} s")
                per_set[name] = {m: summarize(r) for m, r in set_rows.items()}
                ctx.rag.close()
            cell = {m: summarize(r) for m, r in rows.items()}
            for m, r in rows.items():
                fw = [g.extra["first_words_s"] for g in r if "first_words_s" in g.extra]
                cell[m]["median_first_words_s"] = statistics.median(fw) if fw else None
            res["cells"][f"{model} · compress {budget}"] = {"all": cell, "sets": per_set}
    return res


def evidence(sets: list[str], split: str, budgets: list[int]) -> dict[str, Any]:
    """Share of answerable questions whose evidence spec is in the sources the model reads, per budget (0 = whole
    chunks, the reference), counted with the Qwen tokenizer's stand-in: the embedder's (no LLM is loaded)."""
    out: dict[str, Any] = {}
    for name in sets:
        qa, _ = SETS[name]
        ctx = _Ctx(set_corpus(name), ROOT / f"bench-out/grid-{name}", generative=False)
        items = [i for i in load_set(qa, split) if i["answerable"]]
        counts = {b: 0 for b in budgets}
        tokens = {b: [] for b in budgets}
        for item in items:
            sources, _ = ctx.sources(item["question"])
            for b in budgets:
                shown = sources if b == 0 else compress_sources(item["question"], sources, ctx.embedder,
                                                                ctx.count_tokens, budget=b)
                tokens[b].append(sum(ctx.count_tokens(s.text) for s in shown))
                counts[b] += any(spec_matches(spec, s.source, s.text, s.page, s.kg_uri)
                                 for spec in item["relevant"] for s in shown)
        out[name] = {str(b): {"evidence_kept": counts[b] / len(items), "median_tokens": statistics.median(tokens[b])}
                     for b in budgets} | {"answerable": len(items)}
        ctx.rag.close()
    return out


def format_grid(res: dict[str, Any]) -> str:
    lines = [f"split {res['split']}", "| cell | mode | grounded | key facts | abstain | answered | first words p50 | "
             "answer p50 | p95 |", "|---|---|---|---|---|---|---|---|---|"]

    def pct(x: Any) -> str:
        return "-" if x is None else f"{100 * x:.0f} %"

    for cell, data in res["cells"].items():
        for m, s in data["all"].items():
            lines.append(f"| {cell} | {m} | {pct(s['grounded'])} | {pct(s['key_facts'])} | "
                         f"{pct(s['abstain_unanswerable'])} | {pct(s['answered'])} | "
                         f"{s.get('median_first_words_s') or 0:.2f} s | {s['median_s']:.2f} s | {s['p95_s']:.2f} s |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--sets", default="sample,articles", help=f"comma-separated: {', '.join(SETS)}")
    ap.add_argument("--models", default="qwen2.5-coder-0.5b", help="model names or .gguf paths, comma-separated")
    ap.add_argument("--compress", default="450", help="answer_compress_tokens values, comma-separated (0: off)")
    ap.add_argument("--limit", type=int, default=None, help="only the first N questions of each set")
    ap.add_argument("--evidence", action="store_true", help="only what compression keeps of the evidence (no LLM)")
    ap.add_argument("--out", type=Path, help="one JSON line per graded answer")
    ap.add_argument("--ids", help="only these question ids (comma-separated)")
    ap.add_argument("--probe-alternatives", type=int, default=0, help="when the generated answer is not used and no "
                    "quote stood in, check and grade this many next-best quotes too (to choose "
                    "answer.verify_alternatives on dev)")
    ap.add_argument("--verify-alternatives", type=int, help="answer.verify_alternatives for this run")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sets = [s for s in args.sets.split(",") if s]
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        ap.error(f"unknown set(s) {', '.join(unknown)}: choose from {', '.join(SETS)}")
    try:
        for name in sets:  # prepare every corpus first: a missing one fails now, not after an hour of answers
            set_corpus(name)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    budgets = [int(b) for b in args.compress.split(",")]
    if args.evidence:
        res = evidence(sets, args.split, sorted(set([0, *budgets])))
        print(json.dumps(res, indent=2))
        return 0
    out = args.out.open("w", encoding="utf-8") if args.out else None
    try:
        settings = ({} if args.verify_alternatives is None
                    else {"answer_verify_alternatives": args.verify_alternatives})
        res = run_grid(sets, args.split, [m for m in args.models.split(",") if m], budgets, args.limit, out,
                       ids=set(args.ids.split(",")) if args.ids else None, probe=args.probe_alternatives,
                       settings=settings)
    finally:
        if out is not None:
            out.close()
    print(json.dumps(res, indent=2, default=str) if args.json else format_grid(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
