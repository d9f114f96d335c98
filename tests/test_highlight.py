"""Quote highlighting (app.answering.highlight): the words a citing sentence shares with its quote, read with the same
tokenizer, stopwords and marker rules as the support checks."""

from __future__ import annotations

from localrag.app.answering.highlight import citing_words, quote_pieces


def _bold(pieces: list[tuple[str, bool]]) -> list[str]:
    return [text for text, bold in pieces if bold]


def test_only_the_sentences_citing_that_source_count():
    answer = "It was designed by Elias Thornbury [1]. The bakery on Fore Street sells rye bread [2]."
    quote = "Gannet Head Lighthouse was designed by Elias Thornbury; the bakery is elsewhere."
    pieces = quote_pieces(quote, answer, 1)
    assert "".join(text for text, _ in pieces) == quote  # nothing lost or added
    assert _bold(pieces) == ["designed", "Elias", "Thornbury"]  # not "was"/"by" (stopwords), not "bakery" ([2])
    assert _bold(quote_pieces(quote, answer, 2)) == ["bakery"]
    assert citing_words(answer, 3) == set()


def test_numbers_and_markers_are_read_as_the_checks_read_them():
    answer = "At low water the pontoon dries at 1.8 m [1, 3]. Later in 1867-1894 [2-3]."
    assert _bold(quote_pieces("The pontoon dries out at 1.8 m on springs.", answer, 1)) == ["pontoon", "dries", "1.8"]
    assert _bold(quote_pieces("Keepers served 1867-1894 there.", answer, 3)) == ["1867", "1894"]
    assert quote_pieces("", answer, 1) == []


def test_the_quote_is_shown_without_its_markdown():
    pieces = quote_pieces("A staircase of **112 steps** spirals up.", "It has 112 steps [1].", 1)
    assert "".join(text for text, _ in pieces) == "A staircase of 112 steps spirals up."
    assert _bold(pieces) == ["112", "steps"]
