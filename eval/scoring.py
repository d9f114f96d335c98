"""RAGAS-style answer scores: faithfulness, answer relevancy, context precision@k and context recall.

This module gathers the scoring API under one name; each part lives in a file with one job:

- eval.metrics - the metric definitions, `Scores` / `MetricScore`, metric selection, precision@k;
- eval.proxy - `ProxyScorer`, the judge without an LLM that runs on every answer;
- eval.judge - `LLMJudge`, the ragas definitions with a schema-constrained LLM;
- eval.answer_format - citation markers, the abstention sentence, an answer's sentences.
"""

from localrag.eval.answer_format import is_abstention, strip_citations
from localrag.eval.answer_format import plain_sentences as split_sentences
from localrag.eval.judge import VERDICT_SCHEMA, LLMJudge
from localrag.eval.metrics import METRICS, MetricScore, Scores
from localrag.eval.proxy import ProxyScorer

__all__ = [
    "METRICS", "VERDICT_SCHEMA", "LLMJudge", "MetricScore", "ProxyScorer", "Scores", "is_abstention",
    "split_sentences", "strip_citations",
]
