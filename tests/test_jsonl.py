"""The one JSON-lines reader (localrag.index.jsonl) and the loaders built on it: errors name the file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cache import load_pairs
from bench.judge_accuracy import load_statements
from localrag.eval.retrieval_metrics import load_queries
from localrag.index.jsonl import JsonlError, read_jsonl


def _write(path: Path, lines: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return path


def test_rows_come_with_their_line_numbers(tmp_path):
    p = _write(tmp_path / "a.jsonl", [{"a": 1}, "", "   ", {"b": 2}])
    assert read_jsonl(p) == [(1, {"a": 1}), (4, {"b": 2})]
    c = _write(tmp_path / "c.jsonl", ["# header", {"a": 1}, "  # indented comment", {"b": 2}])
    assert read_jsonl(c, comments=True) == [(2, {"a": 1}), (4, {"b": 2})]
    with pytest.raises(JsonlError, match=r"c\.jsonl:1: not valid JSON"):
        read_jsonl(c)  # without comments=True a '#' line is just bad JSON


@pytest.mark.parametrize(("line", "reason"), [
    ('{"a": 1,', r"not valid JSON \(Expecting property name enclosed in double quotes at column 9\)"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('"text"', "expected a JSON object, got str"),
    ("null", "expected a JSON object, got NoneType"),
])
def test_bad_lines_are_named(tmp_path, line, reason):
    p = _write(tmp_path / "bad.jsonl", [{"ok": True}, "", line])
    with pytest.raises(JsonlError, match=rf"bad\.jsonl:3: {reason}") as info:
        read_jsonl(p)
    assert info.value.line == 3 and info.value.path == p and isinstance(info.value, ValueError)


def test_unreadable_files(tmp_path):
    with pytest.raises(JsonlError, match=r"missing\.jsonl: no such file") as info:
        read_jsonl(tmp_path / "missing.jsonl")
    assert info.value.line is None
    with pytest.raises(JsonlError, match="is a folder, not a QA file"):
        read_jsonl(tmp_path, what="QA file")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b'{"a": "caf\xe9"}\n')
    with pytest.raises(JsonlError, match="cannot read it"):
        read_jsonl(latin)


def test_the_labelled_sets_load_through_it(tmp_path):
    assert len(load_queries()) > 50 and len(load_statements()) > 50 and len(load_pairs()) > 10
    with pytest.raises(ValueError, match=r"q\.jsonl:2: not a labeled query"):
        load_queries(_write(tmp_path / "q.jsonl", [{"id": "a", "query": "x"}, {"id": "b"}]))
    with pytest.raises(JsonlError, match=r"q2\.jsonl:1: expected a JSON object"):
        load_queries(_write(tmp_path / "q2.jsonl", ["[]"]))
    with pytest.raises(ValueError, match=r"s\.jsonl:1: not a labelled statement \(missing or empty 'context'\)"):
        load_statements(_write(tmp_path / "s.jsonl", [{"id": "a", "statement": "x", "label": "supported"}]))
    with pytest.raises(ValueError, match=r"p\.jsonl:2: bad pair 'a'"):
        load_pairs(_write(tmp_path / "p.jsonl", [{"id": "a", "type": "paraphrase", "a": "x?", "b": "y?"},
                                                 {"id": "a", "type": "paraphrase", "a": "z?", "b": "w?"}]))
    with pytest.raises(ValueError, match=r"p2\.jsonl:1: not a cache pair \(missing 'b'\)"):
        load_pairs(_write(tmp_path / "p2.jsonl", [{"id": "a", "type": "paraphrase", "a": "x?"}]))
