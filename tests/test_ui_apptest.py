"""The Streamlit UI (ui/app.py) driven headless with streamlit.testing.v1.AppTest: every page, the real bundled
models for answers (one load per session), and a named fake LLM only where a test is about control flow (a rejected
draft restarting visibly, stop, follow-ups carrying the history)."""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest
from streamlit.testing.v1 import AppTest

from tests.fakes import FakeVerifier

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "ui" / "app.py")
SAMPLE = ROOT / "data" / "sample"
QUESTION = "Who designed Gannet Head Lighthouse?"
OFF_TOPIC = "What is the capital of Mongolia?"
TIMEOUT = 600  # one real answer from the 135M model; generous because CI machines are shared

SFT_SCHEMA = {
    "type": "object",
    "required": ["messages"],
    "properties": {
        "messages": {
            "type": "array", "minItems": 3, "maxItems": 3,
            "prefixItems": [
                {"type": "object", "properties": {"role": {"const": "system"}}},
                {"type": "object", "properties": {"role": {"const": "user"}}},
                {"type": "object", "properties": {"role": {"const": "assistant"}}},
            ],
            "items": {"type": "object", "required": ["role", "content"], "additionalProperties": False,
                      "properties": {"role": {"enum": ["system", "user", "assistant"]},
                                     "content": {"type": "string", "minLength": 1}}},
        },
    },
}


@pytest.fixture(scope="module")
def ui_rag(tmp_path_factory, embedder):
    """A small collection (the lighthouse article) with the real embedder and the real bundled LLM, greedy."""
    from localrag import Rag

    data = tmp_path_factory.mktemp("ui") / "data"
    rag = Rag.open(data, embedder=embedder, llm_temperature=0.0, answer_max_tokens=128,
                   answer_mode="generative")  # these tests are about the real model streaming
    report = rag.ingest([SAMPLE / "gannet-head-lighthouse.md"])
    assert report.exit_code == 0, report.to_dict()
    yield rag
    rag.close()


@pytest.fixture()
def serve():
    """Serve a given Rag to the app (ui.common.provide_rag), and stop serving it after the test."""
    from localrag.ui import common

    def use(rag):
        common.provide_rag(rag)

    yield use
    common.provide_rag(None)


def new_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def click_for_report(at: AppTest, key: str) -> dict:
    """Click a Documents-page button that runs an ingest/sync in a worker and return the outcome table it leaves.

    Twice in full-suite runs (never alone) the worker reported an error and no table; the page then shows the error
    and a person clicks again. The test does the same once and names the first error in a warning, so the cause is
    on record (tests/test_ui_apptest.py, stop 29) while the rest of the flow is still checked."""
    import warnings

    at.button(key=key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    if at.session_state["docs_report"] is None:
        first = [e.value for e in at.error]
        warnings.warn(f"the Documents page's worker failed once, clicked again: {first}", stacklevel=2)
        at.button(key=key).click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert at.session_state["docs_report"] is not None, (first, [e.value for e in at.error])
    return at.session_state["docs_report"]


def texts(at: AppTest) -> str:
    """Everything the page shows as text (markdown, captions, alerts), one string."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [w.value for w in at.warning] + [i.value for i in at.info]
    parts += [s.value for s in at.success]
    return "\n".join(str(p) for p in parts)


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input[0].set_value(question).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


# --- Chat, real model ---------------------------------------------------------------------------------------------
@dataclass
class Asked:
    at: AppTest
    rag: object


@pytest.fixture(scope="module")
def asked(ui_rag):
    """The lighthouse question asked once in the Chat page (the streaming path, with the real model)."""
    from localrag.ui import common

    common.provide_rag(ui_rag)
    try:
        at = new_app()
        ask(at, QUESTION)
        yield Asked(at, ui_rag)
    finally:
        common.provide_rag(None)


def test_chat_streams_an_answer_with_citations(asked):
    from localrag.app.answering.highlight import citing_words
    from localrag.index.text import content_words
    from localrag.ui.common import code, md_escape

    at = asked.at
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    msgs = at.session_state["chat_messages"]
    ans = msgs[-1]["answer"]
    assert not ans["abstained"], ans.get("abstain_reason")
    # it came through the stream: text pieces arrived before the final Answer
    assert ans["ui"]["first_piece_s"] is not None and ans["ui"]["first_piece_s"] <= ans["ui"]["finished_s"]
    assistant = at.chat_message[1]
    shown = "\n".join(m.value for m in assistant.markdown)
    assert md_escape(ans["text"]) in shown  # the answer, as text
    # numbered citations (the streaming path must not lose them), each expandable to source and quote
    assert ans["citations"], "the streamed answer lost its citations"
    labels = [e.label for e in assistant.expander]
    for c in ans["citations"]:
        assert f"[{c['n']}]" in ans["text"]
        assert any(lbl.startswith(f"\\[{c['n']}\\] gannet\\-head\\-lighthouse\\.md") for lbl in labels), labels
    first = ans["citations"][0]
    cite = next(e for e in assistant.expander if e.label.startswith(f"\\[{first['n']}\\]"))
    inside = "\n".join(m.value for m in cite.markdown)
    assert code(first["source"]) in inside and "**Quote:**" in inside
    cited = citing_words(ans["text"], first["n"]) & set(content_words(first["quote"]))
    for word in cited:  # the words the citing sentence shares with the quote are highlighted
        # as the UI writes it: Markdown-escaped inside the bold ("1.8" is **1\.8**)
        assert re.search(rf"\*\*{re.escape(md_escape(word))}\*\*", inside, re.IGNORECASE), (word, inside)
    assert "p. " not in cite.label  # a Markdown file has no pages
    # badges and the details row
    assert "faithfulness" in shown and "relevance" in shown
    details = "\n".join(c.value for c in assistant.caption)
    assert "retrieval" in details and "first token" in details and "total" in details


def test_chat_is_saved_and_reopens_after_a_refresh(asked, serve):
    conv_id = asked.at.session_state["chat_conv"]
    assert asked.at.query_params["c"] == conv_id
    saved = asked.rag.conversations.load(conv_id)
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
    assert saved["messages"][1]["answer"]["citations"]
    # a new browser session (a refresh) with the conversation in the URL shows it again
    serve(asked.rag)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["c"] = conv_id
    at.run()
    assert not at.exception
    assert [m.name for m in at.chat_message] == ["user", "assistant"]
    answer = saved["messages"][1]["answer"]["text"]
    from localrag.ui.common import md_escape

    assert md_escape(answer) in "\n".join(m.value for m in at.chat_message[1].markdown)
    # and the sidebar lists it
    assert any(b.key == f"conv-{conv_id}" for b in at.sidebar.button)


def test_feedback_is_stored_and_exported(asked, serve, tmp_path):
    serve(asked.rag)
    at = asked.at
    assert len(at.feedback) == 1
    at.feedback[0].set_value(1).run()
    assert not at.exception
    mid = at.session_state["chat_messages"][-1]["id"]
    fb = asked.rag.conversations.feedback_for(mid)
    answer = at.session_state["chat_messages"][-1]["answer"]["text"]
    assert fb["rating"] == 1 and fb["question"] == QUESTION and fb["answer"] == answer
    assert fb["citations"] and fb["sources"] and fb["model_id"] and fb["scores"]
    # a comment updates the same rating
    at.text_input(key=f"fbc-{mid}").input("names the engineer").run()
    assert asked.rag.conversations.feedback_for(mid)["comment"] == "names the engineer"
    assert len(asked.rag.conversations.feedback()) == 1

    out = tmp_path / "sft.jsonl"
    assert asked.rag.export_sft(out, rating="up") == 1
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    jsonschema.validate(rec, SFT_SCHEMA)
    system, user, assistant = rec["messages"]
    assert "<<<SOURCE 1" in user["content"] and QUESTION in user["content"]
    assert assistant["content"] == answer


def test_abstention_is_shown_as_such(ui_rag, serve):
    serve(ui_rag)
    at = ask(new_app(), OFF_TOPIC)
    assistant = at.chat_message[-1]
    warn = "\n".join(w.value for w in assistant.warning)
    assert "No answer from the documents" in warn and "relevance" in warn  # the reason
    assert not [e for e in assistant.expander if e.label.startswith("\\[")]  # no citations
    ans = at.session_state["chat_messages"][-1]["answer"]
    assert ans["abstained"]


def test_error_is_a_message_not_a_traceback(ui_rag, serve, rag_factory, embedder):
    """The LLM server is down: an error box that says what to do, no exception element, and the chat goes on."""
    import socket

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = rag_factory(ui_rag.data_dir, llm_backend="openai", llm_base_url=f"http://127.0.0.1:{port}/v1",
                       llm_model="some-model", cache_enabled=False, llm_timeout_s=5, answer_mode="generative")
    serve(down)
    at = ask(new_app(), QUESTION)
    assert not at.exception
    err = "\n".join(e.value for e in at.error)
    assert "Error while answering" in err and "llm" in err.lower()
    assert "localrag llm info" in err  # what to do
    assert at.chat_input[0].disabled is False


def test_two_sessions_answer_at_once(ui_rag):
    """Two browser sessions asking at the same moment share one Rag and one LLM: both get their answers (the model
    is serialised, not corrupted)."""
    from localrag.ui.chat_job import AnswerJob

    opts = {"cache": False, "max_tokens": 24, "temperature": 0.0, "k": 1}  # short prompts: this is about concurrency
    jobs = [AnswerJob(QUESTION, "default", dict(opts)), AnswerJob("When was the light first exhibited?", "default",
                                                                  dict(opts))]
    for job in jobs:
        job.start(ui_rag)
    for job in jobs:
        assert job.wait(TIMEOUT)
    for job in jobs:
        assert job.error is None, repr(job.error)
        assert job.answer is not None and job.answer.model_id
        assert job.answer.abstained or job.answer.citations


# --- Chat control flow, with a fake LLM --------------------------------------------------------------------------
@dataclass
class FakeScriptedLLM:
    """A fake LLM for control-flow tests: scripted replies in order, streamed word by word with an optional delay
    (so that a test can stop it half-way)."""

    replies: list[str]
    delay: float = 0.0
    model_id: str = "fake-scripted"
    calls: list[list[dict]] = field(default_factory=list)
    n_ctx: int = 4096
    gate: threading.Event = field(default_factory=threading.Event)

    def _completion(self, messages):
        from localrag.app.llm import Completion

        self.calls.append(messages)
        text = self.replies[min(len(self.calls) - 1, len(self.replies) - 1)]
        return Completion(text, 50, len(text.split()), "stop", 0.01, 0.001, self.model_id)

    def generate(self, messages, **kw):
        return self._completion(messages)

    def stream(self, messages, **kw):
        from localrag.app.llm import StreamResult

        c = self._completion(messages)

        def produce(rec):
            for n, word in enumerate(c.text.split(" ")):
                if n == 1:
                    self.gate.set()  # the first piece is out
                if self.delay:
                    time.sleep(self.delay)
                yield word + " "
            rec.completion = c

        return StreamResult(produce)

    def count_tokens(self, text):
        return len(text.split())

    def close(self):
        pass


@pytest.fixture()
def fake_rag(ui_rag, rag_factory):
    def make(llm):
        # the fakes stand in for a model that writes: pin the generative mode (the default is auto)
        rag = rag_factory(ui_rag.data_dir, cache_enabled=False, score_answers=False, answer_mode="generative")
        rag.set_llm(llm)
        return rag

    return make


def test_rejected_draft_restarts_visibly(fake_rag, serve):
    llm = FakeScriptedLLM(["The tower was painted blue by 1999 sailors [1].",
                           "Gannet Head Lighthouse was designed by Elias Thornbury [1]."])
    serve(fake_rag(llm))
    at = ask(new_app(), QUESTION)
    ans = at.session_state["chat_messages"][-1]["answer"]
    assert len(llm.calls) == 2 and ans["restarts"], "the first draft should fail the numbers guardrail"
    assert "Thornbury" in ans["text"] and "blue" not in ans["text"]
    caps = "\n".join(c.value for c in at.chat_message[-1].caption)
    assert "1 draft(s) rejected" in caps


def test_auto_shows_the_quote_then_the_answer_replaces_it(ui_rag, rag_factory, serve):
    """Auto mode: the quote is on the page first (no model), then the model's checked answer replaces it with the
    same citation numbers, and the turn says which writer it shows."""
    llm = FakeScriptedLLM(["Gannet Head Lighthouse was designed by the civil engineer Elias Thornbury [1]."])
    rag = rag_factory(ui_rag.data_dir, cache_enabled=False, score_answers=False, answer_mode="auto")
    rag.set_llm(llm)
    rag.set_verifier(FakeVerifier(0.95))  # control flow: the checking model finds the answer in its quote
    serve(rag)
    at = new_app()
    at.sidebar.selectbox(key="chat_answer_mode").set_value("auto").run()
    ask(at, QUESTION)
    ans = at.session_state["chat_messages"][-1]["answer"]
    assert ans["mode"] == "auto:generative" and "civil engineer" in ans["text"]
    assert ans["ui"]["quote_shown"] and "[1]" in ans["ui"]["quote_shown"]  # a cited quote came first
    assert ans["ui"]["quote_shown"] != ans["text"]
    caps = "\n".join(c.value for c in at.chat_message[-1].caption)
    assert "replaced the quote shown first" in caps


def test_a_cached_answer_says_why_and_ask_again_answers_afresh(ui_rag, rag_factory, serve):
    """The same question asked another way is answered from the cache, and the turn says so ("the same question
    asked another way as '…'"); "Ask again" answers it afresh, without the cache (extractive: no model)."""
    rag = rag_factory(ui_rag.data_dir, answer_mode="extractive", score_answers=False)
    rag.clear_cache()
    serve(rag)
    at = new_app()
    at.sidebar.selectbox(key="chat_answer_mode").set_value("extractive").run()
    ask(at, QUESTION)
    ask(at, "Who was the designer of Gannet Head Lighthouse?")
    second = at.session_state["chat_messages"][-1]["answer"]
    assert second["cached"] and second["cache"]["kind"] == "paraphrase"
    from localrag.ui.common import md_escape

    caps = "\n".join(c.value for c in at.chat_message[-1].caption)
    assert md_escape(f"answered from the cache: the same question asked another way as '{QUESTION}'") in caps
    again = [b for b in at.button if b.label == "Ask again"]
    assert len(again) == 1
    again[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    last = at.session_state["chat_messages"][-1]
    assert last["role"] == "assistant" and not last["answer"]["cached"]
    assert at.session_state["chat_messages"][-2]["content"] == "Who was the designer of Gannet Head Lighthouse?"
    assert last["answer"]["text"] == second["text"]  # the same sources give the same quote


def test_follow_up_sends_the_history(fake_rag, serve):
    llm = FakeScriptedLLM(["Gannet Head Lighthouse was designed by Elias Thornbury [1].",
                           "When was Gannet Head Lighthouse first lit?",
                           "The light was first exhibited on the evening of 14 October 1867 [1]."])
    serve(fake_rag(llm))
    at = ask(new_app(), QUESTION)
    ask(at, "When was it first lit?")
    # the second call is the rewrite: it saw the first turn
    rewrite = "\n".join(m["content"] for m in llm.calls[1])
    assert "Thornbury" in rewrite and "When was it first lit?" in rewrite
    last = at.session_state["chat_messages"][-1]["answer"]
    assert last["standalone_question"] == "When was Gannet Head Lighthouse first lit?"
    assert "1867" in last["text"]
    assert "Searched for" in "\n".join(c.value for c in at.chat_message[-1].caption)


def test_clicks_while_streaming_keep_the_answer_and_stop_stops_it(fake_rag, serve):
    """Streamlit reruns on every click. The answer lives in a worker, so a rerun picks it up again; Stop ends it
    with the partial text saved and marked."""
    from localrag.ui.chat_job import AnswerJob

    llm = FakeScriptedLLM(["Gannet Head Lighthouse was designed by Elias Thornbury who built two rock towers "
                           "further along the coast before it and many more words follow here [1]."], delay=0.3)
    rag = fake_rag(llm)
    serve(rag)
    at = new_app()
    conv = rag.conversations.create("default")
    at.session_state["chat_conv"] = conv
    job = AnswerJob(QUESTION, "default", {"history": None}, conversation_id=conv).start(rag)
    at.session_state["chat_job"] = job
    assert llm.gate.wait(60)
    with pytest.raises(RuntimeError, match="timed out"):
        at.run(timeout=1.5)  # the script run is stopped half-way (as a click does), the job goes on
    assert not job.done
    job.stop()  # what the Stop button's callback does
    at.run()
    msg = at.session_state["chat_messages"][-1]
    assert msg["answer"]["stopped"] and msg["content"].startswith("Gannet")
    assert "stopped before the answer was finished" in "\n".join(c.value for c in at.chat_message[-1].caption)
    saved = rag.conversations.load(conv)["messages"][-1]
    assert saved["answer"]["stopped"]


# --- Documents -----------------------------------------------------------------------------------------------------
def test_upload_is_sanitised_ingested_once_and_removable(rag_factory, serve):
    rag = rag_factory()
    serve(rag)
    at = new_app()
    at.switch_page("page_documents.py").run()
    assert not at.exception
    body = b"# Crane log\n\nThe harbour crane at Port Wren lifts up to 40 tonnes and was installed in 2011.\n"
    at.file_uploader(key="docs_upload").set_value(("../../etc/crane <log>.md", body, "text/markdown")).run()
    at.button(key="docs_ingest_uploads").click().run()
    assert not at.exception, [e.value for e in at.exception]
    report = at.session_state["docs_report"]
    assert [r["outcome"] for r in report["rows"]] == ["ingested"], report
    saved = rag.data_dir / "uploads" / "default" / "crane log.md"
    assert saved.read_bytes() == body, sorted(p.name for p in (rag.data_dir / "uploads" / "default").iterdir())
    assert report["rows"][0]["file"] == "uploads/default/crane log.md"
    assert any(d["name"] == "crane log.md" for d in rag.documents("default"))
    # the uploader keeps its file across reruns: ingesting again stores nothing new
    at.button(key="docs_ingest_uploads").click().run()
    assert [r["outcome"] for r in at.session_state["docs_report"]["rows"]] == ["unchanged"]
    assert "unchanged" in texts(at)
    # remove it from the list
    at.multiselect(key="docs_remove_choice").set_value([str(saved)]).run()
    at.button(key="docs_remove").click().run()
    assert not at.exception
    assert [r["outcome"] for r in at.session_state["docs_report"]["rows"]] == ["removed"]
    assert rag.documents("default") == []


def test_upload_takes_every_kind_the_ingestion_takes(rag_factory, serve):
    """An HTML page goes in through the uploader like any file `localrag ingest` takes (the list is ingest's own)."""
    rag = rag_factory()
    serve(rag)
    at = new_app()
    at.switch_page("page_documents.py").run()
    body = (b"<html><head><title>Crane</title><script>var x = 1;</script></head><body><h1>Crane log</h1>"
            b"<p>The harbour crane at Port Wren lifts up to 40 tonnes and was installed in 2011.</p></body></html>")
    at.file_uploader(key="docs_upload").set_value(("crane.html", body, "text/html")).run()
    report = click_for_report(at, "docs_ingest_uploads")
    assert [r["outcome"] for r in report["rows"]] == ["ingested"], report
    assert [d["kind"] for d in rag.documents("default")] == ["html"]


def test_a_click_during_an_ingest_does_not_abort_it(rag_factory, serve):
    from localrag.ui.tasks import Task

    rag = rag_factory()
    serve(rag)
    at = new_app()
    at.switch_page("page_documents.py").run()
    gate = threading.Event()

    def held_ingest(progress):  # the real ingest, held back until the script run below has been stopped
        assert gate.wait(60)
        return rag.ingest([SAMPLE / "wren-loaf-bakery.md"], progress=progress)

    at.session_state["docs_task"] = Task("Ingesting", held_ingest, {"extra_rows": []}).start()
    with pytest.raises(RuntimeError, match="timed out"):
        at.run(timeout=1.5)  # the page follows the task; this run is stopped half-way, as a click does
    gate.set()
    at.run()
    assert not at.exception
    assert [r["outcome"] for r in at.session_state["docs_report"]["rows"]] == ["ingested"]
    assert [d["name"] for d in rag.documents("default")] == ["wren-loaf-bakery.md"]


def test_folder_sync_and_bad_file_outcomes(rag_factory, serve, tmp_path):
    rag = rag_factory()
    serve(rag)
    folder = tmp_path / "notes"
    folder.mkdir()
    shutil.copy(SAMPLE / "wren-loaf-bakery.md", folder)
    (folder / "broken.ttl").write_text("@prefix ex: <http://example.org/> .\nex:a ex:b", encoding="utf-8")
    at = new_app()
    at.switch_page("page_documents.py").run()
    at.text_input(key="docs_folder").input(str(folder)).run()
    rows = {Path(r["file"]).name: r for r in click_for_report(at, "docs_folder_sync")["rows"]}
    assert rows["wren-loaf-bakery.md"]["outcome"] == "ingested"
    assert rows["broken.ttl"]["outcome"] == "error" and rows["broken.ttl"]["details"]
    assert "could not be ingested" in texts(at)
    # status and index health
    assert any(df.value["collection"].tolist() == ["default"] for df in at.dataframe if "collection" in df.value)


# --- Search --------------------------------------------------------------------------------------------------------
def test_search_shows_stage_scores_and_timings(ui_rag, serve):
    serve(ui_rag)
    at = new_app()
    at.switch_page("page_search.py").run()
    at.text_input(key="search_query").input("lighthouse keeper")
    at.button[0].click().run()  # the form's submit button sends the form's values
    assert not at.exception
    res = at.session_state["search_result"]
    assert res["hits"] and res["mode"] == "hybrid"
    caption = "\n".join(c.value for c in at.caption)
    assert "retrieve" in caption or "dense" in caption or "total" in caption, caption
    stage_tables = [df.value for df in at.dataframe if "fused" in df.value.columns]
    assert stage_tables and {"dense", "lexical", "fused"} <= set(stage_tables[0].columns)
    assert "(#1)" in str(stage_tables[0]["fused"].iloc[0])
    assert any("keeper" in t.value.lower() for t in at.text)


# --- Evaluate ------------------------------------------------------------------------------------------------------
def test_evaluate_runs_an_uploaded_qa_set(ui_rag, serve):
    serve(ui_rag)
    at = new_app()
    at.switch_page("page_evaluate.py").run()
    qa = "\n".join(json.dumps(x) for x in [
        {"id": "u1", "question": OFF_TOPIC, "reference": "", "answerable": False},
        {"id": "u2", "question": "Which football team won the 1998 World Cup?", "reference": "", "answerable": False},
    ]).encode()
    at.radio(key="eval_source").set_value("upload").run()
    at.file_uploader(key="eval_upload").set_value(("my qa.jsonl", qa, "application/json")).run()
    at.button(key="eval_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    saved = at.session_state["eval_result"]
    assert saved["result"]["n_items"] == 2 and saved["result"]["abstention"]["accuracy"] == 1.0
    summary = {(r["section"], r["measure"]): r["value"] for r in saved["summary"]}
    assert summary[("abstention", "accuracy")].startswith("100")
    names = {d.proto.label for d in at.get("download_button")}
    assert {"Download report.json", "Download report.md"} <= names
    assert json.loads(Path(saved["paths"][0]).read_text())["n_items"] == 2


def test_pages_without_documents_say_what_to_do(rag_factory, serve):
    serve(rag_factory())
    at = new_app()
    assert "no documents yet" in texts(at).lower()
    for page in ("page_documents.py", "page_search.py", "page_evaluate.py"):
        at.switch_page(page).run()
        assert not at.exception, page


def test_document_text_is_escaped():
    from localrag.ui.common import code, highlight, md_escape, safe_filename

    evil = '![x](http://evil.example/p.png) <img src=x onerror=alert(1)> [link](javascript:alert(1)) $x$ # h'
    out = md_escape(evil)
    assert re.search(r"(?<!\\)[!\[\]()<>$#:]", out) is None, out  # every special character is escaped
    assert out.replace("\\", "") == evil  # and nothing else changed
    assert highlight([("Elias", False), (" ", False), ("Thornbury", True), (" designed it.", False)]) == \
        "Elias **Thornbury** designed it\\."
    assert safe_filename("../../etc/passwd") == "passwd"
    assert safe_filename("..") == "upload" and safe_filename("a/b\\c.md") == "c.md"
    assert safe_filename(".hidden.md") == "hidden.md"
    assert code("https://x.org/a`b") == "``https://x.org/a`b``"  # URIs as literal code, never as links


# --- Documents: tuning the search (Rag.tune) -----------------------------------------------------------------------
def test_tune_panel_runs_a_tune_reports_it_refuses_a_second_and_undoes(rag_factory, serve):
    """The Documents page's tune panel drives Rag.tune with its inputs (max chunks, epochs), follows the progress
    callbacks, and shows the report (held-out recall before/after, switched or not, time per stage); while another
    tune holds the collection's guard (a real held lock) the button's run is refused with the holder named; Undo
    appears once the collection uses a tuned model and takes it back. The question writer is a named fake
    (tests/fakes.py, FakeQuestionLLM) because this test is about the UI's control flow; the real LLM writing
    questions is tested in tests/test_tune.py."""
    import os

    from fakes import FakeQuestionLLM

    from localrag.app.tune import TrainSettings, TuneOptions
    from localrag.ingest.job import CollectionLock
    from localrag.ui.common import md_escape

    rag = rag_factory()
    assert rag.ingest([SAMPLE / "gannet-head-lighthouse.md", SAMPLE / "wren-loaf-bakery.md"]).exit_code == 0
    coll = rag.store.collection("default")
    rag.set_llm(FakeQuestionLLM())
    serve(rag)
    at = new_app()
    at.switch_page("page_documents.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not [b for b in at.button if b.key == "docs_tune_undo"]  # the base model: nothing to undo
    at.number_input(key="docs_tune_max_chunks").set_value(14)
    at.number_input(key="docs_tune_epochs").set_value(1)
    at.button(key="docs_tune").click().run()
    assert not at.exception, [e.value for e in at.exception]
    rep = at.session_state["docs_tune_report"]
    assert rep["error"] is None, rep["error"]
    r = rep["result"]
    assert r["sampled"] == 14 and r["chunks"] == 18 and r["training"]["epochs"] == 1
    assert rep["stages"] == ["questions", "training", "re-embedding"]  # the progress the bar followed
    assert md_escape(r["decision"]) in texts(at)
    held = next(t.value for t in at.table if "held-out questions" in t.value.columns)
    assert held["base model"].tolist() == [f"{r['before'][m]:.3f}" for m in ("recall@5", "mrr@10")]
    assert held["tuned model"].tolist() == [f"{r['after'][m]:.3f}" for m in ("recall@5", "mrr@10")]
    stages = next(t.value for t in at.table if "training" in t.value.columns)
    assert {"questions", "filter", "training", "re-embedding", "switch", "total"} <= set(stages.columns)
    # a second tune while one runs (here: its guard held, for real) is refused, naming the holder
    with CollectionLock(rag._folder(coll), rag.store, coll.id, purpose="tune"):
        at.button(key="docs_tune").click().run()
    assert not at.exception
    refused = "\n".join(e.value for e in at.error)
    assert "a tune of this collection is already running" in refused.replace("\\", "")
    assert f"pid {os.getpid()}" in refused.replace("\\", ""), refused
    # Undo: shown once the collection uses a tuned model (switched here whatever the held-out change)
    if not r["switched"]:
        assert rag.tune(options=TuneOptions(min_gain=-1.0, train=TrainSettings(epochs=0)))["switched"]
    at.run()
    assert "tuned embedder" in texts(at)
    at.button(key="docs_tune_undo").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.session_state["docs_tune_report"]["undo"] and "base model again" in texts(at)
    assert rag.collection_embedder().model_id == rag.embedder.model_id
    assert not [b for b in at.button if b.key == "docs_tune_undo"]


def test_tune_progress_text_has_stage_fraction_and_eta():
    from localrag.ui.page_documents import tune_progress
    from localrag.ui.tasks import StageProgress, Task, duration

    now = [100.0]
    tracker = StageProgress(clock=lambda: now[0])
    task = Task("Tuning", lambda cb: None, {"collection": "notes", "tracker": tracker, "undo": False})
    task.started = 95.0
    assert "sampling the chunks" in tune_progress(task, now=100.0)[1]
    tracker("questions", 0, 40)
    frac, text = tune_progress(task, now=100.0)
    assert frac == 0.0 and "stage 1/5, writing a question per chunk: 0/40 (0%) · ETA –" in text
    now[0] = 120.0
    tracker("questions", 10, 40)  # 2 s a question: 30 left
    frac, text = tune_progress(task, now=120.0)
    assert frac == 0.25 and ": 10/40 (25%) · ETA 1 min 00 s · 25 s elapsed" in text
    tracker("questions", 40, 40)
    assert "stage 2/5, filtering the questions" in tune_progress(task, now=120.0)[1]
    tracker("training", 1, 9)
    now[0] = 130.0
    tracker("training", 3, 9)  # 5 s a step since the stage's first report: 6 left
    assert "stage 3/5, training the embedder: 3/9 (33%) · ETA 30 s" in tune_progress(task, now=130.0)[1]
    tracker("re-embedding", 64, 64)
    assert "stage 5/5, switching" in tune_progress(task, now=130.0)[1]
    assert tracker.stages == ["questions", "training", "re-embedding"]
    assert [duration(x) for x in (None, 2.54, 45, 200, 7500)] == ["–", "2.5 s", "45 s", "3 min 20 s", "2 h 05 min"]
