"""Documents: upload and ingest files, the list of documents with remove, ingest or sync a server folder, tuning the
search on the collection's documents (`Rag.tune`, as `localrag tune`: progress, report, undo), and the collections'
status and index health.

Uploads are saved under the data directory (uploads/<collection>/<sanitised name>), so that `sync` and `remove`
keep working on them like on any other file. The uploader keeps its files across reruns, so ingesting is a button,
and content already stored comes back as "unchanged" (or "duplicate") instead of being embedded again.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import streamlit as st

from localrag import Rag
from localrag.app.tune import TrainSettings, TuneOptions
from localrag.ui import common
from localrag.ui.tasks import StageProgress, Task, duration

REPORT = "docs_report"  # the last ingest/sync/remove outcome table, kept across reruns
TASK = "docs_task"  # the ingest/sync/remove running in a worker (ui/tasks.py), if any
TUNE_TASK = "docs_tune_task"  # the tune (or its undo) running in a worker, if any
TUNE_REPORT = "docs_tune_report"  # the last tune's (or undo's) outcome, kept across reruns
# the stages of a tune as its report times them; the ones with a count report progress(stage, done, total)
TUNE_STAGES = (
    ("questions", "writing a question per chunk"),
    ("filter", "filtering the questions, picking hard negatives"),
    ("training", "training the embedder"),
    ("re-embedding", "re-embedding the chunks, measuring on held-out questions"),
    ("switch", "switching (only if held-out recall@5 improved)"),
)
TUNE_DEFAULT_CHUNKS = 200  # about 15 minutes of questions and 5 of training on 2 CPU cores (docs/BENCHMARKS.md)


def _collection(names: list[str]) -> str:
    options = names or ["default"]
    if st.session_state.get("docs_collection") not in options and st.session_state.get("docs_collection"):
        options = [*options, st.session_state["docs_collection"]]
    value = st.selectbox("Collection", options, key="docs_collection", accept_new_options=True,
                         help="Pick a collection, or type a new name to create it with the next ingest.")
    return (value or "default").strip() or "default"


# --- ingesting ---------------------------------------------------------------------------------------------------
def _outcome_rows(report: Any, data_dir: Path) -> list[dict[str, Any]]:
    rows = []
    for o in report.outcomes:
        src = str(o.source)
        try:
            shown = str(Path(src).relative_to(data_dir))
        except ValueError:
            shown = src
        details = "; ".join(([o.reason] if o.reason else []) + [f"warning: {w}" for w in o.warnings])
        rows.append({"file": shown, "outcome": getattr(o.status, "value", str(o.status)), "chunks": o.chunks,
                     "seconds": round(o.seconds, 2), "details": details})
    return rows


def _start(action: str, fn: Any, extra_rows: list[dict[str, Any]] | None = None) -> None:
    """Start an ingest/sync/remove in a worker (ui/tasks.py) and redraw: the page follows it from there."""
    running: Task | None = st.session_state.get(TASK)
    if running is not None and not running.done:
        st.warning(f"{running.label} is still running: wait for it to finish.")
        return
    st.session_state[TASK] = Task(action, fn, {"extra_rows": extra_rows or []}).start()
    st.rerun()


def _follow(rag: Rag) -> None:
    """Show the running task's progress until it is done, then keep its outcome table in the session."""
    task: Task | None = st.session_state.get(TASK)
    if task is None:
        return
    bar = st.progress(0.0, text=f"{task.label}…")
    while not task.wait(0.25):
        p = task.progress[0] if task.progress else None
        total = getattr(p, "files_total", 0) or 0
        done = getattr(p, "files_done", 0)
        frac = min(1.0, done / total) if total else 0.0
        current = getattr(p, "current", "") or ""
        bar.progress(frac, text=f"{task.label}: {done}/{total or '?'} files · {getattr(p, 'chunks_done', 0)} chunks"
                     f" · {getattr(p, 'chunks_per_s', 0.0):.1f} chunks/s · {Path(current).name if current else ''}"
                     f" · {time.perf_counter() - task.started:.0f} s")
    st.session_state[TASK] = None
    if task.error is not None:
        bar.empty()
        st.session_state[REPORT] = None
        common.show_error(task.error, task.label.lower())
        return
    report, extra = task.result, task.context["extra_rows"]
    bar.progress(1.0, text=f"{task.label}: done in {report.seconds:.1f} s")
    counts = ", ".join(f"{v} {k}" for k, v in report.counts.items() if v) or "nothing to do"
    st.session_state[REPORT] = {"action": task.label, "rows": extra + _outcome_rows(report, rag.data_dir),
                                "summary": f"{counts} in {report.seconds:.1f} s", "notes": list(report.notes),
                                "failed": len(report.failed) + len(extra)}


def _save_uploads(rag: Rag, collection: str, files: list[Any]) -> tuple[list[Path], list[dict[str, Any]]]:
    """Write the uploads into the data directory; returns the saved paths and outcome rows for refused files."""
    folder = (rag.data_dir / common.UPLOADS / common.safe_filename(collection, "default")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    limit = rag.settings.ingest.max_file_mb
    saved: list[Path] = []
    refused: list[dict[str, Any]] = []
    taken: set[str] = set()
    for f in files:
        name = common.safe_filename(f.name)
        if Path(name).suffix.lower().lstrip(".") not in common.SUPPORTED_TYPES:
            refused.append({"file": name, "outcome": "error", "chunks": 0, "seconds": 0.0,
                            "details": f"unsupported type {Path(name).suffix or '(none)'}"})
            continue
        if f.size > limit * 1024 * 1024:
            refused.append({"file": name, "outcome": "error", "chunks": 0, "seconds": 0.0,
                            "details": f"larger than max_file_mb ({limit:g} MB)"})
            continue
        stem, suffix, n = Path(name).stem, Path(name).suffix, 2
        while name in taken:  # two uploads with the same (sanitised) name in one batch
            name, n = f"{stem} ({n}){suffix}", n + 1
        taken.add(name)
        path = (folder / name).resolve()
        if path.parent != folder:  # safe_filename makes this impossible; never write outside the folder anyway
            refused.append({"file": name, "outcome": "error", "chunks": 0, "seconds": 0.0,
                            "details": "file name not allowed"})
            continue
        data = f.getvalue()
        if not (path.is_file() and path.read_bytes() == data):
            tmp = path.with_name(f".{path.name}.part")
            tmp.write_bytes(data)
            tmp.replace(path)
        saved.append(path)
    return saved, refused


def _upload_section(rag: Rag, collection: str) -> None:
    st.subheader("Add files")
    limit = max(1, math.ceil(rag.settings.ingest.max_file_mb))
    files = st.file_uploader(
        "PDF, text, Markdown, HTML, Word (.docx) and RDF files", type=list(common.SUPPORTED_TYPES),
        accept_multiple_files=True,
        key="docs_upload", max_upload_size=limit,
        help=f"Saved under the data directory ({common.UPLOADS}/{collection}/), then ingested. Up to {limit} MB each.",
    )
    if st.button("Ingest uploaded files", type="primary", disabled=not files, key="docs_ingest_uploads"):
        saved, refused = _save_uploads(rag, collection, list(files or []))
        if saved:
            _start("Ingesting", lambda cb: rag.ingest(saved, collection=collection, progress=cb), refused)
        else:
            st.session_state[REPORT] = {"action": "Ingesting", "rows": refused, "summary": "no file was ingested",
                                        "notes": [], "failed": len(refused)}


def _folder_section(rag: Rag, collection: str) -> None:
    with st.expander("Ingest or sync a folder on the server", icon=":material/folder:"):
        folder = st.text_input("Folder (on the machine running localrag)", key="docs_folder",
                               placeholder=str(Path.home() / "Documents"))
        cols = st.columns(2)
        ingest = cols[0].button("Ingest folder", key="docs_folder_ingest", disabled=not folder)
        sync = cols[1].button("Sync folder", key="docs_folder_sync", disabled=not folder,
                              help="Ingest, and remove the documents whose files are gone from the folder.")
        if ingest or sync:
            path = Path(folder).expanduser()
            if not path.is_dir():
                common.show_error(FileNotFoundError(f"not a folder: {path}"), "reading the folder")
            elif sync:
                _start("Syncing", lambda cb: rag.sync([path], collection=collection, progress=cb))
            else:
                _start("Ingesting", lambda cb: rag.ingest([path], collection=collection, progress=cb))


def _report_section() -> None:
    rep = st.session_state.get(REPORT)
    if not rep:
        return
    st.subheader(f"Last run: {rep['action'].lower()}")
    (st.warning if rep["failed"] else st.success)(
        common.md_escape(rep["summary"]) + (f" — {rep['failed']} file(s) could not be ingested; the others went in."
                                            if rep["failed"] else ""))
    # a static table (text in the page, readable by people and tests); st.table renders Markdown: escape the cells
    st.table([{k: common.md_escape(v) if isinstance(v, str) else v for k, v in row.items()} for row in rep["rows"]],
             hide_index=True)
    for note in rep["notes"]:
        st.caption("note: " + common.md_escape(note))


def _list_section(rag: Rag, collection: str, names: list[str]) -> None:
    st.subheader("Documents")
    if collection not in names:
        st.info("This collection is empty: add files above.")
        return
    try:
        docs = rag.documents(collection)
    except Exception as exc:  # noqa: BLE001
        common.show_error(exc, "listing the documents")
        return
    rows = [{"name": d["name"], "kind": d["kind"], "pages": d["pages"], "chunks": d["chunks"],
             "status": d["status"] if d["status"] == "ok" else f"duplicate of {Path(d['duplicate_of'] or '').name}",
             "ingested": d["ingested"], "title": d.get("title") or "", "path": d["source"]} for d in docs]
    st.dataframe(rows, hide_index=True, width="stretch", key="docs_list")
    chosen = st.multiselect("Remove documents", [d["source"] for d in docs], key="docs_remove_choice",
                            format_func=lambda s: s.rsplit("/", 1)[-1])
    if st.button("Remove selected", disabled=not chosen, key="docs_remove"):
        sources = list(chosen)
        _start("Removing", lambda _cb: rag.remove(sources, collection=collection))


# --- tuning the search (Rag.tune) ----------------------------------------------------------------------------------
def _tune_section(rag: Rag, collection: str, names: list[str]) -> Any:
    """The tune panel: what it does, the max-chunks and epochs inputs, the Tune and Undo buttons, a slot for the
    progress (filled by `_follow_tune` at the end of the page, so the page stays readable while a tune runs), and
    the last report. Returns the slot."""
    with st.container(border=True, key="docs_tune_panel"):
        st.subheader("Tune the search on these documents")
        st.caption("The LLM writes a question for each sampled chunk; the embedding model is fine-tuned on those "
                   "questions, and the collection switches to it only when recall@5 on held-out questions improves "
                   "(the base model stays until Undo or the next tune). The same as `localrag tune`. One tune of a "
                   "collection runs at a time, in any process; ingesting meanwhile is allowed, but then the tune "
                   "does not switch (tune again).")
        slot = st.empty()
        task: Task | None = st.session_state.get(TUNE_TASK)
        running = task is not None and not task.done
        info = _collection_info(rag, collection) if collection in names else None
        if info is None:
            st.caption("Ingest documents into this collection first.")
            return slot
        chunks = int(info.get("chunks") or 0)
        cols = st.columns(2)
        max_chunks = cols[0].number_input(
            "Max chunks", min_value=1, value=max(1, min(chunks, TUNE_DEFAULT_CHUNKS)), step=50,
            key="docs_tune_max_chunks",
            help=f"Questions are written for this many chunks, sampled by document (this collection has {chunks}). "
                 "More chunks: more to learn from, and a longer run (about 4 s per question on 2 CPU cores; "
                 "questions already written are reused).")
        epochs = cols[1].number_input("Training epochs", min_value=1, max_value=20, value=3, key="docs_tune_epochs")
        tuned = info.get("tuned_model")
        if tuned:
            st.info(f"Searches of this collection use its tuned embedder (run {common.code(tuned)}), trained from "
                    f"{common.code(info['embedding_model'])}.")
        buttons = st.columns(2)
        if buttons[0].button("Tune the search on these documents", type="primary", key="docs_tune",
                             disabled=running or chunks == 0):
            tracker = StageProgress()
            n, ep = int(max_chunks), int(epochs)
            _start_tune(Task("Tuning", lambda _cb: rag.tune(collection, max_chunks=n, progress=tracker,
                                                             options=TuneOptions(train=TrainSettings(epochs=ep))),
                             {"collection": collection, "tracker": tracker, "undo": False}))
        if tuned and buttons[1].button("Undo tune", key="docs_tune_undo", disabled=running,
                                       help="Go back to the base embedding model (its vectors were kept)."):
            _start_tune(Task("Undoing the tune", lambda _cb: rag.tune(collection, undo=True),
                             {"collection": collection, "tracker": None, "undo": True}))
        _tune_report(collection)
    return slot


def _collection_info(rag: Rag, collection: str) -> dict[str, Any] | None:
    try:
        return next((c for c in rag.status()["collections"] if c["name"] == collection), None)
    except Exception as exc:  # noqa: BLE001
        common.show_error(exc, "reading the collection's status")
        return None


def _start_tune(task: Task) -> None:
    running: Task | None = st.session_state.get(TUNE_TASK)
    if running is not None and not running.done:
        st.warning(f"{running.label} is still running: wait for it to finish.")
        return
    st.session_state[TUNE_TASK] = task.start()
    st.rerun()


def tune_progress(task: Task, now: float | None = None) -> tuple[float, str]:
    """The bar's fraction and text for a running tune: its stage (of five), done/total, ETA, time so far."""
    elapsed = duration((time.perf_counter() if now is None else now) - task.started)
    coll = task.context["collection"]
    tracker: StageProgress | None = task.context.get("tracker")
    if tracker is None:
        return 0.0, f"{task.label} of {coll!r}… · {elapsed} elapsed"
    s = tracker.state
    order = [k for k, _ in TUNE_STAGES]
    if s is None:
        return 0.0, f"Tuning {coll!r}: sampling the chunks… · {elapsed} elapsed"
    stage, done, total = s[0], s[1], s[2]
    if total and done >= total and stage in ("questions", "re-embedding"):  # the next stage reports no count
        stage = order[order.index(stage) + 1]
        counted = ""
    else:
        counted = f": {done}/{total} ({tracker.fraction:.0%}) · ETA {duration(tracker.eta())}"
    n = order.index(stage) + 1 if stage in order else "?"
    label = dict(TUNE_STAGES).get(stage, stage)
    return tracker.fraction, f"Tuning {coll!r} · stage {n}/{len(order)}, {label}{counted} · {elapsed} elapsed"


def _follow_tune(slot: Any) -> None:
    """Show the running tune's progress in its slot until it is done, then keep its outcome and redraw the page
    (the panel then shows the report, and Undo when the collection switched)."""
    task: Task | None = st.session_state.get(TUNE_TASK)
    if task is None:
        return
    frac, text = tune_progress(task)
    bar = slot.progress(frac, text=text)
    while not task.wait(0.5):
        frac, text = tune_progress(task)
        bar.progress(frac, text=text)
    st.session_state[TUNE_TASK] = None
    ctx = task.context
    tracker: StageProgress | None = ctx.get("tracker")
    st.session_state[TUNE_REPORT] = {"collection": ctx["collection"], "undo": ctx["undo"], "error": task.error,
                                     "result": task.result, "seconds": task.seconds,
                                     "stages": list(tracker.stages) if tracker else []}
    st.rerun()


def _tune_report(collection: str) -> None:
    rep = st.session_state.get(TUNE_REPORT)
    if not rep or rep["collection"] != collection:
        return
    if rep["error"] is not None:
        common.show_error(rep["error"], "undoing the tune" if rep["undo"] else "tuning the search")
        return
    r = rep["result"]
    if rep["undo"]:
        st.success(f"The collection uses its base model again ({r['chunks']} chunks, {r['re_embedded']} "
                   f"re-embedded) · {duration(rep['seconds'])}.")
        return
    (st.success if r["switched"] else st.warning)(common.md_escape(r["decision"]))
    st.table([{"held-out questions": f"{m} (n = {r['held_out']})", "base model": f"{r['before'][m]:.3f}",
               "tuned model": f"{r['after'][m]:.3f}"} for m in ("recall@5", "mrr@10")], hide_index=True)
    q = r["questions"]
    st.caption(f"{r['chunks']} chunks, {r['sampled']} sampled · questions written {q['asked']} (junk {q['junk']}), "
               f"reused {q['reused']} · kept {r['kept']}, dropped {r['dropped']} · trained on {r['trained_on']}, "
               f"held out {r['held_out']}")
    st.caption("Time per stage:")
    st.table([{**{stage: duration(sec) for stage, sec in r["seconds"].items()}, "total": duration(rep["seconds"])}],
             hide_index=True)
    for note in r.get("notes", []):
        st.caption("note: " + common.md_escape(note))


def _status_section(rag: Rag) -> None:
    with st.expander("Status and index health", icon=":material/monitor_heart:"):
        try:
            status = rag.status()
        except Exception as exc:  # noqa: BLE001
            common.show_error(exc, "reading the status")
            return
        st.caption(f"Data directory: {common.md_escape(status['data_dir'])}")
        rows = []
        for c in status["collections"]:
            idx = c.get("index") or {}
            rows.append({
                "collection": c["name"], "documents": c["documents"], "duplicates": c["duplicates"],
                "chunks": c["chunks"], "kg nodes": c["kg_nodes"], "kg edges": c["kg_edges"],
                "kinds": ", ".join(f"{k} {v}" for k, v in sorted(c["kinds"].items())),
                "embedding model": f"{c['embedding_model']} ({c['embedding_dim']}-d)",
                "index in step": "yes" if idx.get("in_step") else "NO",
                "vectors": idx.get("vectors"), "bm25 docs": idx.get("bm25_docs"),
                "corpus version": c["corpus_version"],
                "last run": (f"{c['last_run']['command']} {c['last_run']['status']} {c['last_run']['started']}"
                             if c.get("last_run") else ""),
            })
        if rows:
            st.dataframe(rows, hide_index=True, width="stretch", key="docs_status")
        else:
            st.write("No collections yet.")


def render() -> None:
    rag = common.rag_or_stop()
    st.header("Documents")
    names = common.collection_names(rag)
    collection = _collection(names)
    _upload_section(rag, collection)
    _folder_section(rag, collection)
    _follow(rag)
    _report_section()
    names = common.collection_names(rag)
    _list_section(rag, collection, names)
    slot = _tune_section(rag, collection, names)
    _status_section(rag)
    _follow_tune(slot)


if __name__ == "__main__":  # run by Streamlit as a page; a worker process that re-imports __main__ skips it
    render()
