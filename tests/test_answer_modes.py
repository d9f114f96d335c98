"""Answer modes (generative | extractive | auto) through `Rag.ask` / `ask_stream` and the CLI, on the session's
ingested sample (conftest `sample_rag`, read-only) with the packaged MiniLM. The default mode must answer test-split
sample questions with citations whose quote is in the cited source, and abstain on unanswerable ones. Fakes (named as
fakes) stand in for the LLM only where a test is about control flow: that extractive never calls it, and that auto
falls back to the extractive answer when every draft fails a hard guardrail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from localrag.app.answering import Answer, Restart
from localrag.app.cli import app
from localrag.app.config import Settings
from localrag.app.llm import Completion, StreamResult
from localrag.app.rag import Rag, RagError

QA = Path(__file__).resolve().parents[1] / "data" / "eval" / "qa.jsonl"
# the first answerable and all unanswerable questions of the test half of data/eval/qa.jsonl (never tuned on)
TEST_ANSWERABLE = ["a03", "a04", "a07", "a09", "a11", "a12"]
TEST_UNANSWERABLE = ["u02", "u04", "u06", "u08"]
# the extractive scorer (app/extractive.py, still being tuned) quotes a near-miss sentence for these
# the extractive scorer alone quotes near misses on three of them (when the bird club was founded, the current mayor,
# the Wren Skerries colony); the default auto mode's checking model turns those quotes down (issue 22)
KNOWN_WRONG: dict[str, str] = {}


def _qa() -> dict[str, dict]:
    items = {}
    for line in QA.read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            items[obj["id"]] = obj
    return items


@pytest.fixture(scope="module")
def qa() -> dict[str, dict]:
    items = _qa()
    for i in TEST_ANSWERABLE + TEST_UNANSWERABLE:
        assert items[i].get("split", "test") == "test", i  # once the file carries the split, it must agree
    return items


@pytest.fixture()
def rag(sample_rag, embedder):
    """A Rag on the session's ingested sample; no answer cache (nothing written into the shared data)."""
    r = Rag.open(sample_rag.data_dir, embedder=embedder, cache_enabled=False, score_answers=False)
    yield r
    r._llm = None
    r.close()


class FakeLLMThatMustNotBeCalled:
    """A fake LLM: any use fails the test (extractive mode must not call, or even load, the model)."""

    model_id = "fake-llm-must-not-be-called"
    n_ctx = 2048

    def generate(self, messages, **kw):
        raise AssertionError("the LLM was called")

    def stream(self, messages, **kw):
        raise AssertionError("the LLM was called")

    def count_tokens(self, text):
        raise AssertionError("the LLM tokenizer was used")

    def close(self):
        pass


class FakeLLMFailingGuardrails:
    """A fake LLM whose every draft fails a hard guardrail ('The answer is [1].' states nothing its source says)."""

    model_id = "fake-llm-bad-drafts"
    n_ctx = 2048

    def __init__(self):
        self.calls = 0

    def _c(self) -> Completion:
        self.calls += 1
        return Completion("The answer is [1].", 50, 5, "stop", 0.01, 0.005, self.model_id)

    def generate(self, messages, **kw):
        return self._c()

    def stream(self, messages, **kw):
        c = self._c()

        def produce(rec):
            yield c.text
            rec.completion = c

        return StreamResult(produce)

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        pass


def _grounded(ans: Answer) -> bool:
    """Answered, with citations whose quote is in the cited source's text (whitespace aside)."""
    by_n = {s.n: " ".join(s.text.split()) for s in ans.sources}
    return (not ans.abstained and bool(ans.citations)
            and all(" ".join(c.quote.split()) in by_n.get(c.n, "") for c in ans.citations))


def test_the_default_mode_answers_test_questions_with_grounded_citations(rag, qa):
    default = Settings().answer.mode
    answers = {i: rag.ask(qa[i]["question"]) for i in TEST_ANSWERABLE}
    assert all(a.mode in (default, f"{default}:generative", f"{default}:extractive") for a in answers.values())
    grounded = [i for i, a in answers.items() if _grounded(a)]
    # an always-abstaining pipeline gets 0; the extractive default gets 5 of 6 (a04 asks for two things)
    assert len(grounded) >= 4, {i: (a.text, a.abstain_reason) for i, a in answers.items()}
    assert all(a.timings.get("total", 99) < 30 for a in answers.values())


@pytest.mark.parametrize("qid", [
    pytest.param(q, marks=pytest.mark.xfail(reason=f"known miss of the extractive scorer: {KNOWN_WRONG[q]}",
                                            strict=False)) if q in KNOWN_WRONG else q
    for q in TEST_UNANSWERABLE])
def test_the_default_mode_abstains_on_unanswerable_test_questions(rag, qa, qid):
    ans = rag.ask(qa[qid]["question"])
    assert ans.abstained, ans.text


def test_extractive_mode_never_loads_or_calls_the_llm(rag, qa):
    ans = rag.ask(qa["a07"]["question"], answer_mode="extractive")
    assert rag._llm is None  # not even loaded
    assert ans.mode == "extractive" and ans.model_id == "extractive" and not ans.abstained
    assert ans.to_dict()["mode"] == "extractive"
    rag.set_llm(FakeLLMThatMustNotBeCalled())
    events = list(rag.ask_stream(qa["a12"]["question"], answer_mode="extractive"))
    final = events[-1]
    assert isinstance(final, Answer) and final.mode == "extractive"
    assert events[:-1] == [final.text]  # the text once, then the Answer
    assert _grounded(final)


def test_auto_quotes_the_sources_when_every_draft_fails_a_hard_guardrail(rag):
    fake = FakeLLMFailingGuardrails()
    rag.set_llm(fake)
    q = "Who designed Gannet Head Lighthouse?"
    ans = rag.ask(q, answer_mode="auto")
    assert fake.calls == 2  # the draft and one retry, both rejected
    assert ans.mode == "auto:extractive" and not ans.abstained and _grounded(ans)
    assert "Thornbury" in ans.text
    assert any("generated answer was not used" in w and "guardrails" in w for w in ans.warnings)
    assert ans.guardrails and ans.attempts == 2

    events = list(rag.ask_stream(q, answer_mode="auto"))
    final = events[-1]
    assert final.mode == "auto:extractive"
    # the quote is shown first and stays: the rejected drafts are never streamed in auto mode
    assert not any(isinstance(e, Restart) for e in events) and events[:-1] == [final.text]

    gen = rag.ask(q, answer_mode="generative")
    assert gen.mode == "generative" and gen.abstained and gen.abstain_reason.startswith("guardrails:")


def test_the_cache_keeps_answers_of_each_mode_apart(sample_rag, embedder):
    r = Rag.open(sample_rag.data_dir, embedder=embedder, score_answers=False)
    try:
        r.clear_cache()
        q = "Who designed Gannet Head Lighthouse?"
        first = r.ask(q, answer_mode="extractive")
        assert not first.abstained and r.ask(q, answer_mode="extractive").cached
        r.set_llm(FakeLLMFailingGuardrails())
        gen = r.ask(q, answer_mode="generative")
        assert not gen.cached and gen.mode == "generative"
    finally:
        r.clear_cache()
        r._llm = None
        r.close()


def test_unknown_mode_is_refused(rag):
    with pytest.raises(RagError, match="unknown answer mode"):
        rag.ask("Who designed Gannet Head Lighthouse?", answer_mode="poetic")


def test_cli_ask_answers_the_demo_question_in_the_default_mode(sample_rag):
    runner = CliRunner()
    data = str(sample_rag.data_dir)
    res = runner.invoke(app, ["--data-dir", data, "ask", "Who designed Gannet Head Lighthouse?", "--no-cache"])
    assert res.exit_code == 0, res.output
    assert res.output.count("Thornbury") >= 1
    body = res.output.split("\n\n")[0]  # the answer as streamed, before the citations
    # auto: the quote at once, then the model's checked answer after a note saying it replaces the quote
    final = body.split("replaces the quote above)")[-1]
    assert final.count("Thornbury") == 1, res.output  # the answer shown last, printed once
    res = runner.invoke(app, ["--data-dir", data, "ask", "Who designed Gannet Head Lighthouse?", "--no-cache",
                              "--json", "--mode", "extractive"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["mode"] == "extractive"
    res = runner.invoke(app, ["--data-dir", data, "ask", "What is the Harbour Master's annual salary?",
                              "--no-cache", "--mode", "extractive"])
    assert res.exit_code == 3, res.output  # abstained


def test_chat_page_has_an_answer_mode_select_and_shows_the_mode(sample_rag):
    from streamlit.testing.v1 import AppTest

    from localrag.ui import common

    common.provide_rag(sample_rag)
    try:
        at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "ui" / "app.py"), default_timeout=300)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        select = next(s for s in at.sidebar.selectbox if s.label == "Answer mode")
        assert select.value == Settings().answer.mode
        select.set_value("extractive").run()
        at.chat_input[0].set_value("Who designed Gannet Head Lighthouse?").run()
        assert not at.exception, [e.value for e in at.exception]
        ans = at.session_state["chat_messages"][-1]["answer"]
        assert ans["mode"] == "extractive" and not ans["abstained"]
        assert any("mode extractive" in c.value for c in at.caption)
    finally:
        common.provide_rag(None)
        sample_rag.clear_cache()
