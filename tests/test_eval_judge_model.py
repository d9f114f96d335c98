"""The LLM judge's own model (eval.judge_model, `localrag eval --judge-model`): `--judge llm` loads that model once,
apart from the answering model (llm.model), or shares the answering model's instance when both name the same file;
a judge model that is not pulled stops the run with the command that pulls it (nothing is downloaded); `llm info`
and the Evaluate page say which model judges. One real judgement with the packaged qwen2.5-coder-1.5b when it is
pulled (CI pulls only the default 0.5B answering model: then that test is skipped, saying so)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from localrag.app.cli import app
from localrag.app.config import load_settings
from localrag.app.evaluate import run_eval
from localrag.app.llm import factory
from localrag.app.llm.models import locate

ROOT = Path(__file__).resolve().parent.parent
STATEMENTS = ROOT / "data" / "eval" / "judge_statements.jsonl"
LIGHTHOUSE = ("Gannet Head Lighthouse was designed by the engineer Thomas Carrick and first lit in 1867. "
              "Its tower holds 112 steps up to the lantern gallery.")
# an answer made elsewhere: scored as given, so the run asks no LLM but the judge
GIVEN = {"id": "g1", "question": "Who designed Gannet Head Lighthouse?", "reference": "Thomas Carrick.",
         "answer": "Gannet Head Lighthouse was designed by Thomas Carrick [1].", "contexts": [LIGHTHOUSE]}
PULL = "localrag models pull qwen2.5-coder-1.5b"
cli = CliRunner()


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch, tmp_path):
    """No LOCALRAG_* variable or localrag.toml of the machine running the tests leaks in."""
    import os

    for name in list(os.environ):
        if name.upper().startswith("LOCALRAG_") and name != "LOCALRAG_MODELS_DIR":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def _gguf(path: Path) -> Path:
    """A file that passes as a GGUF model by name and magic (the fakes below stand in for loading it)."""
    path.write_bytes(b"GGUF" + bytes(60))
    return path


class FakeJudgeLLM:
    """A fake JSON LLM for control-flow tests: says "yes" to every verdict and returns schema-shaped lists; it
    records its calls and whether it was closed."""

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.calls = 0
        self.closed = False

    def generate_json(self, messages, schema, *, temperature=None, max_tokens=None):  # noqa: ANN001, ANN201
        self.calls += 1
        props = schema["properties"]
        if "verdict" in props:
            return {"verdict": "yes"}
        out: dict = {}
        for key, p in props.items():
            out[key] = ["Who designed Gannet Head Lighthouse?"] if p["type"] == "array" else False
        return out

    def close(self) -> None:
        self.closed = True


class FakeAnsweringLLM(FakeJudgeLLM):
    """A fake answering model that must not be asked to judge."""

    def generate_json(self, *a, **kw):  # noqa: ANN002, ANN003, ANN201
        raise AssertionError("the answering model was asked to judge")


@pytest.fixture()
def fake_loads(monkeypatch):
    """make_judge_llm replaced by a fake: the GGUF paths it was asked to load, and the fakes it returned."""
    loaded: list[tuple[Path, FakeJudgeLLM]] = []

    def fake_make_judge_llm(settings, path):  # noqa: ANN001, ANN202
        llm = FakeJudgeLLM(path.name)
        loaded.append((path, llm))
        return llm

    monkeypatch.setattr(factory, "make_judge_llm", fake_make_judge_llm)
    return loaded


# --- control flow (fakes) -----------------------------------------------------------------------------------------
def test_judge_llm_loads_the_judge_model_not_the_answering_model(rag_factory, tmp_path, fake_loads):
    judge, answering = _gguf(tmp_path / "judge.gguf"), _gguf(tmp_path / "answering.gguf")
    rag = rag_factory(tmp_path / "d", llm={"model": str(answering)}, eval={"judge_model": str(judge)})
    rag.set_llm(FakeAnsweringLLM("answering.gguf"))
    result = run_eval(rag, [GIVEN], judge="llm")
    assert result["exit_code"] == 0, result["errors"]
    assert [p for p, _ in fake_loads] == [judge.resolve()]  # loaded once, from eval.judge_model
    fake = fake_loads[0][1]
    assert fake.calls > 0 and fake.closed  # it judged, and the run closed what it loaded
    assert result["settings"]["judge_model"] == "judge.gguf"
    assert result["judges"] == ["proxy", "llm:judge.gguf"]
    assert result["items"][0]["scores"]["llm:judge.gguf"]["values"]["faithfulness"] == 1.0
    assert any(n.startswith("The LLM judge is llm:judge.gguf (eval.judge_model") for n in result["notes"])
    # a panel with the LLM judge (the proxy judging) loads the same model, once
    result = run_eval(rag, [GIVEN], judge="proxy", panel=["proxy", "llm"])
    assert [p for p, _ in fake_loads] == [judge.resolve()] * 2 and result["exit_code"] == 0
    assert result["panel"]["judges"] == ["proxy", "llm:judge.gguf"]


def test_judge_shares_the_answering_models_instance(rag_factory, tmp_path, fake_loads):
    """The same file for both, or eval.judge_model none: no second load, the answering model judges."""
    same = _gguf(tmp_path / "same.gguf")
    answering = FakeJudgeLLM("same.gguf")
    for judge_model in (str(same), "none"):
        rag = rag_factory(tmp_path / judge_model.replace("/", "_"), llm={"model": str(same)},
                          eval={"judge_model": judge_model})
        rag.set_llm(answering)
        result = run_eval(rag, [GIVEN], judge="llm")
        assert result["exit_code"] == 0 and result["settings"]["judge_model"] == "same.gguf"
    assert fake_loads == [] and answering.calls > 0 and not answering.closed  # the Rag owns it


def test_missing_judge_model_names_the_pull_command(rag_factory, tmp_path, monkeypatch, fake_loads):
    monkeypatch.setenv("LOCALRAG_MODELS_DIR", str(tmp_path / "models"))  # an empty models folder
    rag = rag_factory(tmp_path / "d")
    rag.set_llm(FakeAnsweringLLM("answering.gguf"))
    with pytest.raises(RuntimeError, match="not pulled yet") as exc:
        run_eval(rag, [GIVEN], judge="llm")
    assert PULL in str(exc.value) and "eval.judge_model = qwen2.5-coder-1.5b" in str(exc.value)
    assert fake_loads == [] and not (tmp_path / "models" / "qwen2.5-coder-1.5b.gguf").exists()  # nothing pulled
    info = factory.judge_info(load_settings())
    assert info["judge_model"] == "qwen2.5-coder-1.5b" and PULL in info["judge_error"]
    from localrag.ui.page_evaluate import judge_model_text

    text, ready = judge_model_text(load_settings())
    assert not ready and PULL in text
    # the CLI: exit 1 before any item runs, the message says what to run
    qa = tmp_path / "given.jsonl"
    qa.write_text(json.dumps(GIVEN) + "\n", encoding="utf-8")
    base = ["--data-dir", str(tmp_path / "d"), "eval", str(qa), "--out", str(tmp_path / "o")]
    res = cli.invoke(app, base + ["--judge", "llm"])
    assert res.exit_code == 1 and PULL in " ".join(res.output.split()), res.output
    assert not (tmp_path / "o").exists()
    res = cli.invoke(app, base + ["--judge-model", "smollm2-135m"])  # a judge model without the LLM judge
    assert res.exit_code == 2 and "--judge llm" in res.output


def test_cli_judge_model_flag(tmp_path, fake_loads):
    judge = _gguf(tmp_path / "flag-judge.gguf")
    qa = tmp_path / "given.jsonl"
    qa.write_text(json.dumps(GIVEN) + "\n", encoding="utf-8")
    res = cli.invoke(app, ["--data-dir", str(tmp_path / "d"), "eval", str(qa), "--judge", "llm", "--judge-model",
                           str(judge), "--json", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["settings"]["judge_model"] == "flag-judge.gguf" and [p for p, _ in fake_loads] == [judge.resolve()]
    assert "judging model: `flag-judge.gguf`" in (tmp_path / "o" / "report.md").read_text()
    assert "--judge-model" in cli.invoke(app, ["eval", "--help"]).output
    import typer.main

    cmd = typer.main.get_command(app).commands["eval"]  # what `localrag eval --help` prints, unwrapped
    helps = {p.name: p.help or "" for p in cmd.params}
    for text in (" ".join(helps["judge"].split()), " ".join((cmd.help or "").split())):
        assert "κ 0.61" in text and "0.43" in text and "~5 s per statement" in text and "an hour" in text, text
    assert "qwen2.5-coder-1.5b" in helps["judge_model"] and PULL in helps["judge_model"]


def test_llm_info_and_the_evaluate_page_name_the_judge(tmp_path, monkeypatch):
    judge = _gguf(tmp_path / "info-judge.gguf")
    monkeypatch.setenv("LOCALRAG_EVAL__JUDGE_MODEL", str(judge))
    monkeypatch.setenv("LOCALRAG_LLM__BACKEND", "openai")  # nothing to load for the answering model in `llm info`
    monkeypatch.setenv("LOCALRAG_LLM__BASE_URL", "http://127.0.0.1:9/v1")
    res = cli.invoke(app, ["llm", "info", "--json"])
    info = json.loads(res.stdout)
    assert info["judge"] == {"judge_model": str(judge), "judge_path": str(judge.resolve()),
                             "judge_shares_answering_model": False, "judge_error": None}
    res = cli.invoke(app, ["llm", "info"])
    assert "judge (eval --judge llm)" in res.output and "info-judge" in res.output, res.output
    from localrag.ui.page_evaluate import judge_model_text

    text, ready = judge_model_text(load_settings())
    assert ready and text.startswith(f"{judge} (eval.judge_model")
    monkeypatch.setenv("LOCALRAG_EVAL__JUDGE_MODEL", "none")
    assert judge_model_text(load_settings())[0].startswith("the answering model")


def _plain(markdown: str) -> str:
    """Text the page escaped for Markdown (ui.common.md_escape), unescaped."""
    return re.sub(r"\\(.)", r"\1", markdown)


def test_the_evaluate_page_shows_the_judge_and_stops_when_it_is_missing(rag_factory, tmp_path, monkeypatch):
    """The Evaluate page (ui/page_evaluate.py) in a headless AppTest: the judge picker and a caption name the LLM
    judge's model; with the model not pulled, choosing the LLM judge shows the pull command and starts nothing."""
    from streamlit.testing.v1 import AppTest

    from localrag.ui import common

    monkeypatch.setenv("LOCALRAG_MODELS_DIR", str(tmp_path / "models"))  # an empty models folder
    rag = rag_factory(tmp_path / "d")
    assert rag.ingest([ROOT / "data" / "sample" / "gannet-head-lighthouse.md"]).exit_code == 0
    common.provide_rag(rag)
    try:
        at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=120)
        at.run()
        at.switch_page("page_evaluate.py").run()
        assert not at.exception, [e.value for e in at.exception]
        captions = _plain(" ".join(c.value for c in at.caption))
        assert "LLM judge" in captions and "qwen2.5" in captions and "pull" in captions, captions
        picker = at.selectbox(key="eval_judge")
        assert picker.format_func("llm") == "llm: qwen2.5-coder-1.5b (not found)"
        picker.set_value("llm")  # in the form: takes effect with the submit
        at.button(key="eval_run").click().run()
        assert not at.exception, [e.value for e in at.exception]
        said = _plain(" ".join(e.value for e in at.error))
        assert "The LLM judge cannot run" in said and PULL in said, said
        assert PULL in _plain(" ".join(w.value for w in at.warning))  # the caption turned into a warning
        assert "eval_result" not in at.session_state  # no evaluation ran
        assert "eval_task" not in at.session_state or at.session_state["eval_task"] is None
    finally:
        common.provide_rag(None)


# --- the real model -----------------------------------------------------------------------------------------------
def test_real_judgement_with_the_packaged_judge_model(embedder):
    """Two labelled statements (one supported, one with a wrong number) judged by qwen2.5-coder-1.5b, loaded the way
    `localrag eval --judge llm` loads it."""
    if locate("qwen2.5-coder-1.5b") is None:
        pytest.skip(f"qwen2.5-coder-1.5b is not pulled (CI pulls only the default 0.5B model): run `{PULL}`")
    from localrag.eval.scoring import LLMJudge

    settings = load_settings(llm={"threads": 2, "n_ctx": 2048})
    path = factory.judge_gguf(settings)
    assert path is not None and path.name == "qwen2.5-coder-1.5b.gguf"
    rows = {r["id"]: r for r in map(json.loads, STATEMENTS.read_text(encoding="utf-8").splitlines()) if r}
    llm = factory.make_judge_llm(settings, path)
    try:
        judge = LLMJudge(llm, embedder)
        assert judge.judge == "llm:qwen2.5-coder-1.5b.gguf"
        verdicts = {sid: judge.verdict(rows[sid]["statement"], rows[sid]["context"]) for sid in ("s01", "s02")}
    finally:
        llm.close()
    assert (rows["s01"]["label"], rows["s02"]["label"]) == ("supported", "unsupported")
    assert verdicts == {"s01": True, "s02": False}, judge.last_error
