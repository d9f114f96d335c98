"""Can the bundled model *choose* the answer instead of writing it? (issue 13; dev halves only)

For each question of a QA set's split, the extractive scorer's top `--candidates` sentences are shown to the
bundled SmolLM2-135M as a numbered list ("Reply with its number only, or 0 if none of them answers it") and the
probabilities of the reply tokens 0..k are read from llama.cpp (one token, temperature 0). Printed:

* how well P(0 = none) separates unanswerable from answerable questions (ROC AUC), next to the same AUC of the
  extractive scorer's own best score (lower score = more likely unanswerable);
* how many answerable questions get a sentence stating the reference's key facts when the model picks, against
  the scorer's top-1;
* how often the model picks position 1, and the median seconds per question.

    python -m bench.chooser --set data/eval/qa.jsonl --corpus data/sample \
        --set data/eval/qa_articles.jsonl --corpus ../shared/corpora/articles [--data-dir D ...] [--split dev]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path
from typing import Any

from bench.answer_modes import _Ctx, key_fact_recall, load_set, log
from localrag.app.answering.extractive import ExtractiveParams, extract_answer
from localrag.app.llm.gguf import default_gguf

PROMPT = ("Question: {q}\n\nSentences:\n{lines}\n\nWhich sentence answers the question? Reply with its number only, "
          "or 0 if none of them answers it.")


def choice_probs(llm: Any, question: str, candidates: list[str]) -> dict[int, float]:
    """P(reply = n) for n in 0..len(candidates), renormalised over those tokens."""
    lines = "\n".join(f"{i}. {c}" for i, c in enumerate(candidates, 1))
    msgs = [{"role": "system", "content": "You pick the sentence that answers a question."},
            {"role": "user", "content": PROMPT.format(q=question, lines=lines)}]
    out = llm.create_chat_completion(msgs, max_tokens=1, temperature=0, logprobs=True, top_logprobs=20)
    p = dict.fromkeys(range(len(candidates) + 1), 0.0)
    for t in out["choices"][0]["logprobs"]["content"][0]["top_logprobs"]:
        tok = t["token"].strip()
        if tok.isdigit() and int(tok) in p:
            p[int(tok)] += math.exp(t["logprob"])
    z = sum(p.values()) or 1.0
    return {k: v / z for k, v in p.items()}


def auc(pos: list[float], neg: list[float]) -> float | None:
    """P(a positive scores above a negative), ties half; rounded to 3 places."""
    if not pos or not neg:
        return None
    return round(sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg) / (len(pos) * len(neg)), 3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", action="append", required=True)
    ap.add_argument("--corpus", action="append", required=True)
    ap.add_argument("--data-dir", action="append", default=None)
    ap.add_argument("--split", choices=["dev"], default="dev", help="dev only: this is a study, not a report")
    ap.add_argument("--candidates", type=int, default=5)
    args = ap.parse_args(argv)
    from llama_cpp import Llama

    llm = Llama(model_path=str(default_gguf()), n_ctx=2048, n_threads=2, verbose=False, logits_all=True)
    rows: list[dict[str, Any]] = []
    dirs = args.data_dir or [None] * len(args.set)
    for qa, corpus, dd in zip(args.set, args.corpus, dirs, strict=True):
        ctx = _Ctx(Path(corpus), Path(dd) if dd else None, generative=False)
        for item in load_set(qa, args.split):
            sources, _ = ctx.sources(item["question"])
            if not sources:
                continue
            res = extract_answer(item["question"], sources, ctx.embedder, params=ExtractiveParams())
            cands = [s.text for s in res.ranked[: args.candidates]]
            t = time.perf_counter()
            p = choice_probs(llm, item["question"], cands)
            kf = [bool(item["answerable"] and key_fact_recall(c, item["reference"], item["question"])[1])
                  for c in cands]
            rows.append({"answerable": item["answerable"], "p": p, "kf": kf, "best": res.ranked[0].score,
                         "s": time.perf_counter() - t})
            log(f"{item['id']}: P(none) {p[0]:.2f}, pick {max(p, key=p.get)}, key facts {kf}")
    un = [r for r in rows if not r["answerable"]]
    an = [r for r in rows if r["answerable"]]
    pick = sum(r["kf"][max(range(1, len(r["kf"]) + 1), key=lambda i: r["p"][i]) - 1] for r in an)
    print(f"{len(rows)} questions with sources ({len(an)} answerable, {len(un)} unanswerable), split {args.split}")
    print(f"ROC AUC unanswerable vs answerable: model P(none) {auc([r['p'][0] for r in un], [r['p'][0] for r in an])}"
          f", extractive best score {auc([-r['best'] for r in un], [-r['best'] for r in an])}")
    print(f"answerable questions whose chosen sentence states the key facts: model pick {pick}, "
          f"scorer top-1 {sum(r['kf'][0] for r in an)} of {len(an)}")
    print(f"model picks position 1 in {sum(max(r['p'], key=r['p'].get) == 1 for r in rows)} of {len(rows)}; "
          f"median {statistics.median(r['s'] for r in rows):.1f} s per question")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
