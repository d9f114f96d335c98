"""The shared text helpers (index/text.py) and the answer-format rules (eval/answer_format.py): pure functions, no
models."""

from __future__ import annotations

import time

import pytest

from localrag.eval.answer_format import (
    IDK,
    cited_numbers,
    cited_sentences,
    is_abstention,
    is_idk,
    marker_numbers,
    move_citations_before_stop,
    plain_sentences,
    strip_citations,
)
from localrag.index.text import (
    NEGATIONS,
    QUESTION_STOPWORDS,
    STOPWORDS,
    canonical_number,
    content_words,
    find_numbers,
    normalize,
    numbers,
    sentence_spans,
    split_sentences,
    stem,
    tokens,
    words,
)


# --- normalising, tokens, words -------------------------------------------------------------------------------
def test_normalize_folds_width_and_quotes():
    assert normalize("\uff37hat\u2019s \u201cit\u201d") == "What's \"it\""


def test_tokens_keep_codes_and_numbers_whole_and_mark_sentence_starts():
    toks = tokens("Who ran KW-3 in 1,150? Wren's keeper did; it opened at 07:30.")
    assert [t.text for t in toks] == ["Who", "ran", "KW-3", "in", "1,150", "Wren", "keeper", "did", "it", "opened",
                                      "at", "07:30"]
    assert [t.text for t in toks if t.start] == ["Who", "Wren", "it"]
    assert toks[1].stem == "run" and toks[2].low == "kw-3"


def test_words_expand_contractions_split_compounds_and_drop_thousands_separators():
    assert words("It isn't the Wren's second-order lens; can't say 1,200 or 3.5 (1867-1894)") == [
        "it", "is", "not", "the", "wren", "second", "order", "lens", "can", "not", "say", "1200", "or", "3.5",
        "1867", "1894"]


def test_content_words_drop_function_words_and_negations_and_spell_numbers_as_digits():
    assert content_words("The keepers did not climb four flights of the stairs") == [
        "keepers", "climb", "4", "flights", "stairs"]
    assert content_words("The keepers were founding four new stations", stemmed=True) == [
        "keeper", "found", "4", "new", "station"]
    assert "one" in STOPWORDS and "not" in NEGATIONS and "not" not in STOPWORDS


def test_question_stopwords_keep_words_that_change_a_question():
    for w in ("before", "after", "only", "most", "off", "who", "when"):
        assert w in STOPWORDS and w not in QUESTION_STOPWORDS, w
    for w in ("please", "tell", "name", "the", "does"):
        assert w in QUESTION_STOPWORDS, w


@pytest.mark.parametrize(("a", "b"), [
    ("keepers", "keeper"), ("ferries", "ferry"), ("boxes", "box"), ("founded", "founding"), ("stones", "stone"),
    ("stopped", "stop"), ("chose", "choose"), ("built", "build"), ("LEDs", "LED"), ("Wren's", "wren"),
])
def test_stem_joins_forms_of_one_word(a, b):
    assert stem(a) == stem(b)


@pytest.mark.parametrize(("a", "b"), [("found", "founded"), ("first", "fast"), ("hop", "hope"), ("famous", "famou")])
def test_stem_keeps_different_words_apart(a, b):
    assert stem(a) != stem(b)


def test_stem_leaves_short_words_and_codes_alone():
    assert stem("KW-3") == "kw-3" and stem("gas") == "gas" and stem("e.g") == "e.g"


# --- numbers --------------------------------------------------------------------------------------------------
def test_canonical_number():
    assert canonical_number("1,150") == ("1150", False)
    assert canonical_number("3.20") == ("3.2", False)
    assert canonical_number("3,5") == ("3.5", False)
    assert canonical_number("07:30") == ("7:30", False)
    assert canonical_number("2", "nd") == ("2", True)
    assert canonical_number("1990", "s") == ("1990s", False)
    assert canonical_number("31", "m") == ("31", False)


def test_find_numbers_reads_digits_ranges_ordinals_and_number_words():
    found = find_numbers(tokens("one hundred and fifty boats, the third keeper, 1867-1894, twenty boats, one, 2nd"))
    assert [(n.value, n.ordinal, n.weak) for n in found] == [
        ("150", False, False), ("3", True, False), ("1867", False, False), ("1894", False, False),
        ("20", False, False), ("1", False, True), ("2", True, False)]
    assert found[0].positions == (0, 1, 3)


def test_numbers_are_canonical_and_spelled_numbers_are_optional():
    text = "In 1,200 the 2nd pier (KW-3) rose 3.20 m at 07:30, four times, with a single one"
    assert numbers(text) == {"1200", "2", "3", "3.2", "7:30"}
    assert numbers(text, spelled=True) == {"1200", "2", "3", "3.2", "7:30", "4"}
    assert numbers("It had twenty-one keepers") == set() and numbers("It had twenty-one keepers", spelled=True) == {
        "21"}


# --- sentences ------------------------------------------------------------------------------------------------
def test_sentences_respect_abbreviations_lower_case_and_list_numbers():
    text = ('He said "Stop." Then he left. It opens at 3 p.m. on Monday. Dr. Marsh wrote No. 5 and fig. 2. '
            "The answer is no. Fine.\n1. First item\n2. Second item")
    assert split_sentences(text) == ['He said "Stop."', "Then he left.", "It opens at 3 p.m. on Monday.",
                                     "Dr. Marsh wrote No. 5 and fig. 2.", "The answer is no.", "Fine.",
                                     "1. First item", "2. Second item"]


def test_line_policy_lines_vs_paragraphs():
    wrapped = ("The lantern houses a rotating second-order catadioptric Fresnel lens with a\n"
               "focal length of 700 mm. It weighs 2.4 tonnes.\nOpening hours\nDaily")
    assert split_sentences(wrapped) == [
        "The lantern houses a rotating second-order catadioptric Fresnel lens with a\nfocal length of 700 mm.",
        "It weighs 2.4 tonnes.", "Opening hours", "Daily"]
    assert split_sentences(wrapped, paragraphs=True) == [
        "The lantern houses a rotating second-order catadioptric Fresnel lens with a\nfocal length of 700 mm.",
        "It weighs 2.4 tonnes.", "Opening hours\nDaily"]
    assert split_sentences("Intro.\n\n- one\n- two\nTail", paragraphs=True) == ["Intro.", "- one", "- two\nTail"]


def test_sentence_spans_rebuild_the_text():
    text = "  First one.  Second one!\nThird?  "
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == ["First one.", "Second one!", "Third?"]
    assert all(text[b:c].strip() == "" for (_, b), (c, _) in zip(spans, spans[1:], strict=False))


def test_markup_mode_reads_markdown_as_text():
    text = "**Opening hours.** The bakery opens at 6.\n- A bullet point\n| Day | Time |\n|---|---|\n| Mon | 6 am |"
    assert split_sentences(text, markup=True) == ["Opening hours.", "The bakery opens at 6.", "A bullet point",
                                                  "Day Time", "Mon 6 am"]


def test_sentence_splitting_is_linear_on_a_huge_line():
    text = "word. Word " * 200_000 + "x" * 1_000_000
    t = time.perf_counter()
    assert len(split_sentences(text)) == 200_001
    assert len(split_sentences(text, paragraphs=True)) == 200_001
    assert time.perf_counter() - t < 10


# --- the answer format ----------------------------------------------------------------------------------------
def test_abstention_is_recognised_in_any_spelling():
    assert is_abstention(IDK) and is_idk is is_abstention
    assert is_abstention("**I Don\u2019t know** - the sources are silent")
    assert is_abstention('"I do not know."')
    assert not is_abstention("The answer is: I don't know who") and not is_abstention(None)


def test_marker_numbers():
    assert marker_numbers("1, 3") == [1, 3]
    assert marker_numbers("2-4") == [2, 3, 4]
    assert marker_numbers("2\u20134; 6 and 7") == [2, 3, 4, 6, 7]
    assert marker_numbers("2-40") == [2, 40]  # not a plausible range of sources


def test_cited_numbers_and_strip_citations():
    text = "Yes [2,3], it is [1]. Also [3-4] but not [12345] or [a]."
    assert cited_numbers(text) == [1, 2, 3, 4]
    assert strip_citations("Yes [2,3], it is [1].") == "Yes, it is."
    assert strip_citations(text) == "Yes, it is. Also but not [12345] or [a]."


def test_citations_after_a_full_stop_belong_to_the_sentence_before():
    assert move_citations_before_stop("It was lit in 1867. [2] Then [1][3] more.") == (
        "It was lit in 1867 [2]. Then [1][3] more.")


def test_cited_sentences_carry_their_numbers():
    text = "The tower is 31 m tall [1]. It was lit in 1867. [2] Dr. Marsh founded PWMRS [1, 3].\n- A bullet point"
    assert cited_sentences(text) == [("The tower is 31 m tall.", [1]), ("It was lit in 1867.", [2]),
                                     ("Dr. Marsh founded PWMRS.", [1, 3]), ("A bullet point", [])]
    assert plain_sentences(text) == [s for s, _ in cited_sentences(text)]
    assert cited_sentences("[1]. [2]") == []
