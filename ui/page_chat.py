"""Chat: questions answered from the documents, streamed, with numbered citations, scores and feedback.

A Streamlit page script (run by ui/app.py's navigation); `render()` draws it.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import streamlit as st

from localrag import Rag
from localrag.app.answering import cite_location
from localrag.app.answering.highlight import quote_pieces
from localrag.app.config import AnswerMode
from localrag.ui import common
from localrag.ui.chat_job import STOPPED_NOTE, AnswerJob

CONV = "chat_conv"  # the open conversation's id (also in the URL as ?c=..., so a refresh reopens it)
MESSAGES = "chat_messages"  # its messages, as shown
JOB = "chat_job"  # the answer being written, if any
AGAIN = "chat_ask_again"  # a question to answer again without the cache ("Ask again" under a cached answer)
MODES = ("hybrid", "dense", "lexical")
ANSWER_MODES = tuple(m.value for m in (AnswerMode.EXTRACTIVE, AnswerMode.AUTO, AnswerMode.GENERATIVE))  # menu order
# which writer's text the turn shows (Answer.mode), in words
WRITER_NOTES = {
    "extractive": "Quoted from the sources (no model).",
    "auto:extractive": ("Quoted from the sources: the model's answer did not pass its checks, so a quote stands "
                        "(the first one, or a next-best one that the checking model took as an answer)."),
    "auto:generative": "Written by the model from the numbered sources; it replaced the quote shown first.",
    "generative": "Written by the model from the numbered sources.",
}
ANSWER_MODE_HELP = ("extractive: quotes the sources' best supporting sentences, cited (no LLM, fast) · auto: the quote "
                    "at once, then the LLM's answer replaces it when it passes its checks · generative: the LLM "
                    "writes")


# --- conversation state -----------------------------------------------------------------------------------------
def _load_conversation(rag: Rag, conv_id: str) -> bool:
    conv = rag.conversations.load(conv_id)
    if conv is None:
        return False
    st.session_state[CONV] = conv["id"]
    st.session_state[MESSAGES] = conv["messages"]
    st.session_state[JOB] = None
    if conv["collection"]:
        st.session_state["chat_collection"] = conv["collection"]
    return True


def _new_chat() -> None:
    st.session_state[CONV] = None
    st.session_state[MESSAGES] = []
    st.session_state[JOB] = None  # a running answer still finishes and is saved to its own conversation
    st.query_params.clear()


def _open_chat(conv_id: str) -> None:
    st.session_state["chat_open_request"] = conv_id


def _ensure_state(rag: Rag) -> None:
    st.session_state.setdefault(CONV, None)
    st.session_state.setdefault(MESSAGES, [])
    st.session_state.setdefault(JOB, None)
    wanted = st.session_state.pop("chat_open_request", None)
    if wanted:
        if _load_conversation(rag, wanted):
            st.query_params["c"] = wanted
        return
    in_url = st.query_params.get("c")
    if st.session_state[CONV] is None and in_url:
        if not _load_conversation(rag, in_url):
            st.query_params.clear()
    elif st.session_state[CONV] and in_url != st.session_state[CONV]:
        st.query_params["c"] = st.session_state[CONV]


# --- sidebar ----------------------------------------------------------------------------------------------------
def _sidebar(rag: Rag, names: list[str]) -> dict[str, Any]:
    s = rag.settings
    sb = st.sidebar
    sb.button("New chat", icon=":material/add_comment:", on_click=_new_chat, width="stretch")
    if not names:
        return {}
    if st.session_state.get("chat_collection") not in names:
        st.session_state["chat_collection"] = "default" if "default" in names else names[0]
    collection = sb.selectbox("Collection", names, key="chat_collection")
    default_mode = s.answer.mode if s.answer.mode in ANSWER_MODES else ANSWER_MODES[0]
    answer_mode = sb.selectbox("Answer mode", ANSWER_MODES, index=ANSWER_MODES.index(default_mode),
                               key="chat_answer_mode", help=ANSWER_MODE_HELP)
    with sb.expander("Retrieval", expanded=False):
        k = st.slider("Sources per answer (k)", 1, 12, int(s.answer.k), key="chat_k")
        mode = st.selectbox("Search mode", MODES, index=MODES.index(s.search.mode), key="chat_mode")
        kinds = st.multiselect("Kinds", common.KINDS, key="chat_kinds")
        glob = st.text_input("Source glob", key="chat_glob", placeholder="*.md, notes/*",
                             help="Only files whose name or path matches (comma-separated globs).")
        try:
            docs = [d for d in rag.documents(collection) if d["status"] == "ok"]
        except Exception:  # noqa: BLE001 - the list is a convenience; the chat still works without it
            docs = []
        chosen = st.multiselect("Only these documents", [d["source"] for d in docs], key="chat_docs",
                                format_func=lambda src: src.rsplit("/", 1)[-1],
                                help="Limit the chat to chosen documents (overrides the glob).")
        expand = st.toggle("Knowledge-graph expansion", value=False, key="chat_expand",
                           help="Add the linked nodes of knowledge-graph hits to the sources.")
    with sb.expander("Generation", expanded=False):
        temperature = st.slider("Temperature", 0.0, 1.0, float(min(s.llm.temperature, 1.0)), 0.05,
                                key="chat_temperature")
        max_tokens = st.number_input("Max tokens", 16, 2048, int(s.answer.max_tokens), 16, key="chat_max_tokens")
        cache = st.toggle("Answer cache", value=bool(s.answer.cache_enabled), key="chat_cache",
                          help="Reuse the answer to the same (or an equivalent) earlier question.")
    _past_conversations(rag)
    return {"collection": collection, "k": int(k), "mode": mode, "filters": common.filters(kinds, glob, chosen),
            "expand": bool(expand), "temperature": float(temperature), "max_tokens": int(max_tokens),
            "cache": bool(cache), "answer_mode": answer_mode}


def _past_conversations(rag: Rag) -> None:
    try:
        convs = [c for c in rag.conversations.list(limit=20) if c["messages"]]
    except Exception:  # noqa: BLE001 - the list is a convenience
        return
    if not convs:
        return
    st.sidebar.markdown("**Conversations**")
    current = st.session_state.get(CONV)
    for c in convs:
        st.sidebar.button(
            common.md_escape(c["title"]), key=f"conv-{c['id']}", on_click=_open_chat, args=(c["id"],),
            type="primary" if c["id"] == current else "secondary", width="stretch",
            help=f"{c['collection']} · {c['messages']} messages · {c['updated']:%Y-%m-%d %H:%M}",
        )


# --- one answer -------------------------------------------------------------------------------------------------
def _badge(name: str, value: float | None) -> None:
    if value is None:
        st.badge(f"{name}: unscored", color="gray")
        return
    color: Literal["green", "orange", "red"] = "green" if value >= 0.7 else "orange" if value >= 0.4 else "red"
    st.badge(f"{name} {value:.2f}", color=color)


def _details(ans: dict[str, Any]) -> str:
    t = ans.get("timings") or {}
    bits = [f"mode {ans['mode']}"] if ans.get("mode") else []
    if ans.get("cached"):
        c = ans.get("cache") or {}
        sim = c.get("similarity")
        bits.append("from cache" + (f" ({c.get('kind')}, similarity {sim:.2f})" if sim is not None else ""))
    if "retrieve" in t:
        bits.append(f"retrieval {common.seconds(t['retrieve'])}")
    if "first_words" in t:
        bits.append(f"first words {common.seconds(t['first_words'])}")
    if "ttft" in t:
        bits.append(f"first token {common.seconds(t['ttft'])}")
    if "total" in t:
        bits.append(f"total {common.seconds(t['total'])}")
    tokens = ans.get("tokens") or {}
    if tokens.get("completion"):
        bits.append(f"{tokens['completion']} tokens")
    if ans.get("model_id") and ans.get("model_id") != "extractive":
        bits.append(f"model {ans['model_id']}")
    return " · ".join(bits)


def _citations(ans: dict[str, Any]) -> None:
    kinds = {s.get("n"): s.get("kind") for s in ans.get("sources") or []}
    labels = {s.get("n"): s.get("label") for s in ans.get("sources") or []}
    for c in ans.get("citations") or []:
        n = c.get("n")
        name = str(c.get("source", "")).rsplit("/", 1)[-1]
        page = int(c["page"]) if c.get("page") is not None and kinds.get(n) in (None, "pdf") else None  # PDFs only
        # "Guide › Safety › Tides, p. 4 (OCR)": the section path includes the heading that would be the label
        where = cite_location(c.get("section"), page, bool(c.get("ocr")))
        title = common.md_escape(" · ".join(x for x in (f"[{n}] {name}", where or labels.get(n)) if x))
        if not where and c.get("kg_uri"):
            title += " · " + common.code(c["kg_uri"])
        with st.expander(title):
            st.markdown(f"**Source:** {common.code(c.get('source'))}")
            if c.get("section"):
                st.markdown(f"**Section:** {common.md_escape(c['section'])}")
            if page is not None:
                st.markdown(f"**Page:** {page}" + (" (text read by OCR from the page image)" if c.get("ocr") else ""))
            if c.get("kg_uri"):
                st.markdown(f"**Knowledge-graph node:** {common.code(c['kg_uri'])}")
            quote = c.get("quote") or ""
            pieces = quote_pieces(quote, ans.get("text", ""), n)
            st.markdown(f"**Quote:** {common.highlight(pieces)}")


def render_answer(rag: Rag, msg: dict[str, Any], index: int = 0) -> None:
    """A finished assistant turn: the answer (or the abstention with its reason), where it came from when the cache
    served it (with "Ask again"), badges, details, citations, notes and feedback."""
    if msg.get("error") is not None:
        common.show_error(msg["error"], "answering")
        return
    ans = msg.get("answer") or {"text": msg.get("content", "")}
    if ans.get("stopped"):
        st.markdown(common.md_escape(ans.get("text") or msg.get("content", "")))
        st.caption(f"⏹ {STOPPED_NOTE}")
        return
    if ans.get("abstained"):
        st.warning(f"**No answer from the documents.** {common.md_escape(ans.get('text', ''))}\n\n"
                   f"Why: {common.md_escape(ans.get('abstain_reason') or 'unknown')}", icon=":material/help:")
    else:
        st.markdown(common.md_escape(ans.get("text") or msg.get("content", "")))
        if ans.get("mode") in WRITER_NOTES:
            st.caption(WRITER_NOTES[ans["mode"]])
    if ans.get("cached"):
        _from_cache(ans, index)
    restarts = ans.get("restarts") or []
    if restarts:
        st.caption(f"{len(restarts)} draft(s) rejected by the guardrails and rewritten: "
                   + common.md_escape("; ".join(restarts))[:600])
    if ans.get("standalone_question"):
        st.caption("Searched for: " + common.md_escape(ans["standalone_question"]))
    scores = (ans.get("scores") or {}).get("values") or {}
    if scores and not ans.get("abstained"):
        cols = st.columns([1, 1, 3])
        with cols[0]:
            _badge("faithfulness", scores.get("faithfulness"))
        with cols[1]:
            _badge("relevance", scores.get("answer_relevancy"))
    details = _details(ans)
    if details:
        st.caption(common.md_escape(details))
    _citations(ans)
    notes = list(ans.get("warnings") or []) + list(ans.get("invalid_citations") and
                                                   [f"invalid citation markers removed: {ans['invalid_citations']}"]
                                                   or [])
    if notes:
        with st.expander(f"Notes ({len(notes)})"):
            for note in notes:
                st.markdown("- " + common.md_escape(note))
    if msg.get("save_error"):
        st.caption("This answer could not be saved: " + common.md_escape(msg["save_error"]))
    if msg.get("id") is not None:
        _feedback(rag, msg)


def _from_cache(ans: dict[str, Any], index: int) -> None:
    """Why the cache served this answer ("same question as '…' (asked 2 h ago)"), and a button that asks again
    without the cache."""
    why = (ans.get("cache") or {}).get("why") or "answered from the cache"
    cols = st.columns([5, 1])
    with cols[0]:
        st.caption(":material/cached: " + common.md_escape(why))
    with cols[1]:
        st.button("Ask again", key=f"again-{index}", on_click=_ask_again, args=(ans.get("question") or "",),
                  help="Answer this question afresh from the documents, without the answer cache.")


def _ask_again(question: str) -> None:
    if question.strip():
        st.session_state[AGAIN] = question


def _feedback(rag: Rag, msg: dict[str, Any]) -> None:
    mid = msg["id"]
    fb = msg.get("feedback") or {}
    key, ckey = f"fb-{mid}", f"fbc-{mid}"
    default = None if not fb else (1 if fb.get("rating", 0) > 0 else 0)
    cols = st.columns([1, 4])
    with cols[0]:
        value = st.feedback("thumbs", key=key, default=default, on_change=_save_feedback, args=(rag, msg, key, ckey))
    if value is not None:
        with cols[1]:
            st.text_input("Comment (optional)", key=ckey, value=fb.get("comment") or "", label_visibility="collapsed",
                          placeholder="What was right or wrong? (optional, Enter to save)",
                          on_change=_save_feedback, args=(rag, msg, key, ckey))


def _save_feedback(rag: Rag, msg: dict[str, Any], key: str, ckey: str) -> None:
    value = st.session_state.get(key)
    if value is None:
        return
    comment = st.session_state.get(ckey) or None
    try:
        rag.feedback("up" if value == 1 else "down", message_id=msg["id"], comment=comment)
        msg["feedback"] = {"rating": 1 if value == 1 else -1, "comment": comment}
        st.toast("Thanks — feedback saved." if not comment else "Feedback and comment saved.")
    except Exception as exc:  # noqa: BLE001
        st.session_state["chat_feedback_error"] = exc


# --- streaming --------------------------------------------------------------------------------------------------
def _follow(job: AnswerJob) -> None:
    """Show the job's text as it streams (a rejected draft clears and restarts visibly), with a stop button; when
    it is done, keep the finished turn in the session and redraw."""
    with st.chat_message("assistant"):
        status = st.empty()
        body = st.empty()
        stop = st.empty()
        stop.button("Stop", key="chat_stop", icon=":material/stop_circle:", on_click=job.stop)
        seen, tick = -1, 0.0
        while True:
            finished = job.wait(0.08)
            now = time.perf_counter()
            # redraw on news, and at least twice a second: every Streamlit call is where a click (Stop, another
            # widget) gets handled, so the page must make one regularly even while the model is still reading
            if job.version != seen or now - tick >= 0.5 or finished:
                seen, tick = job.version, now
                elapsed = now - job.started
                if job.restarts and not finished:
                    status.warning(f"Draft {len(job.restarts)} was rejected by the guardrails and is being "
                                   f"rewritten: {common.md_escape(job.restarts[-1])[:400]}", icon=":material/refresh:")
                elif finished:
                    status.empty()
                elif not job.text:
                    status.caption(f"Searching the documents and reading the sources… {elapsed:.0f} s")
                elif job.showing == "quote":
                    status.caption(f"Quoted from the sources; the model is writing an answer to replace it… "
                                   f"{elapsed:.0f} s")
                else:
                    status.caption(f"Writing… {elapsed:.0f} s")
                body.markdown(common.md_escape(job.text) + ("" if finished else " ▌"))
            if finished:
                break
        stop.empty()
    st.session_state[MESSAGES].append(job.message())
    st.session_state[JOB] = None
    st.rerun()


def _submit(rag: Rag, question: str, opts: dict[str, Any]) -> None:
    question = question.strip()
    if not question:
        return
    history = [{"role": m["role"], "content": m["content"]} for m in st.session_state[MESSAGES]
               if m.get("content") and m.get("error") is None]
    conv_id = st.session_state[CONV]
    user: dict[str, Any] = {"id": None, "role": "user", "content": question}
    try:
        if conv_id is None:
            settings = {k: v for k, v in opts.items() if k != "collection"}
            conv_id = rag.conversations.create(opts["collection"], settings=settings)
            st.session_state[CONV] = conv_id
            st.query_params["c"] = conv_id
        user["id"] = rag.conversations.append(conv_id, "user", question)
    except Exception as exc:  # noqa: BLE001 - the answer still comes; the chat is just not saved
        common.show_error(exc, "saving the conversation")
        conv_id = None
    st.session_state[MESSAGES].append(user)
    with st.chat_message("user"):
        st.markdown(common.md_escape(question))
    options = {k: v for k, v in opts.items() if k != "collection"}
    job = AnswerJob(question, opts["collection"], {**options, "history": history or None},
                    conversation_id=conv_id).start(rag)
    st.session_state[JOB] = job
    _follow(job)


def render() -> None:
    rag = common.rag_or_stop()
    _ensure_state(rag)
    names = common.collection_names(rag)
    opts = _sidebar(rag, names)
    err = st.session_state.pop("chat_feedback_error", None)
    if err is not None:
        common.show_error(err, "saving feedback")
    if not names:
        st.info("There are no documents yet. Add some on the **Documents** page, then ask about them here.",
                icon=":material/upload_file:")
    for i, msg in enumerate(st.session_state[MESSAGES]):
        with st.chat_message(msg["role"]):
            if msg["role"] == "user":
                st.markdown(common.md_escape(msg["content"]))
            else:
                render_answer(rag, msg, i)
    job: AnswerJob | None = st.session_state[JOB]
    if job is not None:
        _follow(job)
    again = st.session_state.pop(AGAIN, None)
    if again and opts and job is None:
        _submit(rag, again, {**opts, "cache": False})
    question = st.chat_input("Ask a question about your documents", key="chat_input", submit_mode="disable",
                             disabled=not names)
    if question and opts:
        _submit(rag, question, opts)


if __name__ == "__main__":  # run by Streamlit as a page; a worker process that re-imports __main__ skips it
    render()
