"""`python -m bench.load --smoke` (issue 25): searcher threads and a searcher process, an extractive asker and an
ingest process on one collection for a few seconds, through the public API; it must report no errors, no empty
results, and every file the ingest added findable from the long-lived Rag. With `--ui`, the real `localrag ui` and
two Chromium sessions searching on its Search page as well: every added file findable from each session's same page.
Speed is reported, never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_smoke_run_has_no_errors_and_finds_every_added_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench.load", "--smoke", "--json", "--work", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(proc.stdout)
    assert r["ok"] is True
    assert r["errors"] == 0 and r["empty"] == 0, r["ops"]
    assert r["added_files"] > 0 and r["findable"] == r["added_files"], r["missed"]
    # every kind of worker ran: threads and a process searched, an extractive asker answered, the ingest added
    assert r["ops"]["search"]["count"] > 0 and r["ops"]["search-process"]["count"] > 0
    assert r["ops"]["ask-extractive"]["count"] > 0 and "ask-generative" not in r["ops"]
    assert r["ops"]["ingest-batch"]["count"] > 0
    assert r["idle"]["count"] > 0 and r["p95_over_idle_p50"] is not None
    assert r["generative_skipped"] == "--no-generative"
    assert r["corpus"] == "sample" and r["chunks"] > 0


def _chromium() -> str:
    from bench.load_ui import CHROMIUM  # Debian's chromium, or LOCALRAG_CHROMIUM (as tests/test_ui_browser.py)

    return CHROMIUM


@pytest.mark.slow
@pytest.mark.skipif(not Path(_chromium()).exists(),
                    reason=f"no Chromium at {_chromium()}: apt-get install -y chromium (or set LOCALRAG_CHROMIUM)")
def test_smoke_run_with_the_ui_share_finds_every_added_file_from_each_browser_session(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bench.load", "--smoke", "--ui", "--json", "--work", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(proc.stdout)
    assert r["ok"] is True
    assert r["errors"] == 0 and r["empty"] == 0, (r["ops"], r["ui_sessions"])
    assert r["ui"] == 2 and len(r["ui_sessions"]) == 2
    ui = r["ops"]["ui-search"]
    assert ui["count"] > 0 and ui["errors"] == 0 and ui["empty"] == 0 and ui["p95_ms"] >= ui["p50_ms"] > 0
    assert r["ui_idle"]["count"] > 0 and r["ui_p95_over_ui_idle_p50"] is not None
    # after the ingest stopped, each session found every added file, on the page it had searched from all along
    assert r["added_files"] > 0 and r["findable"] == r["added_files"], r["missed"]
    for s in r["ui_sessions"]:
        assert s["same_page"] is True
        assert s["findable"] == s["added_files"] == r["added_files"], s
    assert r["ui_findable_search"]["count"] == 2 * r["added_files"]
    # the API's share ran beside it as in the plain smoke run
    assert r["ops"]["search"]["count"] > 0 and r["ops"]["search-process"]["count"] > 0
    assert r["ops"]["ingest-batch"]["count"] > 0


def test_percentile_is_nearest_rank():
    from bench.load import percentile

    xs = [float(i) for i in range(1, 101)]
    assert percentile(xs, 50) == 50.0
    assert percentile(xs, 95) == 95.0
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
    assert percentile([], 50) == 0.0


def test_markers_are_distinct_and_written_into_their_files(tmp_path):
    from bench.load import marker, write_batch

    words = {marker(n)[0] for n in range(2000)}
    assert len(words) == 2000
    made = write_batch(tmp_path / "b", 7, 3, ["first paragraph " * 5, "second paragraph " * 5, "third " * 9])
    assert [m["source"] for m in made] == ["added-00007.txt", "added-00008.txt", "added-00009.txt"]
    for m in made:
        text = (tmp_path / "b" / m["source"]).read_text()
        assert m["query"] in text and m["word"] in text


def test_bench_load_is_a_localrag_bench_command():
    from localrag.app.cli.bench import BENCHMARKS

    assert BENCHMARKS["load"][0] == "load"
