"""Tuning the embedder on the corpus's own text (issue 23): dense and hybrid recall@5 / MRR@10 on a labelled
corpus's TEST questions with the base embedder, then `Rag.tune` (questions written by the configured instruct LLM
from the chunk texts only, never from the labelled questions), then the same measures with the collection's model
after the tune, and the time of each stage.

    python -m bench.tune [--corpus sample] [--max-chunks N] [--epochs 3] [--work bench-out/tune] [--always-switch]
        [--keep] [--json]

`--work` is kept between runs: the stored questions are reused (a run resumes where a killed one stopped).
`--always-switch` measures the tuned model on the test questions even when held-out recall@5 did not improve (the
product would keep the base). The collection goes back to its base model at the end unless `--keep`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.retrieval_quality import SYSTEMS, corpora, load_split, open_corpus, run_quality

__all__ = ["main", "run"]

MEASURED = {"dense": SYSTEMS["dense"], "hybrid": SYSTEMS["hybrid-convex"]}  # hybrid: the default search


def _quality(rag: Any, queries: list[Any]) -> dict[str, dict[str, float]]:
    rep = run_quality(rag, k=10, systems=MEASURED, queries=queries)
    return {name: {m: round(r["overall"][m], 4) for m in ("R@5", "RR@10")} for name, r in rep["systems"].items()}


def run(corpus: str, work: Path, max_chunks: int | None, epochs: int, always_switch: bool,
        keep: bool) -> dict[str, Any]:
    from localrag.app.tune import TrainSettings, TuneOptions

    queries = load_split(corpus, "test")
    t0 = time.perf_counter()
    rag = open_corpus(corpus, work)
    ingest_s = time.perf_counter() - t0
    try:
        before = _quality(rag, queries)
        last = {"stage": ""}

        def progress(stage: str, done: int, total: int) -> None:
            if stage != last["stage"] or done == total or done % 10 == 0:
                print(f"  {stage} {done}/{total}", file=sys.stderr, flush=True)
                last["stage"] = stage

        opts = TuneOptions(min_gain=-1.0 if always_switch else 0.0, train=TrainSettings(epochs=epochs))
        report = rag.tune(max_chunks=max_chunks, options=opts, progress=progress)
        after = _quality(rag, queries)
        if report["switched"] and not keep:
            rag.tune(undo=True)
    finally:
        rag.close()
    return {"corpus": corpus, "split": "test", "queries": len(queries), "ingest_s": round(ingest_s, 1),
            "before": before, "after": after, "tune": report}


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default="sample")
    ap.add_argument("--max-chunks", type=int)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("bench-out/tune"))
    ap.add_argument("--always-switch", action="store_true")
    ap.add_argument("--keep", action="store_true", help="leave the collection on the tuned model")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.corpus not in corpora():
        ap.error(f"--corpus {args.corpus!r} is not available here (available: {', '.join(corpora())})")
    res = run(args.corpus, args.work, args.max_chunks, args.epochs, args.always_switch, args.keep)
    args.work.mkdir(parents=True, exist_ok=True)
    (args.work / "result.json").write_text(json.dumps(res, indent=1), encoding="utf-8")
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    t = res["tune"]
    print(f"{res['corpus']} test ({res['queries']} questions)     R@5 before -> after    MRR@10 before -> after")
    for name in MEASURED:
        b, a = res["before"][name], res["after"][name]
        print(f"  {name:<8} {b['R@5']:.3f} -> {a['R@5']:.3f}    {b['RR@10']:.3f} -> {a['RR@10']:.3f}")
    print(f"held-out (generated questions, n={t['held_out']}): recall@5 {t['before']['recall@5']:.3f} -> "
          f"{t['after']['recall@5']:.3f}, MRR@10 {t['before']['mrr@10']:.3f} -> {t['after']['mrr@10']:.3f}")
    print(f"chunks {t['chunks']}, sampled {t['sampled']}, questions {t['questions']}, kept {t['kept']}, "
          f"dropped {t['dropped']}; {t['decision']}")
    print("seconds: " + ", ".join(f"{k} {v}" for k, v in t["seconds"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
