"""Conversations, messages and feedback in the database (app/conversations.py), their export as chat-format
fine-tuning data (`localrag export sft`), and `localrag ui`'s command line. No models are loaded."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from localrag.app.answering import SYSTEM_PROMPT, Answer, Citation, Source
from localrag.app.conversations import ConversationError, Conversations
from localrag.index.store import Store

CHAT_JSONL = {
    "type": "object",
    "required": ["messages"],
    "properties": {"messages": {
        "type": "array", "minItems": 3, "maxItems": 3,
        "items": {"type": "object", "required": ["role", "content"], "additionalProperties": False,
                  "properties": {"role": {"enum": ["system", "user", "assistant"]},
                                 "content": {"type": "string", "minLength": 1}}},
    }},
}


def an_answer(text: str = "The lighthouse was designed by Elias Thornbury [1].", abstained: bool = False) -> Answer:
    src = Source(n=1, chunk_id=7, source="/docs/gannet-head-lighthouse.md", kind="markdown",
                 text="The Board commissioned the civil engineer Elias Thornbury to design a tower.", tokens=14,
                 relevance=0.71)
    return Answer(question="Who designed the lighthouse?", text=text, abstained=abstained, model_id="smol-test",
                  collection="default", sources=[src],
                  citations=[Citation(n=1, chunk_id=7, source=src.source, page=None, kg_uri=None,
                                      quote="The Board commissioned the civil engineer Elias Thornbury.")],
                  scores={"judge": "proxy", "values": {"faithfulness": 1.0, "answer_relevancy": 0.6}})


@pytest.fixture()
def convs(tmp_path) -> Conversations:
    store = Store.sqlite(tmp_path / "data" / "localrag.sqlite")
    yield Conversations(store)
    store.engine.dispose()


def test_conversation_round_trip(convs):
    cid = convs.create("default", settings={"k": 4})
    assert convs.load(cid)["title"] == ""
    q = convs.append(cid, "user", "Who designed the lighthouse?")
    a = convs.append(cid, "assistant", an_answer().text, an_answer())
    conv = convs.load(cid)
    assert conv["title"] == "Who designed the lighthouse?" and conv["settings"] == {"k": 4}
    assert [m["id"] for m in conv["messages"]] == [q, a]
    assert conv["messages"][1]["answer"]["citations"][0]["quote"].startswith("The Board")
    assert convs.history(cid) == [{"role": "user", "content": "Who designed the lighthouse?"},
                                  {"role": "assistant", "content": an_answer().text}]
    listed = convs.list()
    assert listed[0]["id"] == cid and listed[0]["messages"] == 2
    assert convs.list(collection="other") == []
    assert convs.load("nope") is None
    with pytest.raises(ConversationError):
        convs.append("nope", "user", "x")
    with pytest.raises(ConversationError):
        convs.append(cid, "system", "x")
    other = convs.create("default")
    assert other != cid and len(other) == 32  # random ids: a link to a chat cannot be guessed


def test_feedback_is_self_contained_and_replaced_on_a_second_rating(convs):
    cid = convs.create("default")
    convs.append(cid, "user", "Who designed the lighthouse?")
    mid = convs.append(cid, "assistant", an_answer().text, an_answer())
    fid = convs.rate("up", message_id=mid)
    fb = convs.feedback_for(mid)
    assert fb["id"] == fid and fb["rating"] == 1 and fb["question"] == "Who designed the lighthouse?"
    assert fb["answer"] == an_answer().text and fb["model_id"] == "smol-test"
    assert fb["citations"][0]["n"] == 1 and fb["sources"][0]["chunk_id"] == 7
    assert fb["scores"]["values"]["faithfulness"] == 1.0
    assert convs.rate("down", message_id=mid, comment=" wrong source ") == fid  # replaced, not added
    fb = convs.feedback_for(mid)
    assert fb["rating"] == -1 and fb["comment"] == "wrong source"
    assert convs.load(cid)["messages"][1]["feedback"]["rating"] == -1
    with pytest.raises(ConversationError):
        convs.rate("up", message_id=mid - 1)  # a user message
    with pytest.raises(ConversationError):
        convs.rate("meh", message_id=mid)
    # an answer outside any conversation (the Python API)
    convs.rate(1, answer=an_answer())
    assert len(convs.feedback()) == 2 and len(convs.feedback("up")) == 1
    # deleting the chat keeps the ratings: they are training data
    assert convs.delete(cid) and convs.load(cid) is None
    assert len(convs.feedback()) == 2 and convs.feedback()[0]["message_id"] is None


def test_export_sft_is_chat_format(convs, tmp_path):
    cid = convs.create("default")
    convs.append(cid, "user", "Who designed the lighthouse?")
    up = convs.append(cid, "assistant", an_answer().text, an_answer())
    convs.append(cid, "user", "And the colour?")
    down = convs.append(cid, "assistant", "It is blue [1].", an_answer("It is blue [1]."))
    convs.rate("up", message_id=up)
    convs.rate("down", message_id=down)
    convs.rate("up", answer=an_answer().to_dict() | {"collection": "other"})
    out = tmp_path / "sft" / "train.jsonl"
    assert convs.export_sft(out, rating="up", collection="default") == 1
    recs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(recs) == 1
    jsonschema.validate(recs[0], CHAT_JSONL)
    system, user, assistant = recs[0]["messages"]
    assert system == {"role": "system", "content": SYSTEM_PROMPT}
    assert "<<<SOURCE 1 | gannet-head-lighthouse.md>>>" in user["content"]
    assert "civil engineer Elias Thornbury" in user["content"] and "Who designed the lighthouse?" in user["content"]
    assert assistant == {"role": "assistant", "content": an_answer().text}
    assert recs[0]["rating"] == "up"
    assert convs.export_sft(out, rating="any") == 3
    ratings = [json.loads(line)["rating"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert ratings == ["up", "down", "up"]
    with pytest.raises(ConversationError):
        convs.export_sft(out, rating="down")  # type: ignore[arg-type]


def test_an_old_data_directory_gains_the_new_tables(tmp_path):
    """A database made before conversations existed: opening it adds the tables and keeps everything else."""
    db = tmp_path / "localrag.sqlite"
    store = Store.sqlite(db)
    store.engine.dispose()
    con = sqlite3.connect(db)
    con.execute("INSERT INTO collections (name, embedding_model, embedding_dim, chunk_tokens, chunk_overlap, "
                "corpus_version, created, updated) VALUES ('old', 'm', 384, 200, 32, 3, '2026-01-01', '2026-01-01')")
    for table in ("feedback", "messages", "conversations"):
        con.execute(f"DROP TABLE {table}")
    con.commit()
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert not {"conversations", "messages", "feedback"} & tables
    con.close()
    store = Store.sqlite(db)
    try:
        assert store.collection("old").corpus_version == 3
        convs = Conversations(store)
        cid = convs.create("old")
        convs.append(cid, "user", "still works?")
        assert convs.load(cid)["messages"][0]["content"] == "still works?"
    finally:
        store.engine.dispose()


def test_cli_export_sft(tmp_path):
    from localrag.app.cli import app

    data = tmp_path / "data"
    store = Store.sqlite(data / "localrag.sqlite")
    convs = Conversations(store)
    convs.rate("up", answer=an_answer())
    store.engine.dispose()
    out = tmp_path / "out.jsonl"
    runner = CliRunner()
    res = runner.invoke(app, ["--data-dir", str(data), "export", "sft", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "wrote 1" in res.output and "SFTTrainer" in res.output
    jsonschema.validate(json.loads(out.read_text(encoding="utf-8")), CHAT_JSONL)
    res = runner.invoke(app, ["--data-dir", str(data), "export", "sft", "--out", str(out), "--rating", "bad"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["--data-dir", str(data), "export", "sft", "--out", str(out), "-c", "none"])
    assert res.exit_code == 0 and out.read_text() == ""


def test_ui_command_line():
    from localrag.app.cli.ui import app_script, streamlit_command

    cmd = streamlit_command("127.0.0.1", 8600, 200)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and Path(cmd[4]) == app_script() and app_script().is_file()
    opts = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert opts["--server.headless"] == "true" and opts["--browser.gatherUsageStats"] == "false"
    assert opts["--server.address"] == "127.0.0.1" and opts["--server.port"] == "8600"
    assert opts["--server.maxUploadSize"] == "200"
