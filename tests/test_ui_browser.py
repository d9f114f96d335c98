"""The UI in a real browser: `localrag ui` started on a free loopback port and driven with Playwright through
Debian's Chromium (no browser download: `executable_path=/usr/bin/chromium`, see ../shared/OFFLINE.md).

If the browser cannot start, these tests FAIL with the reason: a UI that was never looked at must not pass.
Screenshots of each page go to the test's temporary folder; with LOCALRAG_UPDATE_SCREENSHOTS=1 (or when it does not
exist yet) the chat page is also saved as docs/img/chat.png for the README.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
CHROMIUM = os.environ.get("LOCALRAG_CHROMIUM", "/usr/bin/chromium")
QUESTION = "Who designed Gannet Head Lighthouse?"
ANSWER_TIMEOUT_S = 600  # the 135M model on a shared 2-core machine
README_SHOT = ROOT / "docs" / "img" / "chat.png"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            pytest.fail(f"`localrag ui` exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"`localrag ui` did not answer /_stcore/health within {timeout:.0f} s:\n"
                f"{log.read_text(errors='replace')[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, embedder):
    """`localrag --data-dir D ui --port P` over a data directory holding the lighthouse article."""
    from localrag import Rag

    base = tmp_path_factory.mktemp("browser")
    data = base / "data"
    with Rag.open(data, embedder=embedder) as rag:
        assert rag.ingest([SAMPLE / "gannet-head-lighthouse.md"]).exit_code == 0
    port = free_port()
    log = base / "server.log"
    env = {**os.environ, "LOCALRAG_LLM_TEMPERATURE": "0", "LOCALRAG_ANSWER_MAX_TOKENS": "128",
           "LOCALRAG_ANSWER__MODE": "auto",  # the quote first, then the model's answer (the default packaged model)
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    exe = Path(sys.executable).with_name("localrag")
    cmd = [str(exe) if exe.exists() else "localrag", "--data-dir", str(data), "ui", "--port", str(port)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=base)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        assert f"localrag UI: {url}" in log.read_text(errors="replace")  # the URL is printed
        yield {"url": url, "data": data, "log": log, "shots": base / "shots"}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def chromium_browser():
    from playwright.sync_api import Error, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no browser at {CHROMIUM}: install Debian's chromium (apt-get install -y chromium) — the UI "
                    "tests need a real browser and must not be skipped")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    except Error as exc:
        pw.stop()
        pytest.fail(f"Chromium at {CHROMIUM} could not start under Playwright: {exc}")
    yield b
    b.close()
    pw.stop()


@pytest.fixture()
def ui_page(chromium_browser, server):
    ctx = chromium_browser.new_context(viewport={"width": 1280, "height": 900})
    # nothing may come from the internet: any request off this server fails the test
    outside: list[str] = []

    def only_local(route) -> None:
        url = route.request.url
        if url.startswith((server["url"], "data:", "blob:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    ctx.route("**/*", only_local)
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()
    assert not outside, f"the UI fetched from outside the server: {outside[:5]}"


def shot(pg, server, name: str) -> Path:
    server["shots"].mkdir(parents=True, exist_ok=True)
    path = server["shots"] / f"{name}.png"
    pg.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


def open_page(pg, server, path: str = "") -> None:
    pg.goto(f"{server['url']}/{path}")
    pg.wait_for_load_state("networkidle")
    assert pg.get_by_test_id("stException").count() == 0


def test_chat_streams_and_a_citation_expands(ui_page, server):
    t_load = time.monotonic()
    open_page(ui_page, server)
    box = ui_page.get_by_test_id("stChatInputTextArea")
    box.wait_for(timeout=120_000)
    page_load_s = time.monotonic() - t_load
    t0 = time.monotonic()
    box.fill(QUESTION)
    box.press("Enter")
    msgs = ui_page.get_by_test_id("stChatMessage")
    # watch the answer being written: partial text followed by the cursor, then the finished answer
    partial, first_text_s, done = [], None, False
    while time.monotonic() - t0 < ANSWER_TIMEOUT_S:
        if msgs.count() >= 2:
            body = msgs.nth(1).get_by_test_id("stMarkdown")
            texts = [t for t in body.all_inner_texts() if t.strip()]
            streaming = [t for t in texts if t.rstrip().endswith("▌") and len(t.strip()) > 1]
            if streaming:
                partial.append(streaming[-1])
                first_text_s = first_text_s or time.monotonic() - t0
            if ui_page.get_by_test_id("stFeedback").count():
                done = True
                break
        time.sleep(0.05)
    assert done, f"no finished answer within {ANSWER_TIMEOUT_S} s:\n{server['log'].read_text(errors='replace')[-2000:]}"
    assert partial, "the answer never showed partial text while streaming"
    assert ui_page.get_by_test_id("stException").count() == 0
    answer = msgs.nth(1)
    final = answer.inner_text()
    assert "▌" not in final
    # a numbered citation expands to its source and the quoted sentence
    cites = answer.get_by_test_id("stExpander").filter(has_text=re.compile(r"\[\d+\] "))
    assert cites.count() >= 1, f"no citation under the answer:\n{final}"
    cite = cites.first
    cite.locator("summary").click()
    quote = cite.get_by_text("Quote:")
    quote.wait_for()
    assert "Source:" in cite.inner_text()
    assert "faithfulness" in final and "first words" in final
    # auto: the quote was on the page first; the turn says which writer it shows now
    assert ("replaced the quote shown first" in final) or ("the quote stays" in final), final
    ui_page.wait_for_timeout(800)  # the expander's opening animation, so the screenshot shows the quote
    path = shot(ui_page, server, "chat")
    if os.environ.get("LOCALRAG_UPDATE_SCREENSHOTS") == "1" or not README_SHOT.exists():
        README_SHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOT)
    # the measurement for docs/BENCHMARKS.md (not a timed test): the same answer seen by the browser and by
    # ask_stream in the server (its own time to first token, and when the UI's worker got the first piece)
    from localrag import Rag

    with Rag.open(server["data"]) as rag:
        conv = rag.conversations.list()[0]
        ans = rag.conversations.load(conv["id"])["messages"][-1]["answer"]
    timing = {"page_load_s": round(page_load_s, 2), "browser_first_text_s": round(first_text_s, 2),
              "ask_stream_first_words_s": round(ans["timings"].get("first_words", float("nan")), 2),
              "worker_first_piece_s": round(ans["ui"]["first_piece_s"], 2),
              "answer_total_s": round(ans["timings"]["total"], 2), "partial_states_seen": len(partial)}
    (server["shots"] / "chat-timing.json").write_text(json.dumps(timing))
    print("UI timing:", json.dumps(timing))
    assert timing["browser_first_text_s"] >= timing["worker_first_piece_s"] - 0.5


def test_upload_shows_its_outcome_row(ui_page, server, tmp_path):
    open_page(ui_page, server, "documents")
    doc = tmp_path / "crane-log.md"
    doc.write_text("# Crane log\n\nThe harbour crane at Port Wren lifts up to 40 tonnes; it was installed in 2011.\n",
                   encoding="utf-8")
    ui_page.locator("input[type=file]").first.set_input_files(str(doc))
    ui_page.get_by_text("crane-log.md").first.wait_for()
    ui_page.get_by_role("button", name="Ingest uploaded files").click()
    table = ui_page.get_by_test_id("stTable")
    table.filter(has_text="ingested").first.wait_for(timeout=300_000)
    row = table.locator("tr", has_text="crane-log.md").first
    assert "ingested" in row.inner_text()
    assert (server["data"] / "uploads" / "default" / "crane-log.md").is_file()
    shot(ui_page, server, "documents")


def test_search_and_evaluate_pages_render(ui_page, server):
    open_page(ui_page, server, "search")
    ui_page.get_by_label("Query").fill("lighthouse keeper")
    ui_page.get_by_role("button", name="Search").click()
    # the results' caption ("N hits · mode hybrid · …"); not "relevance", which the "Min relevance" slider already shows
    ui_page.get_by_text("mode hybrid").first.wait_for(timeout=120_000)
    body = ui_page.inner_text("body")
    assert "mode hybrid" in body and "fusion convex" in body and "total" in body  # the search's stages and timings
    shot(ui_page, server, "search")
    open_page(ui_page, server, "evaluate")
    ui_page.get_by_role("button", name="Run evaluation").wait_for()
    shot(ui_page, server, "evaluate")
