"""The answer cache in the real route (`Rag.ask`, extractive answers over a private copy of the sample corpus, the
real MiniLM embedder): the same question asked another way is served from the cache, with why; each kind of swap
that changes the answer is refused; a corpus change, another scope or `cache=False` is never served; the lookup
statistics hold across processes (`localrag cache stats`)."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from localrag.app.cli import app as cli_app
from localrag.app.rag import Rag

# one pair of each kind, from data/eval/cache_pairs.jsonl (dev half) or written for this test
PARAPHRASES = {
    "synonym": ("Who is the skipper of the research catamaran Kittiwake?",
                "Who captains the research catamaran Kittiwake?"),
    "reorder": ("What export limit has the network operator placed on the microgrid?",
                "On the microgrid, what export limit has the network operator placed?"),
    "tell_me": ("Why does the bakery now use farmed kelp in its oatcakes?",
                "Explain why the bakery now uses farmed kelp in its oatcakes."),
    "acronym": ("Who leads the KELPWATCH programme at the Port Wren Marine Research Station?",
                "Who leads the KELPWATCH programme at PWMRS?"),
    "added_word": ("What does the WREN-1 buoy measure?", "What does the WREN-1 data buoy measure?"),
}
SWAPS = {
    "negation": ("Which birds breed at Gannet Head?", "Which birds do not breed at Gannet Head?"),
    "number": ("How many kittiwake nests were counted at Gannet Head in 2023?",
               "How many kittiwake nests were counted at Gannet Head in the 1990s?"),
    "name": ("Who is the skipper of the research catamaran Kittiwake?",
             "Who is the skipper of the lifeboat Mary Treloar?"),
    "date": ("What did households on the Wren Tariff pay per kWh in 2022?",
             "What did households on the Wren Tariff pay per kWh in 2021?"),
    "first_last": ("Who was the first principal keeper of Gannet Head Lighthouse?",
                   "Who was the last principal keeper of Gannet Head Lighthouse?"),
    "same_template": ("Who was the mayor at the March 2023 council meeting?",
                      "Who was the deputy mayor at the March 2023 council meeting?"),
}


@pytest.fixture(scope="module")
def rag(sample_rag, embedder, tmp_path_factory):
    data = tmp_path_factory.mktemp("cache-answers") / "data"
    shutil.copytree(sample_rag.data_dir, data)
    r = Rag.open(data, embedder=embedder, answer_mode="extractive")
    yield r
    r.close()


def _first_then(rag, a, b):
    rag.clear_cache()
    first = rag.ask(a)
    assert not first.abstained and not first.cached, (a, first.abstain_reason)
    return first, rag.ask(b)


@pytest.mark.parametrize("kind", sorted(PARAPHRASES))
def test_the_same_question_asked_another_way_is_served_with_why(rag, kind):
    a, b = PARAPHRASES[kind]
    first, again = _first_then(rag, a, b)
    assert again.cached, f"{kind}: {b!r} was answered afresh"
    assert again.text == first.text and again.citations == first.citations
    info = again.cache
    assert info["kind"] == "paraphrase" and info["matched_question"] == a
    assert info["why"].startswith("answered from the cache: the same question asked another way as")
    assert a in info["why"] and "just now" in info["why"]
    assert again.question == b  # the answer says what was asked this time


@pytest.mark.parametrize("kind", sorted(SWAPS))
def test_a_question_whose_answer_differs_is_not_served(rag, kind):
    a, b = SWAPS[kind]
    _, other = _first_then(rag, a, b)
    assert not other.cached, f"{kind}: {b!r} was served the answer to {a!r}"
    refused = rag.cache_stats()["refused_reasons"]
    assert sum(refused.values()) >= 1 or rag.cache_stats()["misses"] >= 1


def test_exact_repeat_says_so(rag):
    a = "Who designed Gannet Head Lighthouse?"
    _first_then(rag, a, a)
    again = rag.ask("  who designed gannet head lighthouse ")
    assert again.cached and again.cache["kind"] == "exact"
    assert again.cache["why"].startswith("answered from the cache: same question as 'Who designed")


def test_no_paraphrase_hit_across_scope_corpus_change_or_when_off(rag, tmp_path):
    a, b = PARAPHRASES["synonym"]
    _first_then(rag, a, a)
    assert not rag.ask(b, cache=False).cached
    assert not rag.ask(b, k=3).cached  # another retrieval scope
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "note.md").write_text("The research catamaran was repainted in 2024.", encoding="utf-8")
    assert rag.ingest([extra]).exit_code == 0  # a new corpus version: the old answers no longer apply
    assert not rag.ask(b).cached


def test_statistics_are_kept_across_processes_and_shown_by_the_cli(rag, monkeypatch):
    rag.clear_cache()
    a, b = PARAPHRASES["reorder"]
    rag.ask(a)
    assert rag.ask(b).cached
    assert rag.ask(a).cached
    x, y = SWAPS["first_last"]
    rag.ask(x)
    assert not rag.ask(y).cached
    other = Rag.open(rag.data_dir, embedder=rag.embedder)  # another process's view: the same database
    try:
        st = other.cache_stats()
    finally:
        other.close()
    assert st["paraphrase_hits"] == 1 and st["exact_hits"] == 1 and st["refused"] >= 1
    assert st["lookups"] == st["paraphrase_hits"] + st["exact_hits"] + st["misses"] == 5
    assert any("qualifiers differ" in r for r in st["refused_reasons"])
    monkeypatch.setenv("LOCALRAG_DATA_DIR", str(rag.data_dir))
    res = CliRunner().invoke(cli_app, ["--data-dir", str(rag.data_dir), "cache", "stats", "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert shown["paraphrase_hits"] == 1 and shown["refused_reasons"] == st["refused_reasons"]
    res = CliRunner().invoke(cli_app, ["--data-dir", str(rag.data_dir), "cache", "stats"])
    assert "paraphrase hits: 1" in res.output and "qualifiers differ" in res.output


def test_the_cli_says_a_reworded_question_came_from_the_cache(rag):
    rag.clear_cache()
    a, b = PARAPHRASES["synonym"]
    base = ["--data-dir", str(rag.data_dir), "ask", "--mode", "extractive", "--no-stream"]
    first = CliRunner().invoke(cli_app, [*base, a])
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(cli_app, [*base, b])
    assert again.exit_code == 0, again.output
    assert "answered from the cache: the same question asked another way as" in again.output
    assert "--no-cache asks again" in again.output
    fresh = CliRunner().invoke(cli_app, [*base, b, "--no-cache"])
    assert fresh.exit_code == 0 and "answered from the cache" not in fresh.output
