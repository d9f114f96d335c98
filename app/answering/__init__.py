"""Answering: from ranked hits to a grounded, cited `Answer`.

- sources: numbered sources in a token budget, instruction-like sentences removed
- prompt: the answer prompt (sources fenced as data) and the follow-up rewrite
- citations: [n] markers read, checked, quoted; citations added after the fact
- guardrails: validators of a draft (hard: retry, then abstain; soft: warn)
- answerer: the generative loop (prompt -> LLM -> citations -> guardrails -> retry)
- extractive: the answer quoted from the sources without an LLM
- answer: the `Answer` and the streamed `Restart`
"""

from localrag.app.answering.answer import AbstainKind, Answer, Outcome, Replace, Restart
from localrag.app.answering.answerer import Answerer
from localrag.app.answering.citations import Citation, attribute, best_quote, make_citations, parse_citations
from localrag.app.answering.guardrails import (
    Draft,
    FunctionValidator,
    Validator,
    complete_sentences,
    default_validators,
)
from localrag.app.answering.prompt import PROMPT_VERSION, SYSTEM_PROMPT, LLMLike, build_messages, rewrite_question
from localrag.app.answering.sources import REMOVED_MARK, Source, assemble_context, sanitize_source
from localrag.eval.answer_format import IDK, is_idk
from localrag.retrieval.types import cite_location

__all__ = [
    "IDK", "PROMPT_VERSION", "REMOVED_MARK", "SYSTEM_PROMPT", "AbstainKind", "Answer", "Answerer", "Citation",
    "Draft", "FunctionValidator", "LLMLike", "Outcome", "Replace", "Restart", "Source", "Validator",
    "assemble_context", "attribute", "best_quote", "build_messages", "cite_location", "complete_sentences",
    "default_validators", "is_idk", "make_citations", "parse_citations", "rewrite_question", "sanitize_source",
]
