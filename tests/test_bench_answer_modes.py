"""The answer-mode benchmark's grading rules (bench.answer_modes.grade) on hand-made answers: a citation is
grounded when its quote is in the cited chunk and that chunk is the labelled evidence or the quotes state the
reference's key facts; an abstention or a quote that is not in its chunk never is."""

from __future__ import annotations

from bench.answer_modes import grade, summarize
from localrag.app.answering import Answer, Citation, Source

HISTORY = "Gannet Head Lighthouse was designed by Elias Thornbury and first lit on 14 October 1867."
GRAPH = "Elias Thornbury: Civil engineer who designed Gannet Head Lighthouse (built 1865-1867)."
BAKERY = "The Wren Loaf bakery sells bread on Fore Street."
ITEM = {"id": "a01", "type": "fact", "answerable": True, "question": "Who designed the lighthouse on Gannet Head?",
        "reference": "Elias Thornbury.", "relevant": [{"source": "history.md", "contains": "designed by Elias"}]}
CHUNKS = {1: HISTORY, 2: GRAPH, 3: BAKERY}


def _answer(text: str, cites: list[tuple[int, str, str]], abstained: bool = False) -> Answer:
    sources = [Source(n=n, chunk_id=n, source=src, kind="text", text=CHUNKS[n], tokens=20, relevance=0.9)
               for n, src in ((1, "history.md"), (2, "port-wren.ttl"), (3, "bakery.md"))]
    return Answer(question=ITEM["question"], text=text, abstained=abstained, sources=sources,
                  citations=[Citation(n=n, chunk_id=n, source=src, page=None, kg_uri=None, quote=q)
                             for n, src, q in cites])


def test_grounded_by_the_labelled_chunk_or_by_quotes_stating_the_facts():
    by_label = grade(ITEM, _answer("Designed by Elias Thornbury [1].", [(1, "history.md", HISTORY)]), 0.1, CHUNKS)
    assert by_label.grounded and by_label.grounded_label and by_label.key_facts_ok
    other_copy = grade(ITEM, _answer(GRAPH + " [2]", [(2, "port-wren.ttl", GRAPH)]), 0.1, CHUNKS)
    assert other_copy.grounded and not other_copy.grounded_label  # the fact's other copy, not the labelled one
    wrong = grade(ITEM, _answer(BAKERY + " [3]", [(3, "bakery.md", BAKERY)]), 0.1, CHUNKS)
    assert not wrong.grounded and not wrong.grounded_label and not wrong.key_facts_ok
    made_up = grade(ITEM, _answer("Elias Thornbury designed it [2].", [(2, "port-wren.ttl", "Elias Thornbury "
                                                                         "designed it alone.")]), 0.1, CHUNKS)
    assert not made_up.grounded  # the quote is not in the cited chunk
    idk = grade(ITEM, _answer("I don't know.", [], abstained=True), 0.1, CHUNKS)
    assert idk.abstained and not idk.grounded
    s = summarize([by_label, other_copy, wrong, made_up, idk])
    assert s["grounded"] == 2 / 5 and s["grounded_label"] == 1 / 5 and s["answered"] == 4 / 5
