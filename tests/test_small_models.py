"""The answer pipeline built for small models on a CPU (issue 22): citation habits read in every form the packaged
models write them, compressed context that keeps the evidence, auto mode's quote first and the checked answer
after it, and the packaged Qwen model answering and abstaining for real.

`ReplayLLM` (a fake, named as one) replays drafts that the packaged models really wrote, recorded from their
output; it stands in where a test is about how a draft is read, not about what a model writes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from localrag.app import ask
from localrag.app.answering import AbstainKind, Answer, Answerer, Outcome, Replace, Source
from localrag.app.answering.citations import normalize_citations, parse_citations
from localrag.app.answering.compress import compress_sources
from localrag.app.llm import Completion, StreamResult
from localrag.retrieval.types import Hit
from tests.fakes import FakeVerifier

NEMO = ("Mistral NeMo is a 12B model built in collaboration with NVIDIA. Mistral NeMo uses a new tokenizer, Tekken, "
        "based on Tiktoken, that was trained on over more than 100 languages.")
GPT3 = "GPT-3 uses a byte-level BPE tokenizer. Its token vocabulary is approximately 50,000 tokens."


@dataclass
class ReplayLLM:
    """Replays recorded drafts in order (a fake: control flow of reading a draft only)."""

    replies: list[str]
    model_id: str = "replay"
    calls: list[list[dict]] = field(default_factory=list)

    def _next(self, messages: list[dict]) -> Completion:
        self.calls.append(messages)
        text = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        return Completion(text, 50, len(text.split()), "stop", 0.01, 0.005, self.model_id)

    def generate(self, messages: list[dict], **kw) -> Completion:
        return self._next(messages)

    def stream(self, messages: list[dict], **kw) -> StreamResult:
        c = self._next(messages)

        def produce(rec: StreamResult):
            yield c.text
            rec.completion = c

        return StreamResult(produce)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def close(self) -> None:
        pass


def _hit(n: int, text: str, source: str) -> Hit:
    return Hit(chunk_id=100 + n, text=text, source=f"/data/{source}", kind="text", relevance=0.6)


# --- citation habits ------------------------------------------------------------------------------------------------
# drafts the packaged models wrote (Qwen2.5-Coder-1.5B puts the marker after the full stop: issue 22 quotes both)
QWEN15_DRAFTS = [
    "The tokenizer used by Mistral NeMo is Tekken, based on Tiktoken. [1]",
    "The token vocabulary of GPT-3 is approximately 50,000 tokens. [2]",
    "[1] Mistral NeMo uses a new tokenizer, Tekken, based on Tiktoken.",  # the 1.5B model's other habit (grid run)
]


@pytest.mark.parametrize("draft", QWEN15_DRAFTS)
def test_a_marker_after_the_full_stop_belongs_to_the_sentence_before(draft):
    """The 1.5B model's habit used to be read as an empty sentence '[1]' and rejected; now the answer passes."""
    out = list(Answerer(ReplayLLM([draft]), retries=0).run("?", [_hit(1, NEMO, "nemo.txt"), _hit(2, GPT3, "gpt.txt")]))
    ans = out[-1]
    assert isinstance(ans, Outcome) and not ans.abstained, ans.abstain_reason
    assert ans.guardrails == [] and ans.text.endswith("].") and len(ans.citations) == 1


@pytest.mark.parametrize("draft, cited", [
    ("Tekken is the tokenizer (source 1).", [1]),
    ("Tekken is the tokenizer [Source 1].", [1]),
    ("Tekken is the tokenizer [source: 1].", [1]),
    ("Tekken is the tokenizer (Sources 1 and 2).", [1, 2]),
    ("Tekken is the tokenizer [^1].", [1]),
    ("Tekken is the tokenizer 【1】.", [1]),
    ("Tekken is the tokenizer [1][2].", [1, 2]),
    ("Tekken is the tokenizer [1, 2].", [1, 2]),
    ("Tekken is the tokenizer. [1] Its vocabulary has 50,000 tokens. [2]", [1, 2]),
    ("[1] Tekken is the tokenizer. [2] Its vocabulary has 50,000 tokens.", [1, 2]),
])
def test_each_citation_habit_is_read(draft, cited):
    text, found, invalid = parse_citations(normalize_citations(draft), 2)
    assert sorted({n for n, _ in found}) == cited and invalid == []
    assert "source" not in text.lower() and "^" not in text and "【" not in text


def test_a_number_in_parentheses_is_not_a_citation():
    text = "It has 12 (twelve) layers (2 of them new)."
    assert normalize_citations(text) == text


# --- compressed context -----------------------------------------------------------------------------------------------
def test_compression_keeps_the_evidence_sentence_and_the_numbers(sample_rag, embedder):
    """The model reads ~a third of the chunks' tokens, the sources keep their numbers, every piece is verbatim, and
    the evidence sentence of a labelled question is still there."""
    question = "On what date was the Gannet Head light shown for the first time?"
    res = sample_rag.search(question, k=4)
    from localrag.app.answering import assemble_context

    def count(text: str) -> int:
        return embedder.token_counts([text])[0]

    sources, _ = assemble_context(list(res), count, 1000)
    shown = compress_sources(question, sources, embedder, count, budget=150)
    assert [s.n for s in shown] == [s.n for s in sources]
    assert sum(count(s.text) for s in shown) < sum(count(s.text) for s in sources)
    holding = [s.n for s in sources if "14 October 1867" in s.text]
    assert holding and [s.n for s in shown if "14 October 1867" in s.text] == holding  # the evidence, same number
    for full, small in zip(sources, shown, strict=True):
        for piece in small.text.split(" … "):
            assert piece.strip(" …") in full.text


# --- auto: the quote first, then the checked answer -------------------------------------------------------------------
def _auto_events(rag, replies: list[str], question: str, p_yes: float | None = 0.95):
    rag.set_llm(ReplayLLM(replies))
    rag.set_verifier(FakeVerifier(p_yes))  # control flow: the checking model's verdict is given
    return list(rag.ask_stream(question, answer_mode="auto", cache=False))


def test_auto_shows_the_quote_then_the_answer_replaces_it(sample_rag, embedder, rag_factory):
    rag = rag_factory(sample_rag.data_dir)
    events = _auto_events(rag, ["The Gannet Head light was first shown on 14 October 1867 [1]."],
                          "On what date was the Gannet Head light shown for the first time?")
    first = events[0]
    assert isinstance(first, str) and "1867" in first  # the quote, before the model is called
    i = next(k for k, e in enumerate(events) if isinstance(e, Replace))
    assert events[i].mode == "auto:generative" and events[i + 1] == events[-1].text
    ans = events[-1]
    assert isinstance(ans, Answer) and ans.mode == "auto:generative" and not ans.abstained
    assert ans.citations and ans.citations[0].n == 1


def test_auto_keeps_the_quote_when_the_checking_model_doubts_the_answer(sample_rag, rag_factory):
    rag = rag_factory(sample_rag.data_dir)
    events = _auto_events(rag, ["The Gannet Head light was first shown on 14 October 1867 [1]."],
                          "On what date was the Gannet Head light shown for the first time?", p_yes=[0.3, 0.9])
    assert not any(isinstance(e, Replace) for e in events)
    ans = events[-1]
    assert ans.mode == "auto:extractive" and not ans.abstained and ans.verified_p == 0.9  # the quote passed
    assert any("checking model" in w and "P(yes) = 0.30" in w for w in ans.warnings), ans.warnings
    checked = rag._verifier.asked[0][-1]["content"]  # it read the cited quote, the question and the answer
    assert "1867" in checked and "Proposed answer: The Gannet Head light was first shown on 14 October 1867." in checked


def test_auto_says_i_dont_know_when_neither_the_answer_nor_the_quote_passes_the_checking_model(sample_rag,
                                                                                              rag_factory):
    rag = rag_factory(sample_rag.data_dir)
    events = _auto_events(rag, ["The Gannet Head light was first shown on 14 October 1867 [1]."],
                          "On what date was the Gannet Head light shown for the first time?", p_yes=[0.3, 0.4])
    ans = events[-1]
    assert ans.abstained and ans.abstain_kind == AbstainKind.NO_SUPPORT, ans.text
    assert "P(yes) = 0.30" in ans.abstain_reason and "quote an answer either (P(yes) = 0.40" in ans.abstain_reason
    # the generated answer, the quote that would have stood in, then the next-best quotes (answer.verify_alternatives)
    assert len(rag._verifier.asked) == 2 + rag.settings.answer.verify_alternatives
    assert isinstance(events[0], str) and "1867" in events[0]  # the quote was shown first, then withdrawn
    assert any(isinstance(e, Replace) for e in events)


def test_auto_takes_a_next_best_quote_that_the_checking_model_accepts(sample_rag, rag_factory):
    """answer.verify_alternatives: the answer and the first quote fail the checking model, the next-best quote
    (a different sentence, verbatim and cited) passes and replaces the quote shown first."""
    rag = rag_factory(sample_rag.data_dir, answer_verify_alternatives=2)
    question = "On what date was the Gannet Head light shown for the first time?"
    # the next-best quotes need the generated answer's bar (verify_min 0.82): 0.75 passes a first quote, not them
    events = _auto_events(rag, ["The Gannet Head light was first shown on 14 October 1867 [1]."], question,
                          p_yes=[0.3, 0.4, 0.75, 0.9])
    first, ans = events[0], events[-1]
    assert len(rag._verifier.asked) == 4  # the answer, the quote, two next-best quotes: then it stopped
    assert ans.mode == "auto:extractive" and not ans.abstained and ans.verified_p == 0.9
    assert ans.text != first and len(ans.citations) == 1
    cite = ans.citations[0]
    src = next(s for s in ans.sources if s.n == cite.n)
    assert " ".join(cite.quote.split()) in " ".join(src.text.split())  # verbatim in its source
    assert any("next-best quote" in w for w in ans.warnings), ans.warnings
    rep = next(e for e in events if isinstance(e, Replace))
    assert rep.mode == "auto:extractive"


def test_auto_reads_no_more_next_best_quotes_than_allowed_then_says_i_dont_know(sample_rag, rag_factory):
    rag = rag_factory(sample_rag.data_dir, answer_verify_alternatives=2)
    events = _auto_events(rag, ["The Gannet Head light was first shown on 14 October 1867 [1]."],
                          "On what date was the Gannet Head light shown for the first time?", p_yes=0.2)
    ans = events[-1]
    assert ans.abstained and "P(yes) = 0.20" in ans.abstain_reason
    assert len(rag._verifier.asked) == 4  # the answer, the quote, two next-best quotes
    off = rag_factory(sample_rag.data_dir, answer_verify_alternatives=0)
    _auto_events(off, ["The Gannet Head light was first shown on 14 October 1867 [1]."],
                 "On what date was the Gannet Head light shown for the first time?", p_yes=0.2)
    assert len(off._verifier.asked) == 2  # 0: the answer and the quote only


def test_auto_answers_unchecked_with_a_warning_when_the_checking_model_gives_no_probabilities(sample_rag,
                                                                                           rag_factory):
    rag = rag_factory(sample_rag.data_dir)
    events = _auto_events(rag, ["The Gannet Head light was first shown on 14 October 1867 [1]."],
                          "On what date was the Gannet Head light shown for the first time?", p_yes=None)
    ans = events[-1]
    assert ans.mode == "auto:generative" and ans.verified_p is None
    assert any("not checked" in w for w in ans.warnings), ans.warnings


def test_auto_keeps_the_quote_when_the_model_fails_its_checks(sample_rag, rag_factory):
    rag = rag_factory(sample_rag.data_dir)
    events = _auto_events(rag, ["The light was first shown in 1999 [1]."],  # a number no source states
                          "On what date was the Gannet Head light shown for the first time?")
    assert not any(isinstance(e, Replace) for e in events)
    ans = events[-1]
    assert ans.mode == "auto:extractive" and not ans.abstained and "1867" in ans.text
    assert any("not used" in w for w in ans.warnings) and ans.guardrails
    assert "".join(e for e in events if isinstance(e, str)) == ans.text  # what was shown is what stays


def test_auto_abstains_when_neither_quote_nor_model_answers(sample_rag, rag_factory):
    rag = rag_factory(sample_rag.data_dir, answer_min_relevance=0.0)
    # the checking model says no to the next-best quotes too (with a yes, one of them would stand: the test above)
    events = _auto_events(rag, ["I don't know."], "What colour is the harbour master's bicycle?", p_yes=0.3)
    ans = events[-1]
    assert ans.abstained and ans.abstain_kind in (AbstainKind.MODEL, AbstainKind.NO_SOURCES)
    assert len(rag._verifier.asked) == rag.settings.answer.verify_alternatives  # they were read, and refused


def test_the_auto_stages_run_alone(sample_rag, rag_factory):
    """app.ask.auto over retrieved hits, without a Rag's private methods."""
    rag = rag_factory(sample_rag.data_dir)
    rag.set_llm(ReplayLLM(["The tower is 31 metres tall [1]."]))
    rag.set_verifier(FakeVerifier(0.95))
    opts = rag.ask_options("How tall is the Gannet Head lighthouse?", answer_mode="auto", cache=False)
    got = ask.retrieve(rag, opts, opts.question, ask.Clock())
    events = list(ask.auto(rag, opts, opts.question, got.relevant, stream=False))
    assert len(events) == 1 and isinstance(events[0], Outcome) and events[0].mode == "auto:generative"
    assert all(isinstance(s, Source) for s in events[0].sources)


# --- cut back before "I don't know" -----------------------------------------------------------------------------------
def test_an_unsupported_sentence_is_cut_and_the_supported_answer_stays():
    draft = ("Mistral NeMo uses the Tekken tokenizer [1]. It was released in 2031 by a team of 400 people [1].")
    out = list(Answerer(ReplayLLM([draft]), retries=0).run("Which tokenizer does Mistral NeMo use?",
                                                           [_hit(1, NEMO, "nemo.txt")]))[-1]
    assert not out.abstained and out.text == "Mistral NeMo uses the Tekken tokenizer [1]."
    assert any("cut" in w and "2031" in w for w in out.warnings)


def test_an_answer_with_no_supported_sentence_is_still_refused():
    out = list(Answerer(ReplayLLM(["It was released in 2031 [1]."]), retries=0).run("When?",
                                                                                   [_hit(1, NEMO, "nemo.txt")]))[-1]
    assert out.abstained and out.abstain_kind == AbstainKind.GUARDRAILS and "2031" in out.abstain_reason


def test_the_small_models_preamble_is_dropped():
    draft = "According to the information provided in the sources, Mistral NeMo uses the Tekken tokenizer [1]."
    out = list(Answerer(ReplayLLM([draft]), retries=0).run("Which tokenizer?", [_hit(1, NEMO, "nemo.txt")]))[-1]
    assert out.text == "Mistral NeMo uses the Tekken tokenizer [1]."


# --- verified abstention --------------------------------------------------------------------------------------------
def _opts(rag_factory, sample_rag, **kw):
    return rag_factory(sample_rag.data_dir, **kw).ask_options("Who designed the lighthouse?", answer_mode="auto")


def test_a_doubtful_generated_answer_gives_way_to_the_quote_or_to_i_dont_know(rag_factory, sample_rag):
    opts = _opts(rag_factory, sample_rag, answer={"doubt_p": 0.5, "min_support": 1.0})
    src = [Source(n=1, chunk_id=1, source="/d/a.md", kind="text", text="x", tokens=1, relevance=0.5)]

    def gen(p: float) -> Outcome:
        return Outcome(text="Ann Lee designed it [1].", sources=src, abstain_p=p)

    quote = Outcome(text="It was designed by Ann Lee [1].", sources=src, support=1.4, mode="auto:extractive")
    assert ask.choose(quote, gen(0.2), opts).mode == "auto:generative"  # confident and supported: the answer
    kept = ask.choose(quote, gen(0.7), opts)  # the model leans to "I don't know": the quote stands
    assert kept is quote and any("leaned to 'I don't know'" in w for w in kept.warnings)
    weak = Outcome.abstain(AbstainKind.NO_SUPPORT, "extractive: no sentence", sources=src, support=0.8)
    out = ask.choose(weak, gen(0.2), opts)  # no quote, and nothing supports the answer: "I don't know"
    assert out.abstained and out.abstain_kind == AbstainKind.NO_SUPPORT and "support 0.80" in out.abstain_reason


def test_the_packaged_model_says_how_likely_it_is_to_abstain(sample_rag, rag_factory):
    """The real default model, once: its P("I don't know") is low for a question the sources answer and higher for
    a near miss they do not (the coxswain is not named anywhere)."""
    rag = rag_factory(sample_rag.data_dir, answer={"mode": "auto", "cache_enabled": False, "score": False})
    opts = rag.ask_options("Who designed Gannet Head Lighthouse?")
    got = ask.retrieve(rag, opts, opts.question, ask.Clock())
    quote = ask.extractive(rag, opts, opts.question, got.relevant)
    answered = list(ask.answerer(rag, opts).write(opts.question, quote.sources))[-1]
    opts2 = rag.ask_options("Who is the coxswain of the Port Wren lifeboat?")
    got2 = ask.retrieve(rag, opts2, opts2.question, ask.Clock())
    quote2 = ask.extractive(rag, opts2, opts2.question, got2.relevant)
    near_miss = list(ask.answerer(rag, opts2).write(opts2.question, quote2.sources))[-1]
    assert answered.abstain_p is not None and near_miss.abstain_p is not None
    assert answered.abstain_p < near_miss.abstain_p, (answered.abstain_p, near_miss.abstain_p, near_miss.text)


def test_a_citation_quotes_the_sentence_with_the_claims_distinctive_words():
    """'Elias Thornbury designed Gannet Head Lighthouse [1]' quotes the sentence naming Thornbury, not the opening
    one that shares more of the subject's words (every sentence of the page names the lighthouse)."""
    from pathlib import Path

    from localrag.app.answering.citations import best_quote

    page = (Path(__file__).resolve().parent.parent / "data/sample/gannet-head-lighthouse.md").read_text()[:3000]
    assert "Thornbury" in best_quote("Elias Thornbury designed Gannet Head Lighthouse", page)
    assert "31 metres" in best_quote("The tower is 31 metres tall", page)


# the checking model (answer.verify_model): the real packaged model, loaded once for the session
@pytest.fixture(scope="session")
def checking_llm():
    from localrag.app.config import load_settings
    from localrag.app.llm.factory import make_judge_llm, verify_gguf

    settings = load_settings()
    llm = make_judge_llm(settings, verify_gguf(settings))
    yield llm
    llm.close()


def test_the_checking_model_finds_a_stated_answer_and_doubts_a_near_miss(checking_llm):
    """Qwen2.5-Coder-1.5B (the default answer.verify_model), for real: it finds an answer that its quote states,
    and doubts a near miss whose quote is about something else (a drafted answer of the 0.5B model to a question
    the sample does not answer, from the dev half) — on either side of the default answer.verify_min."""
    from localrag.app.answering.verify import support_probability
    from localrag.app.config import AnswerSettings

    stated = support_probability(
        checking_llm, "In which year was the lens's mercury bath replaced by a roller-bearing pedestal?",
        "The mercury bath was replaced by a roller-bearing pedestal in 1997 [1].",
        ["The mercury bath was drained and replaced by a modern roller-bearing pedestal in **1997**, partly because "
         "of the health risk to maintenance staff."])
    near_miss = support_probability(
        checking_llm, "How many loaves does the Wren Loaf bakery sell on a typical Saturday?",
        "The Wren Loaf bakery sells 10 loaves on a typical Saturday [3].",
        ["The bakery rents its Fore Street premises from the Port Wren Town Council."])
    verify_min = AnswerSettings().verify_min
    assert stated is not None and near_miss is not None
    assert near_miss < verify_min <= stated, (near_miss, verify_min, stated)


def test_a_knowledge_graph_quote_is_read_with_its_node_label():
    from localrag.app.answering.citations import Citation
    from localrag.app.answering.verify import cited_quotes, verify_messages

    node = Source(n=1, chunk_id=7, source="/d/port-wren.ttl", kind="rdf", text="x", tokens=1, relevance=0.5,
                  label="Elias Thornbury")
    text = Source(n=2, chunk_id=8, source="/d/a.md", kind="text", text="y", tokens=1, relevance=0.5)
    cites = [Citation.of(node, "Civil engineer who designed Gannet Head Lighthouse."),
             Citation.of(text, "Elias Thornbury drew the plans.")]
    quotes = cited_quotes(cites, [node, text])
    assert quotes == ["Elias Thornbury: Civil engineer who designed Gannet Head Lighthouse.",
                      "Elias Thornbury drew the plans."]
    msgs = verify_messages("Who designed it?", "Elias Thornbury designed it [1].", quotes)
    assert msgs[0]["role"] == "system" and "Proposed answer: Elias Thornbury designed it." in msgs[1]["content"]
