"""Which words of a cited quote to highlight: the content words that the answer's sentences citing that source share
with it, read with the same tokenizer, stopwords and citation-marker rules as the rest of localrag (index.text,
eval.answer_format), so that the UI shows what the support checks compared."""

from __future__ import annotations

from localrag.eval.answer_format import cited_sentences
from localrag.index.text import content_words, plain_text, word_spans, words

__all__ = ["citing_words", "quote_pieces"]


def citing_words(answer_text: str, n: int) -> set[str]:
    """Content words (lower-cased, as index.text.content_words reads them) of the answer sentences citing [n]."""
    out: set[str] = set()
    for sentence, nums in cited_sentences(answer_text):
        if n in nums:
            out.update(content_words(sentence))
    return out


def quote_pieces(quote: str, answer_text: str, n: int) -> list[tuple[str, bool]]:
    """The quote, without the Markdown it was written with ("**112 steps**" shows as 112 steps), cut into consecutive
    pieces whose concatenation is that text, each flagged True when it is a word that a sentence of the answer
    citing [n] also uses (a content word: no stopwords)."""
    quote = plain_text(quote or "")
    shared = citing_words(answer_text, n) & set(content_words(quote))
    pieces: list[tuple[str, bool]] = []
    pos = 0
    for start, end in word_spans(quote):
        if start > pos:
            pieces.append((quote[pos:start], False))
        word = quote[start:end]
        pieces.append((word, any(w in shared for w in words(word))))
        pos = end
    if pos < len(quote or ""):
        pieces.append((quote[pos:], False))
    return pieces
