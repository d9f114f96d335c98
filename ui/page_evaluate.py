"""Evaluate: run a QA set (JSON lines: question, reference, relevant, answerable) through retrieval, answering and
scoring, with a progress bar; the metrics table, charts, and report.json / report.md to download. The judge picker
names the model that judges when the LLM judge is chosen (eval.judge_model, or what to run when it is not pulled)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

import localrag
from localrag import Rag
from localrag.ui import common
from localrag.ui.tasks import Task

RESULT = "eval_result"
TASK = "eval_task"  # the evaluation running in a worker (ui/tasks.py), if any
BUNDLED = Path(localrag.__file__).resolve().parent / "data" / "eval" / "qa.jsonl"


def judge_model_text(settings: Any) -> tuple[str, bool]:
    """Which model judges when the LLM judge is chosen, in plain words, and whether it is ready (found): the model
    eval.judge_model names (apart from the answering model, or its own instance when both are the same file), the
    answering model when the setting is none, or the error that says what to run (`localrag models pull NAME`)."""
    from localrag.app.llm.factory import judge_info
    from localrag.app.llm.models import DEFAULT_MODEL

    j = judge_info(settings)
    if j["judge_model"] is None:
        return f"the answering model ({settings.llm.model or DEFAULT_MODEL}; eval.judge_model is none)", True
    if j["judge_error"]:
        return j["judge_error"], False
    if j["judge_shares_answering_model"]:
        return f"{j['judge_model']} (also the answering model: one instance)", True
    return f"{j['judge_model']} (eval.judge_model; the answers come from {settings.llm.model or DEFAULT_MODEL})", True


def _evaluate(rag: Rag, qa_path: Path, collection: str, limit: int | None, judge: str, k: int | None) -> None:
    """Check the QA file here (a bad file is an error box at once), then run it in a worker (ui/tasks.py)."""
    from localrag.app.evaluate import EvalInputError, load_items, run_eval, write_report

    running: Task | None = st.session_state.get(TASK)
    if running is not None and not running.done:
        st.warning("An evaluation is still running: wait for it to finish.")
        return
    try:
        items = load_items(qa_path, limit=limit)
    except EvalInputError as exc:
        common.show_error(exc, "reading the QA file")
        return

    def work(progress: Any) -> dict[str, Any]:
        result = run_eval(rag, items, collection=collection, judge=judge, k=k, progress=progress)
        out = rag.data_dir / "eval-runs" / time.strftime("%Y%m%d-%H%M%S")
        return {"result": result, "paths": [str(p) for p in write_report(result, out)]}

    st.session_state[TASK] = Task("Evaluating", work, {"qa": qa_path.name, "n": len(items)}).start()
    st.rerun()


def _follow() -> None:
    from localrag.app.evaluate import summary_rows

    task: Task | None = st.session_state.get(TASK)
    if task is None:
        return
    n = task.context["n"]
    bar = st.progress(0.0, text=f"Evaluating {n} questions…")
    while not task.wait(0.25):
        done, total, current = task.progress if len(task.progress) == 3 else (0, n, "")
        bar.progress(min(1.0, done / total) if total else 0.0,
                     text=f"{done}/{total} questions" + (f" · {current}" if current else "")
                     + f" · {time.perf_counter() - task.started:.0f} s")
    st.session_state[TASK] = None
    if task.error is not None:
        bar.empty()
        common.show_error(task.error, "evaluating")
        return
    result = task.result["result"]
    bar.progress(1.0, text=f"Done: {result['n_items']} questions in {result['seconds']:.1f} s")
    st.session_state[RESULT] = {
        "summary": [{"section": a, "measure": b, "value": c} for a, b, c in summary_rows(result)],
        "result": result, "paths": task.result["paths"], "qa": task.context["qa"],
    }


def _show(saved: dict[str, Any]) -> None:
    result = saved["result"]
    paths = [Path(p) for p in saved["paths"]]
    st.subheader(f"Results: {common.md_escape(saved['qa'])} on {common.md_escape(result['settings']['collection'])}")
    if result.get("n_failed"):
        st.warning(f"{result['n_failed']} of {result['n_items']} questions failed; the others were scored.")
    st.dataframe(saved["summary"], hide_index=True, width="stretch", key="eval_summary")
    means = {f"{name} [{judge}]": m["mean"] for judge, metrics in (result.get("scores") or {}).items()
             for name, m in metrics.items() if m.get("mean") is not None}
    if means:
        st.bar_chart({"mean score": means}, horizontal=True, height=max(160, 36 * len(means)))
    for p in paths:
        if p.suffix == ".png" and p.is_file():
            st.image(str(p), caption=p.name)
    cols = st.columns(2)
    for col, p, mime in ((cols[0], paths[0], "application/json"), (cols[1], paths[1], "text/markdown")):
        if p.is_file():
            col.download_button(f"Download {p.name}", p.read_bytes(), file_name=p.name, mime=mime,
                                key=f"eval_dl_{p.name}")
    rows = []
    for r in result.get("items") or []:
        ans = r.get("answer") or {}
        rows.append({"id": r["id"], "question": r["question"], "answerable": r.get("answerable"),
                     "abstained": r.get("abstained"), "correct": r.get("correct"), "answer": ans.get("text", ""),
                     "error": r.get("error") or ""})
    with st.expander(f"Items ({len(rows)})"):
        st.dataframe(rows, hide_index=True, width="stretch", key="eval_items")
    for note in result.get("notes") or []:
        st.caption(common.md_escape(note))
    for e in result.get("errors") or []:
        st.caption(f"failed {common.md_escape(e['id'])}: {common.md_escape(e['error'])}")


def render() -> None:
    rag = common.rag_or_stop()
    st.header("Evaluate")
    names = common.collection_names(rag)
    if not names:
        st.info("There are no documents yet: add some on the **Documents** page.")
        return
    options = (["bundled"] if BUNDLED.is_file() else []) + ["upload"]
    source = st.radio("QA set", options, horizontal=True, key="eval_source",
                      format_func=lambda o: "data/eval/qa.jsonl (bundled)" if o == "bundled" else "upload a file")
    upload = None
    if source == "upload":
        upload = st.file_uploader("QA file (JSON lines: question, reference, relevant, answerable, id)",
                                  type=["jsonl", "json"], key="eval_upload")
    judge_text, judge_ready = judge_model_text(rag.settings)
    judge_name = (rag.settings.eval.judge_model or "the answering model") + ("" if judge_ready else " (not found)")
    with st.form("eval_form"):
        c1, c2, c3, c4 = st.columns(4)
        collection = c1.selectbox("Collection", names, key="eval_collection")
        limit = c2.number_input("First N questions (0 = all)", 0, 10000, 5, key="eval_limit",
                                help="Each answerable question costs one LLM answer: start small.")
        k = c3.number_input("Sources per answer (0 = answer_k)", 0, 50, 0, key="eval_k")
        judge = c4.selectbox("Judge", ("proxy", "llm"), key="eval_judge",
                             format_func=lambda j: "proxy (fast, no LLM)" if j == "proxy" else f"llm: {judge_name}",
                             help="proxy: fast, no LLM (the default). llm: adds the LLM judge next to it, with its "
                             "own model (eval.judge_model, default qwen2.5-coder-1.5b): it agrees better with "
                             "hand-labelled verdicts (Cohen's κ 0.61 against the proxy's 0.43) but takes ~5 s per "
                             "statement on 2 cores, about an hour for 50 answers.")
        go = st.form_submit_button("Run evaluation", type="primary", key="eval_run")
    (st.warning if judge == "llm" and not judge_ready else st.caption)(f"LLM judge: {common.md_escape(judge_text)}")
    if go and judge == "llm" and not judge_ready:
        st.error(f"The LLM judge cannot run: {common.md_escape(judge_text)}")
    elif go:
        if source == "upload":
            if upload is None:
                st.error("Choose a QA file to upload first (JSON lines with a `question` per line).")
            else:
                folder = rag.data_dir / "eval-runs" / "qa-uploads"
                folder.mkdir(parents=True, exist_ok=True)
                path = folder / common.safe_filename(upload.name, "qa.jsonl")
                path.write_bytes(upload.getvalue())
                _evaluate(rag, path, collection, int(limit) or None, judge, int(k) or None)
        else:
            _evaluate(rag, BUNDLED, collection, int(limit) or None, judge, int(k) or None)
    _follow()
    saved = st.session_state.get(RESULT)
    if saved:
        _show(saved)


if __name__ == "__main__":  # run by Streamlit as a page; a worker process that re-imports __main__ skips it
    render()
