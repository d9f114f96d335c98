"""`localrag eval` / eval.runner: the QA set's labels, a small real run (packaged LLM), the report files, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from localrag.app.cli import app
from localrag.eval import runner as er

ROOT = Path(__file__).resolve().parent.parent
QA = ROOT / "data" / "eval" / "qa.jsonl"
PNG = b"\x89PNG\r\n\x1a\n"
runner = CliRunner()


def _write(path: Path, items: list) -> Path:
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in items) + "\n", encoding="utf-8")
    return path


def test_qa_set_labels_match_the_sample_store(sample_rag):
    items = er.load_items(QA)
    assert len(items) >= 40
    unanswerable = [it for it in items if not it["answerable"]]
    assert len(unanswerable) >= 5
    assert all(it["reference"] is None and not it["relevant"] for it in unanswerable)
    rows = er._chunk_rows(sample_rag.store, sample_rag.store.collection("default").id)
    for it in items:
        if it["answerable"]:
            assert it["reference"] and it["relevant"], it["id"]
            units = er._units(it["id"], it["relevant"], rows)  # raises when a spec matches no chunk
            assert {u for us in units.values() for u in us} == {f"{it['id']}/{n}" for n in range(len(it["relevant"]))}


def test_input_validation():
    assert er.normalize_item({"question": "Q?", "reference": ""})["answerable"] is False
    assert er.normalize_item({"question": "Q?", "reference": None, "answerable": False})["answerable"] is False
    assert er.normalize_item({"question": "Q?"})["answerable"] is True  # no reference: answerable, no recall
    for bad in ({"question": " "}, {"question": "Q?", "reference": "x", "answerable": False},
                {"question": "Q?", "reference": "", "relevant": [{"source": "a.md"}]},
                {"question": "Q?", "relevant": [{"contains": "x"}]}, {"question": "Q?", "colour": "red"}, ["Q?"]):
        with pytest.raises(er.EvalInputError):
            er.normalize_item(bad)


def test_perturbations_keep_the_meaning_and_spread():
    q = "How many steps lead up to the lantern gallery?"
    variants = [er.perturb(q, i, "x") for i in range(len(er.PERTURBATIONS))]
    assert variants == [er.perturb(q, i, "x") for i in range(len(er.PERTURBATIONS))]  # deterministic
    for v in variants:
        assert v != q
        core = " ".join(v.replace(er.ZWJ, "").split()).casefold().rstrip("?!. ")
        assert core == q.casefold().rstrip("?")
    assert any(er.ZWJ in v for v in variants)
    same = np.tile(np.array([[0.6, 0.8]]), (3, 1))
    assert er._spread(same) == pytest.approx(0.0, abs=1e-9)
    assert er._spread(np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(1 - np.sqrt(0.5))


def test_run_eval_with_the_packaged_llm_writes_a_report(sample_rag, tmp_path):
    qa = _write(tmp_path / "qa.jsonl", [
        {"id": "ans", "question": "Who is the head baker at the Wren Loaf Cooperative Bakery?",
         "reference": "Dilys Penrose."},
        {"id": "none", "question": "What is the name of the Wren Loaf bakery's delivery van driver?",
         "reference": "", "answerable": False},
        {"id": "spec", "question": "How many steps lead up to the lantern gallery of Gannet Head Lighthouse?",
         "reference": "112 steps.", "relevant": [{"source": "gannet-head-lighthouse.md", "contains": "112 steps"}]},
        {"id": "cut", "question": "Not run: --limit 3 stops before this one."},
    ])
    items = er.load_items(qa, limit=3)
    calls = []
    result = er.run_eval(sample_rag, items, progress=lambda *a: calls.append(a))
    assert calls[0] == (0, 3, "ans") and calls[-1] == (3, 3, "")
    assert result["n_items"] == 3 and result["n_failed"] == 0 and result["exit_code"] == 0, result["errors"]
    by = {r["id"]: r for r in result["items"]}

    # abstention: the unanswerable item is correct exactly when the system abstained, the others when they answered
    for r in by.values():
        assert r["correct"] == (r["abstained"] != r["answerable"])
    assert by["none"]["correct"] == by["none"]["abstained"]
    ab = result["abstention"]
    assert ab["unanswerable"]["n"] == 1 and ab["answerable"]["n"] == 2
    assert ab["correct"] == sum(r["correct"] for r in by.values())

    # retrieval metrics only for the item with evidence specs, through ir-measures
    ret = result["retrieval"]
    assert ret["n"] == 1 and set(ret["overall"]) == {"R@4", "R@5", "R@10", "RR@10", "nDCG@10"}
    assert "retrieval" in by["spec"] and "retrieval" not in by["ans"]
    assert ret["overall"]["R@10"] == 1.0  # "112 steps" is one of the top 10 for this question

    # proxy scores, labelled; context recall needs the reference; no NaN anywhere
    assert result["judges"] == ["proxy"] and "context_recall" in result["scores"]["proxy"]
    assert "context_recall" not in by["none"]["scores"]["proxy"]["values"]
    assert "context_recall" in by["spec"]["scores"]["proxy"]["values"]
    json.dumps(result, allow_nan=False)
    assert {"retrieve", "total", "score"} <= set(result["latency"])

    paths = er.write_report(result, tmp_path / "out")
    assert [p.name for p in paths] == ["report.json", "report.md", "scores.png", "latency.png"]
    assert json.loads(paths[0].read_text())["items"][2]["id"] == "spec"
    assert "## Summary" in paths[1].read_text() and "abstained on unanswerable" in paths[1].read_text()
    for png in paths[2:]:
        assert png.read_bytes()[:8] == PNG


def test_cli_bad_input_exits_2_naming_the_line(sample_rag, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCALRAG_LLM_THREADS", "2")
    base = ["--data-dir", str(sample_rag.data_dir), "eval"]
    bad = _write(tmp_path / "bad.jsonl", [{"question": "Who designed the lighthouse?"}, '{"question": "oops",'])
    res = runner.invoke(app, base + [str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "bad.jsonl:2" in res.output and "not valid JSON" in res.output
    assert not (tmp_path / "o").exists()
    res = runner.invoke(app, base + [str(tmp_path / "missing.jsonl")])
    assert res.exit_code == 2 and "no such file" in res.output
    noq = _write(tmp_path / "noq.jsonl", ["", {"reference": "x"}])
    res = runner.invoke(app, base + [str(noq)])
    assert res.exit_code == 2 and "noq.jsonl:2" in res.output
    good = _write(tmp_path / "good.jsonl", [{"question": "Who designed the lighthouse?"}])
    assert runner.invoke(app, base + [str(good), "--judge", "oracle"]).exit_code == 2
    assert runner.invoke(app, base + [str(good), "--collection", "nope", "--out", str(tmp_path / "o")]).exit_code == 2


def test_cli_eval_json_robustness_and_limit(sample_rag, tmp_path, monkeypatch):
    """Off-topic questions: retrieval finds nothing relevant, so `ask` abstains without calling the LLM (fast)."""
    monkeypatch.setenv("LOCALRAG_LLM_THREADS", "2")
    qa = _write(tmp_path / "qa.jsonl", [
        {"id": "off", "question": "Who won the 1998 football world cup?", "answerable": False},
        {"id": "later", "question": "Who won the 1998 football world cup?", "reference": "France."},
    ])
    out = tmp_path / "out"
    res = runner.invoke(app, ["--data-dir", str(sample_rag.data_dir), "eval", str(qa), "--limit", "1", "--json",
                              "--robustness", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [r["id"] for r in report["items"]] == ["off"] and report["limit"] == 1
    item = report["items"][0]
    assert item["correct"] == item["abstained"]
    rob = item["robustness"]
    assert rob["n"] == 2 and len(rob["variants"]) == 2 and rob["deviation"] >= 0.0
    assert report["robustness"]["mean_deviation"] == pytest.approx(rob["deviation"])
    assert report["retrieval"] is None
    assert json.loads((out / "report.json").read_text())["n_items"] == 1
    assert (out / "latency.png").read_bytes()[:8] == PNG and (out / "scores.png").read_bytes()[:8] == PNG
