"""The UI's share of `python -m bench.load --ui N` (issue 25): the real Streamlit UI (`localrag ui`) on a free
loopback port over the load bench's data directory, and N real Chromium sessions (Playwright's sync API, each in a
process of its own) searching on its Search page for the load window.

A UI search is timed in the browser, from the click on **Search** to the end of the Streamlit run that it started
(the app root's `data-test-script-state` going from `running` back to `notRunning`, watched by a MutationObserver, so
no polling interval is added), and then read from the page: the results caption ("N hits · mode …"), the hits'
file names, any error box or exception, and the server's own `Rag.search` time that the caption shows (the stage
`rag_search`: the rest is Streamlit's run of the page, the transfer and the browser's rendering).

After the ingest stops each session, on the same page it searched from all along (no reload, no new session:
`same_page` compares the document's `performance.timeOrigin`), searches for every file the ingest added by its own
sentence with k = 10, as `bench.load.findable` does through the API: the UI server's long-lived Rag must find them
all.

Chromium is Debian's (`/usr/bin/chromium`, or LOCALRAG_CHROMIUM; `playwright install` is never needed, see
../shared/OFFLINE.md).
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("LOCALRAG_CHROMIUM", "/usr/bin/chromium")
SEARCH_TIMEOUT_MS = 120_000  # one UI search, page to results, on a loaded 2-core machine
FOUND_K = 10  # as bench.load.findable

# counts the Streamlit runs that finished and when the last one did, and when Search was last clicked
WATCH_JS = """() => {
  if (window.__lr) return true;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app) return false;
  const w = {done: 0, tDone: 0, tClick: 0, state: app.getAttribute('data-test-script-state')};
  window.__lr = w;
  new MutationObserver(() => {
    const s = app.getAttribute('data-test-script-state');
    if (s === w.state) return;
    if (w.state === 'running' && s !== 'running') { w.done += 1; w.tDone = performance.now(); }
    w.state = s;
  }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  document.addEventListener('click', (e) => {
    if (e.target.closest('[data-testid="stFormSubmitButton"]')) w.tClick = performance.now();
  }, true);
  return true;
}"""
CAPTION = re.compile(r"(\d+) hits · mode ")
TOTAL = re.compile(r" · total ([\d.]+) (ms|s)\b")  # the search's own total time, as the caption shows it
HIT = re.compile(r"^(\d+)\. (.+)$")


# --- the server ------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(data_dir: Path, log: Path, timeout: float = 300) -> tuple[subprocess.Popen[bytes], str]:
    """`localrag --data-dir DATA ui --port P` on loopback, waited for until /_stcore/health answers 200."""
    port = free_port()
    exe = Path(sys.executable).with_name("localrag")
    head = [str(exe)] if exe.exists() else [sys.executable, "-m", "localrag.app.cli.main"]
    cmd = [*head, "--data-dir", str(data_dir), "ui", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"`localrag ui` exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        time.sleep(0.3)
    stop_server(proc)
    raise SystemExit(f"`localrag ui` did not answer /_stcore/health in {timeout:.0f} s:\n"
                     f"{log.read_text(errors='replace')[-2000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# --- one browser session ---------------------------------------------------------------------------------------
class UiError(Exception):
    """A UI search that failed: an error box, an exception on the page, no results caption, or a timeout."""


def open_search_page(page: Any, url: str) -> None:
    page.goto(f"{url}/search")
    page.wait_for_load_state("networkidle")
    page.get_by_label("Query").wait_for(timeout=SEARCH_TIMEOUT_MS)
    page.wait_for_function(WATCH_JS, timeout=SEARCH_TIMEOUT_MS)
    page.wait_for_function("window.__lr.state !== 'running'", timeout=SEARCH_TIMEOUT_MS)


def ui_search(page: Any, query: str) -> tuple[float, int, list[str], float | None]:
    """Submit `query` on the Search page; (seconds from the click to the end of its run, hits, hit file names, the
    seconds of `Rag.search` in the server as the results caption shows them)."""
    page.wait_for_function("window.__lr.state !== 'running'", timeout=SEARCH_TIMEOUT_MS)
    page.get_by_label("Query").fill(query)
    before = page.evaluate("window.__lr.done")
    page.locator('[data-testid="stFormSubmitButton"] button').click()  # (a results table has a "Search" button too)
    try:
        page.wait_for_function(f"window.__lr.done > {before} && window.__lr.tDone > window.__lr.tClick",
                               timeout=SEARCH_TIMEOUT_MS)
    except Exception as exc:  # noqa: BLE001 - Playwright's TimeoutError, reported as a failed search
        raise UiError(f"no results within {SEARCH_TIMEOUT_MS / 1000:.0f} s: {exc}"[:300]) from None
    secs = float(page.evaluate("(window.__lr.tDone - window.__lr.tClick) / 1000"))
    main = page.get_by_test_id("stMain").inner_text()
    if page.get_by_test_id("stException").count() or "Error while" in main:
        raise UiError("error on the page: " + main[main.find("Error"):][:300])
    caption = CAPTION.search(main)
    if caption is None:
        raise UiError("no results caption on the page: " + main[-300:])
    names = []
    for text in page.locator('[data-testid="stMarkdown"] strong').all_inner_texts():
        m = HIT.match(text.strip())
        if m:
            names.append(m.group(2).strip())
    total = TOTAL.search(main)
    server_s = float(total.group(1)) / (1000 if total.group(2) == "ms" else 1) if total else None
    return secs, int(caption.group(1)), names, server_s


def set_k(page: Any, k: int) -> None:
    """The form's k; it takes effect with the next Search (the form sends every widget's value on submit)."""
    page.get_by_label("k", exact=True).fill(str(k))


def session_loop(page: Any, queries: list[str], until: float, op: Any, seed: int) -> None:
    rng = random.Random(seed)
    while time.time() < until:
        try:
            secs, hits, _, server_s = ui_search(page, rng.choice(queries))
        except Exception as exc:  # noqa: BLE001 - counted and reported
            op.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            continue
        op.latencies.append(secs)
        if server_s is not None:  # the rest of `secs` is Streamlit's run, the transfer and the browser's rendering
            op.stages.setdefault("rag_search", []).append(server_s)
        if hits == 0:
            op.empty += 1


def page_id(page: Any) -> float:
    """When this page's document was created: the same number later means no reload and no navigation."""
    return float(page.evaluate("performance.timeOrigin"))


def session_findable(page: Any, files: list[dict[str, str]], op: Any, opened: float) -> dict[str, Any]:
    """Each added file searched for by its own sentence on this same page, k = 10: found among the hits?
    `same_page`: the page is still the document opened at the start (`opened`, its page_id), watcher included."""
    same = page_id(page) == opened and bool(page.evaluate("!!window.__lr"))
    set_k(page, FOUND_K)
    missed = []
    for f in files:
        try:
            secs, _, names, _ = ui_search(page, f["query"])
        except Exception as exc:  # noqa: BLE001 - reported; the file counts as not found
            op.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            missed.append(f["source"])
            continue
        op.latencies.append(secs)
        if f["source"] not in names:
            missed.append(f["source"])
    same = same and page_id(page) == opened
    return {**op.to_raw(), "added_files": len(files), "findable": len(files) - len(missed), "missed": missed[:10],
            "same_page": same}


def session_process(url: str, queries: list[str], seed: int, idle_seconds: float, sync: dict[str, Any]) -> None:
    """One Chromium session on the Search page. `sync` holds the run's events and queues: ready, go, until, out,
    and this session's inbox; for the session given `idle_seconds` also idle_go and idle_done.

    Warm up; set ready; with `idle_seconds`, search alone once idle_go is set (every other worker is ready and
    waiting) and report ("ui-idle", raw), then set idle_done; once go is set, search until `until` and report
    ("ui-search", raw); then wait for the added files on the inbox and report ("ui-findable", {...}) from the same
    page (None there: the run ended without the check). Every message is sent even when the browser failed."""
    from bench.load import Op

    op, idle_op, found_op = Op("ui-search"), Op("ui-idle"), Op("ui-findable")
    pw = browser = page = None
    opened = 0.0
    try:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(SEARCH_TIMEOUT_MS)
        open_search_page(page, url)
        opened = page_id(page)
        for q in queries[:2]:  # the server's Rag loads its models on the first search
            ui_search(page, q)
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        op.errors.append(f"start: {type(exc).__name__}: {exc}"[:300])
        page = None
    sync["ready"].set()
    if idle_seconds:
        sync["idle_go"].wait()
        if page is not None:
            session_loop(page, queries, time.time() + idle_seconds, idle_op, seed + 1)
        sync["out"].put(("ui-idle", idle_op.to_raw()))
        sync["idle_done"].set()
    sync["go"].wait()
    if page is not None:
        session_loop(page, queries, sync["until"].value, op, seed)
    sync["out"].put(("ui-search", op.to_raw()))
    files = sync["inbox"].get()
    if files is not None:
        if page is None:
            found_op.errors.append("the session did not start")
            found = {**found_op.to_raw(), "added_files": len(files), "findable": 0, "missed": [], "same_page": False}
        else:
            try:
                found = session_findable(page, files, found_op, opened)
            except Exception as exc:  # noqa: BLE001 - reported
                found_op.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                found = {**found_op.to_raw(), "added_files": len(files), "findable": 0, "missed": [],
                         "same_page": False}
        sync["out"].put(("ui-findable", found))
    try:
        if browser is not None:
            browser.close()
        if pw is not None:
            pw.stop()
    except Exception:  # noqa: BLE001 - closing is best effort once everything is reported
        pass
