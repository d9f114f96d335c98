"""The semantic answer cache: reuse an answer for the same question, or for a reworded one, without a wrong reuse.

- `equivalence` - when two questions may share an answer (`verify_equivalent`, `normalize_question`,
  `CorpusTerms` for the rare-term rule);
- `store` - `SemanticCache`: answers in the answers_cache table, found exactly or by similar-and-verified question;
- `invalidation` - scopes (collection, corpus version, model, prompt), TTL and the size cap.

It lives in the app layer: it stores answers and the answering step consults it.
"""

from localrag.app.cache.equivalence import (
    RARE_DF,
    RARE_MIN_CHUNKS,
    CorpusTerms,
    new_words_check,
    normalize_question,
    question_tokens,
    verify_equivalent,
)
from localrag.app.cache.store import MAX_CANDIDATES, MAX_DF_CHUNKS, CacheHit, SemanticCache

__all__ = [
    "MAX_CANDIDATES", "MAX_DF_CHUNKS", "RARE_DF", "RARE_MIN_CHUNKS", "CacheHit", "CorpusTerms", "SemanticCache",
    "new_words_check", "normalize_question", "question_tokens", "verify_equivalent",
]
