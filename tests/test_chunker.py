"""Chunking with the real MiniLM tokenizer: budgets hold for every input shape, and text is not lost."""

from __future__ import annotations

import re

import pytest

from localrag.index.text import split_sentences
from localrag.ingest.chunker import Tokenizer, chunk_units
from localrag.ingest.document import Unit


@pytest.fixture(scope="module")
def tok(embedder):
    return Tokenizer(embedder.tokenizer)


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


def test_sentences_pack_within_budget_with_overlap(tok, embedder):
    text = " ".join(f"Sentence {i} describes the harbour light number {i}." for i in range(200))
    chunks = chunk_units([Unit(text, page=4)], tok, chunk_tokens=64, overlap=16, max_model_tokens=256)
    assert len(chunks) > 5
    assert all(c.page == 4 for c in chunks)
    exact = embedder.token_counts([c.text for c in chunks])
    assert max(exact) <= 64 and exact == [c.n_tokens for c in chunks]
    # chunks end on sentence boundaries, and neighbours share their overlap sentence(s)
    assert all(c.text.endswith(".") for c in chunks)
    assert chunks[1].text.split(". ")[0] in chunks[0].text
    # nothing lost: every sentence appears in some chunk
    joined = " ".join(c.text for c in chunks)
    assert all(f"Sentence {i} describes" in joined for i in range(200))


def test_budget_never_exceeds_model_limit(tok):
    chunks = chunk_units([Unit("word " * 2000)], tok, chunk_tokens=5000, overlap=0, max_model_tokens=256)
    assert max(c.n_tokens for c in chunks) <= 254


@pytest.mark.parametrize(
    "text",
    [
        "lorem ipsum dolor " * 280_000,  # a 5 MB single line with spaces
        "x" * 5_000_000,  # a 5 MB single "word"
        "Z" + "\u0301" * 20_000 + " ok " + "😀" * 50_000,  # combining flood and emoji
    ],
    ids=["5MB-line", "5MB-word", "combining-emoji"],
)
def test_pathological_text_gives_normal_size_chunks(tok, embedder, text):
    chunks = chunk_units([Unit(text)], tok, chunk_tokens=200, overlap=32, max_model_tokens=256)
    assert chunks
    assert max(c.n_tokens for c in chunks) <= 200
    assert max(len(c.text) for c in chunks) <= 200 * 12
    assert max(embedder.token_counts([c.text for c in chunks[:50]])) <= 200


def test_split_sentences_handles_lists_and_paragraphs():
    parts = split_sentences("Intro line.\n\n- first item\n- second item\nTail? Yes! Done.", paragraphs=True)
    assert parts == ["Intro line.", "- first item", "- second item\nTail?", "Yes!", "Done."]
    assert _words(" ".join(parts)) == _words("Intro line. first item second item Tail Yes Done")
