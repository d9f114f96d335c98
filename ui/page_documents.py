"""Documents: upload and ingest files, the list of documents with remove, ingest or sync a server folder, and the
collections' status and index health.

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
from localrag.ui import common
from localrag.ui.tasks import Task

REPORT = "docs_report"  # the last ingest/sync/remove outcome table, kept across reruns
TASK = "docs_task"  # the ingest/sync/remove running in a worker (ui/tasks.py), if any


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
    _status_section(rag)


if __name__ == "__main__":  # run by Streamlit as a page; a worker process that re-imports __main__ skips it
    render()
