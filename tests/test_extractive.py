"""Extractive answers (app.answering.extractive) on hand-made sources, with the real packaged MiniLM embedder: the
sentence that holds the answer is chosen and cited with its source's number, quotes are verbatim pieces of the
source, and an unrelated question abstains."""

from __future__ import annotations

import re

import pytest

from localrag.app.answering import IDK, REMOVED_MARK, Source, is_idk, parse_citations
from localrag.app.answering.extractive import (
    ExtractiveParams,
    candidate_sentences,
    extract_answer,
    question_cues,
    to_outcome,
)

LIGHTHOUSE = (
    "# Gannet Head Lighthouse\n"
    "Gannet Head Lighthouse stands on the granite headland west of the harbour. Work started in the spring of 1865. "
    "The stone came from the Carn Dhu quarry, four miles inland. The light was first exhibited on the evening of "
    "**14 October 1867**. A staircase of **112 steps** spirals up to the lantern gallery."
)
BAKERY = (
    "The Wren Loaf bakery opens at 6 am on weekdays. It sells rye bread and saffron buns. The head baker is "
    "**Dilys Penrose**, who trained in Brittany and has led the bakehouse since the cooperative opened in 2008."
)
MICROGRID = (
    "- The shared battery stores 1.2 MWh in lithium iron phosphate cells. - The network operator has set an export "
    "limit of 200 kW. - Households on the Wren Tariff paid 19 pence per kWh in 2022."
)


def _src(n: int, text: str, name: str, relevance: float = 0.5, kind: str = "markdown", **kw) -> Source:
    return Source(n=n, chunk_id=100 + n, source=f"/data/{name}", kind=kind, text=text, tokens=len(text.split()),
                  relevance=relevance, **kw)


@pytest.fixture(scope="module")
def sources() -> list[Source]:
    return [_src(1, BAKERY, "bakery.md", 0.4), _src(2, LIGHTHOUSE, "lighthouse.md", 0.6),
            _src(3, MICROGRID, "microgrid.txt", 0.3)]


def _norm(text: str) -> str:
    return " ".join(text.split())


# which sentence is chosen, and how it is quoted and cited, does not depend on the abstention threshold (tuned on
# the dev sets): these tests look at the choice with a threshold that never abstains, the abstention tests at the
# default
CHOOSE = ExtractiveParams(threshold=-1.0)


@pytest.mark.parametrize(("question", "n", "fact"), [
    ("How many steps lead up to the lantern gallery?", 2, "112 steps"),
    ("When was the Gannet Head light shown for the first time?", 2, "14 October 1867"),
    ("Who is the head baker of the Wren Loaf bakery?", 1, "Dilys Penrose"),
    ("What export limit did the network operator set?", 3, "200 kW"),
    ("Where did the stone for the lighthouse come from?", 2, "Carn Dhu quarry"),
])
def test_chooses_the_sentence_holding_the_answer_and_cites_its_source(embedder, sources, question, n, fact):
    res = extract_answer(question, sources, embedder, params=CHOOSE)
    assert not res.abstained, res.reason
    assert fact in res.sentences[0].text.replace("**", "")
    assert res.sentences[0].n == n
    text, found, invalid = parse_citations(res.text, len(sources))
    assert not invalid and n in {m for m, _ in found}
    assert fact in text.replace("**", "")
    assert res.ranked and res.ranked[0].text == res.best.text
    assert res.sentences[0].parts["cue"] == 1.0 or not question_cues(question)


def test_quotes_and_citations_are_verbatim_pieces_of_the_cited_source(embedder, sources):
    by_n = {s.n: s for s in sources}
    for question in ["How many steps lead up to the lantern gallery?", "Who is the head baker?",
                     "What did households on the Wren Tariff pay per kWh?", "Which quarry supplied the stone?"]:
        res = extract_answer(question, sources, embedder, params=CHOOSE)
        assert not res.abstained, (question, res.reason)
        for sent in res.sentences:
            src = by_n[sent.n].text
            assert _norm(src[sent.start:sent.end]) == sent.text  # the offsets point at the quote
            assert sent.text in _norm(src)
        ans = to_outcome(sources, res)
        assert ans.citations and not ans.abstained and ans.model_id == "extractive"
        for c in ans.citations:
            assert _norm(c.quote) in _norm(by_n[c.n].text)
            assert (c.chunk_id, c.source) == (by_n[c.n].chunk_id, by_n[c.n].source)
        # the answer is made of the quoted sentences only: no word that is not in a cited source
        words = set(re.findall(r"\w+", re.sub(r"\[\d+(?:, \d+)*\]", "", ans.text).lower()))
        cited = set(re.findall(r"\w+", " ".join(by_n[c.n].text for c in ans.citations).lower()))
        assert words <= cited


def test_abstains_on_an_unrelated_question(embedder, sources):
    answered = extract_answer("How many steps lead up to the lantern gallery?", sources, embedder)
    assert not answered.abstained, answered.reason  # the default threshold lets a plain answer through
    res = extract_answer("What is the capital city of Mongolia and its population?", sources, embedder)
    assert res.abstained and res.text == IDK and is_idk(res.text)
    assert res.reason and "extractive" in res.reason
    assert res.sentences == [] and res.best is not None and res.score < ExtractiveParams().threshold
    ans = to_outcome(sources, res)
    assert ans.abstained and ans.citations == [] and ans.abstain_reason == res.reason


def test_no_sources_or_nothing_quotable_abstains(embedder):
    assert extract_answer("How tall is the tower?", [], embedder).abstained
    only_removed = [_src(1, f"{REMOVED_MARK} Short.", "x.md")]
    res = extract_answer("How tall is the tower?", only_removed, embedder)
    assert res.abstained and res.candidates == 0 and "no sentence" in res.reason


def test_candidates_skip_removed_instructions_questions_and_list_markers():
    text = (f"## Tides\n- The harbour dries at low water springs. {REMOVED_MARK} Is the bar safe at night? "
            "- Boats drawing 1.5 m can cross two hours either side of high water. Spring rates exceed 2.5 knots …")
    src = _src(1, text, "tides.md", truncated=True)
    cands = candidate_sentences([src])
    texts = [c.text for c in cands]
    assert "The harbour dries at low water springs." in texts
    assert "Boats drawing 1.5 m can cross two hours either side of high water." in texts
    assert "Spring rates exceed 2.5 knots" in texts  # the '…' that marks a shortened source is not quoted
    assert not any(REMOVED_MARK in t or t.endswith("?") or t.startswith(("-", "#")) for t in texts)
    for c in cands:
        assert _norm(text[c.start:c.end]) == c.text


def test_knowledge_graph_sentence_is_shown_with_its_node_label(embedder):
    kg = _src(1, "Alun Rees\nType: Person\nSkipper of the research vessel RV Kittiwake.", "port.ttl", kind="rdf",
              label="Alun Rees", kg_uri="https://example.org/alunRees")
    res = extract_answer("Who is the skipper of RV Kittiwake?", [kg], embedder, params=CHOOSE)
    assert not res.abstained
    assert res.text.startswith("Alun Rees: Skipper of the research vessel RV Kittiwake [1]")
    assert res.citations([kg])[0].quote == "Skipper of the research vessel RV Kittiwake."


def test_a_sentence_starting_with_a_pronoun_is_quoted_with_the_one_before(embedder):
    src = _src(1, "All loaves are raised with a rye levain called Old Josiah. It is refreshed at a ratio of 1:5:5 "
                  "each evening. The oven is fired with wood.", "bakery.md")
    res = extract_answer("In what ratio is the Old Josiah levain refreshed?", [src], embedder, params=CHOOSE)
    assert not res.abstained
    assert "1:5:5" in res.text and "Old Josiah" in res.text
    assert res.sentences[0].text in _norm(src.text)


def test_two_part_question_gets_a_second_sentence_for_the_missing_part(embedder):
    src = _src(1, "Margaret Aldous was the last principal keeper of Gannet Head. She served there from 1961 to "
                  "1989. The lighthouse was automated in 1989.", "keepers.md")
    one = extract_answer("Who was the last principal keeper, and when did she serve?", [src], embedder,
                         params=CHOOSE.with_(max_sentences=1))
    two = extract_answer("Who was the last principal keeper, and when did she serve?", [src], embedder,
                         params=CHOOSE.with_(max_sentences=2))
    assert len(one.sentences) == 1
    assert "Margaret Aldous" in two.text and "1961" in two.text


def test_question_cues():
    assert question_cues("When was the lighthouse built?") == ["time"]
    assert question_cues("How many steps are there?") == ["number"]
    assert question_cues("Who designed it, and in which year?") == ["time", "name"]
    assert question_cues("Why is kelp farmed?") == []


def test_sentence_embeddings_are_cached(embedder, sources):
    calls = []

    class Counting:
        def encode(self, texts):
            calls.append(len(texts))
            return embedder.encode(texts)

    cache: dict = {}
    q = "How many steps lead up to the lantern gallery?"
    a = extract_answer(q, sources, Counting(), params=CHOOSE, cache=cache)
    b = extract_answer(q, sources, Counting(), params=CHOOSE, cache=cache)
    assert len(calls) == 1 and calls[0] > 1  # one encode call for everything, none the second time
    assert a.text == b.text


def test_a_quote_of_a_python_prompt_is_verbatim_in_the_document(embedder):
    """A source's own ">>>" is broken to "›››" in what the model reads (so a document cannot close its source
    block); the quote, its citation and its next-best alternatives give the document's text back."""
    from localrag.app.answering.sources import sanitize_source

    doc = ("Sorting HOW TO. For example, here is a case-insensitive string comparison: >>> sorted(\"This is a test "
           "string from Andrew\".split(), key=str.lower) returns the words in order. The key function is called "
           "exactly once for each input record.")
    clean, _ = sanitize_source(doc)
    assert ">>>" not in clean and "›››" in clean
    src = _src(1, clean, "howto-sorting.html")
    res = extract_answer("How do I compare strings case-insensitively when sorting?", [src], embedder,
                         params=CHOOSE)
    out = to_outcome([src], res)
    quotes = [c.quote for o in [out, *out.alternatives] for c in o.citations]
    assert any(">>> sorted(" in q for q in quotes), quotes
    for q in quotes:
        assert "›››" not in q and _norm(q) in _norm(doc)
    assert "›››" not in out.text and all("›››" not in o.text for o in out.alternatives)
