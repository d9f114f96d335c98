"""The `localrag` CLI: exit codes, --json output, status, and clear configuration errors."""

from __future__ import annotations

import json
import socket

from typer.testing import CliRunner

from localrag.app.cli import app

runner = CliRunner()


def test_help_explains_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("ingest", "sync", "remove", "status", "search"):
        assert cmd in res.output


def test_ingest_json_exit_codes_and_status(tmp_path):
    data = tmp_path / "data"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("# Ferry\n\nThe Skerry Point ferry leaves at 09:40 on weekdays.\n")
    (docs / "broken.pdf").write_bytes(b"this is not a pdf at all")
    res = runner.invoke(app, ["--data-dir", str(data), "ingest", str(docs), "--json"])
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    by = {f["source"].rsplit("/", 1)[-1]: f for f in report["files"]}
    assert by["ok.md"]["status"] == "ingested"
    assert by["broken.pdf"]["status"] == "error" and "not a PDF" in by["broken.pdf"]["reason"]

    (docs / "broken.pdf").unlink()
    res = runner.invoke(app, ["--data-dir", str(data), "ingest", str(docs), "--json"])
    assert res.exit_code == 0
    assert json.loads(res.stdout)["counts"]["unchanged"] == 1

    res = runner.invoke(app, ["--data-dir", str(data), "status", "--json"])
    assert res.exit_code == 0
    st = json.loads(res.stdout)["collections"][0]
    assert st["documents"] == 1 and st["index"]["in_step"] and st["embedding_dim"] == 384

    res = runner.invoke(app, ["--data-dir", str(data), "search", "ferry time", "--json"])
    assert res.exit_code == 0
    out = json.loads(res.stdout)
    assert out["hits"][0]["source"].endswith("ok.md") and out["reranker"] is None and out["mode"] == "hybrid"


def test_usage_and_config_errors_exit_2(tmp_path):
    assert runner.invoke(app, ["ingest"]).exit_code == 2  # missing PATH
    assert runner.invoke(app, ["--data-dir", str(tmp_path), "sync", str(tmp_path / "nofolder")]).exit_code == 2
    res = runner.invoke(app, ["--data-dir", str(tmp_path), "ingest", str(tmp_path), "--chunk-tokens", "4"])
    assert res.exit_code == 2 and "chunk_tokens" in res.output
    res = runner.invoke(app, ["--data-dir", str(tmp_path), "search", "   "])
    assert res.exit_code == 2 and "empty query" in res.output


def test_search_table_filters_and_messages(tmp_path):
    data = tmp_path / "data"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ferry.md").write_text("# Ferry\n\nThe Skerry Point ferry leaves at 09:40 on weekdays.\n")
    (docs / "bakery.txt").write_text("The Wren Loaf bakery opens at 07:00 and bakes sourdough with samphire.\n")
    assert runner.invoke(app, ["--data-dir", str(data), "ingest", str(docs)]).exit_code == 0
    res = runner.invoke(app, ["--data-dir", str(data), "search", "when does the ferry leave", "-k", "2"],
                        env={"COLUMNS": "160"})
    assert res.exit_code == 0
    assert "ferry.md" in res.output and "relevance" in res.output and "reranker: none" in res.output
    res = runner.invoke(app, ["--data-dir", str(data), "search", "ferry", "--kind", "text", "--json"])
    hits = json.loads(res.stdout)["hits"]
    assert [h["source"].rsplit("/", 1)[-1] for h in hits] == ["bakery.txt"]
    res = runner.invoke(app, ["--data-dir", str(data), "search", "ferry", "--source", "*.pdf"])
    assert res.exit_code == 0 and "no documents match the filters" in res.output
    res = runner.invoke(app, ["--data-dir", str(data), "search", "ferry", "--kind", "docx", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["hits"] == []  # a kind, of which there is no document
    res = runner.invoke(app, ["--data-dir", str(data), "search", "ferry", "--kind", "xlsx"])
    assert res.exit_code == 1 and "unknown document kind" in res.output
    res = runner.invoke(app, ["--data-dir", str(data), "search", "ferry", "--rerank"])
    assert res.exit_code == 1 and "no reranker is configured" in res.output
    res = runner.invoke(app, ["--data-dir", str(data), "search", "ferry", "-c", "nope"])
    assert res.exit_code == 1 and "no collection named 'nope'" in res.output


def test_ask_abstains_with_exit_3_and_cache_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALRAG_LLM_THREADS", "2")
    data = tmp_path / "data"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ferry.md").write_text("# Ferry\n\nThe Skerry Point ferry leaves at 09:40 on weekdays.\n")
    assert runner.invoke(app, ["--data-dir", str(data), "ingest", str(docs)]).exit_code == 0
    assert "ask" in runner.invoke(app, ["--help"]).output and "chat" in runner.invoke(app, ["--help"]).output
    res = runner.invoke(app, ["--data-dir", str(data), "ask", "Who won the chess olympiad in 1974?", "--json"])
    assert res.exit_code == 3, res.output
    ans = json.loads(res.stdout)
    assert ans["abstained"] and ans["text"].startswith("I don't know") and "relevance" in ans["abstain_reason"]
    assert ans["attempts"] == 0 and ans["citations"] == []
    res = runner.invoke(app, ["--data-dir", str(data), "ask", "   "])
    assert res.exit_code == 2 and "empty question" in res.output
    res = runner.invoke(app, ["--data-dir", str(data), "ask", "ferry?", "--collection", "nope"])
    assert res.exit_code == 1 and "no collection named" in res.output
    res = runner.invoke(app, ["--data-dir", str(data), "cache", "clear", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["removed"] == 0
    res = runner.invoke(app, ["--data-dir", str(data), "cache", "stats", "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["entries"] == 0


def test_llm_serve_refuses_a_missing_model_or_a_taken_port_before_starting(tmp_path):
    res = runner.invoke(app, ["llm", "serve", "--model", str(tmp_path / "missing.gguf")])
    assert res.exit_code == 2 and "GGUF model file not found" in res.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = runner.invoke(app, ["llm", "serve", "--port", str(port)])
    assert res.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}" in res.output and "serving" not in res.output
