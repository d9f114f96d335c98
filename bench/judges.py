"""How far to trust a judge: the proxy judge (and with `--llm` the packaged SmolLM2-135M GGUF as LLM judge) against
the hand-labelled statements of data/eval/judge_statements.jsonl.

    python -m bench.judges [--llm [--model qwen2.5-coder-1.5b]] [--json] [--path FILE] [--threads N]

The measuring (accuracy, precision/recall/F1 for "unsupported", Cohen's kappa, agreement between judges) is
bench.judge_accuracy; this entry point builds the judges, the LLM through localrag.app.llm.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.judge_accuracy import STATEMENTS, evaluate_judges, format_report, load_statements


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Idle OpenMP threads sleep instead of spinning: on 2 cores shared with other processes, spinning made one MiniLM
    # forward take ~500 ms instead of ~15 ms, and SmolLM2 calls ~10x slower. Read when torch/llama.cpp load.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    ap = argparse.ArgumentParser(prog="python -m bench.judges", description=__doc__.split("\n\n")[0])
    ap.add_argument("--llm", action="store_true", help="also judge with the packaged SmolLM2 GGUF (slow: ~1 s/stmt)")
    ap.add_argument("--json", action="store_true", help="print the full report as JSON")
    ap.add_argument("--path", type=Path, default=STATEMENTS, help="statements file (JSON lines)")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads for --llm")
    ap.add_argument("--model", default=None, help="the LLM judge's model for --llm: a packaged name "
                    "(qwen2.5-coder-1.5b, ...) or a .gguf path (default: the packaged SmolLM2)")
    args = ap.parse_args(argv)

    from localrag.eval.scoring import LLMJudge, ProxyScorer
    from localrag.index.embedder import Embedder

    statements = load_statements(args.path)
    embedder = Embedder()
    _ = embedder.dim  # load the model before anything is timed
    llm_judge = None
    if args.llm:
        from localrag.app.llm import LlamaCppLLM

        llm_judge = LLMJudge(LlamaCppLLM(args.model, n_ctx=2048, n_threads=args.threads), embedder)
    report = evaluate_judges(statements, ProxyScorer(embedder), llm_judge)
    if llm_judge is not None:
        report["llm_stats"] = dict(llm_judge.stats)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
