"""The checked answer: a second model reads the quotes a generated answer cites and says whether they state it, as
an answer to the question (verified abstention, auto mode).

The question is a constrained yes/no: the checking model's probability of replying "yes" rather than "no"
(`LLM.yes_probability`, read from its first reply token, one forward pass over ~150-300 tokens) is compared with
`answer.verify_min`. Below it, auto mode does not use the generated answer: the quote stands, or "I don't know".

Why a second model: the answering model (Qwen2.5-Coder-0.5B) gives "no" to every such question and its P(yes) does
not rank right answers above wrong ones; Qwen2.5-Coder-1.5B's P(yes) does, on the dev halves (BENCHMARKS.md, "Answers
for small models"). The wording was fixed before measuring and is part of what was measured: change it and measure
again (`python -m bench.answer_grid --split dev`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from localrag.app.answering.citations import Citation
from localrag.app.answering.sources import Source
from localrag.eval.answer_format import strip_citations

__all__ = ["VERIFY_PROMPT_VERSION", "VERIFY_SYSTEM", "cited_quotes", "support_probability", "verify_messages"]

VERIFY_PROMPT_VERSION = "verify-1"
VERIFY_SYSTEM = "You check answers against sources. Reply with one word: yes or no."


def verify_messages(question: str, answer: str, quotes: Sequence[str]) -> list[dict[str, str]]:
    """The yes/no question: the quoted source sentences, the question and the answer (without its [n] markers)."""
    source = "\n".join(f"- {q.strip()}" for q in dict.fromkeys(q for q in quotes if q.strip()))
    user = (f"Source:\n{source}\n\nQuestion: {question.strip()}\nProposed answer: {strip_citations(answer)}\n\n"
            "Does the source say this, as an answer to the question? Reply yes or no.")
    return [{"role": "system", "content": VERIFY_SYSTEM}, {"role": "user", "content": user}]


def cited_quotes(citations: Sequence[Citation], sources: Sequence[Source]) -> list[str]:
    """The quotes of `citations`, each as the checking model reads it: a sentence of a knowledge-graph node that does
    not name the node gets the node's label in front ("Elias Thornbury: Civil engineer who designed ..."), as the
    extractive answer shows it."""
    by_n = {s.n: s for s in sources}
    out = []
    for c in citations:
        src = by_n.get(c.n)
        label = src.label if src is not None and src.kind == "rdf" else None
        quote = c.quote.strip()
        out.append(f"{label}: {quote}" if label and label.lower() not in quote.lower() else quote)
    return out


def support_probability(llm: Any, question: str, answer: str, quotes: Sequence[str]) -> float | None:
    """The checking model's P(yes) that `quotes` state `answer` as an answer to `question`; None when the model does
    not expose token probabilities (the answer is then used unchecked, with a warning) or there is no quote."""
    if not any(q.strip() for q in quotes):
        return None
    ask = getattr(llm, "yes_probability", None)
    if ask is None:
        return None
    p = ask(verify_messages(question, answer, quotes))
    return None if p is None else float(p)
