"""Search: hybrid (or dense / lexical) search with fusion, filters, reranking and knowledge-graph expansion; each
hit with its score and rank in every stage, and the search's per-stage timings."""

from __future__ import annotations

from typing import Any

import streamlit as st

from localrag import Rag
from localrag.app.answering import cite_location
from localrag.ui import common

RESULT = "search_result"
STAGES = ("dense", "lexical", "fused", "rerank")


def _form(rag: Rag, names: list[str]) -> dict[str, Any] | None:
    s = rag.settings.search
    with st.form("search_form"):
        query = st.text_input("Query", key="search_query", placeholder="keywords or a question")
        c1, c2, c3, c4 = st.columns(4)
        collection = c1.selectbox("Collection", names, key="search_collection")
        mode = c2.selectbox("Mode", ("hybrid", "dense", "lexical"), index=("hybrid", "dense", "lexical").index(
            s.mode), key="search_mode")
        fusion = c3.selectbox("Fusion", ("convex", "rrf"), index=("convex", "rrf").index(s.fusion), key="search_fusion",
                              help="How dense and BM25 results are combined in hybrid mode.")
        k = c4.number_input("k", 1, 50, 5, key="search_k")
        c5, c6, c7 = st.columns([1, 1, 1])
        kinds = c5.multiselect("Kinds", common.KINDS, key="search_kinds")
        glob = c6.text_input("Source glob", key="search_glob", placeholder="*.md, notes/*")
        min_rel = c7.slider("Min relevance", 0.0, 1.0, float(s.min_relevance), 0.01, key="search_min_rel")
        c8, c9 = st.columns(2)
        has_reranker = bool(s.reranker_model)
        rerank = c8.toggle("Rerank", value=has_reranker, disabled=not has_reranker, key="search_rerank",
                           help="Rescore with the configured cross-encoder." if has_reranker else
                           "No reranker is configured (set search.reranker_model to a CrossEncoder id or folder).")
        expand = c9.toggle("Knowledge-graph expansion", value=False, key="search_expand")
        go = st.form_submit_button("Search", type="primary")
    if not go:
        return None
    return {"query": query, "collection": collection, "mode": mode, "fusion": fusion, "k": int(k),
            "filters": common.filters(kinds, glob), "min_relevance": float(min_rel),
            "rerank": bool(rerank) if has_reranker else False, "expand": bool(expand)}


def _hit(n: int, h: dict[str, Any]) -> None:
    name = h["source"].rsplit("/", 1)[-1]
    with st.container(border=True):
        head = f"**{n}. {common.md_escape(name)}**"
        page = int(h["page"]) if h.get("page") is not None and h.get("kind") == "pdf" else None
        # "Guide › Safety › Tides, p. 4 (OCR)": the section path includes the heading that would be the label
        where = cite_location(h.get("section"), page, bool(h.get("ocr")))
        if where or h.get("label"):
            head += f" · {common.md_escape(where or h['label'])}"
        st.markdown(head + f" · {common.md_escape(h['kind'])} · relevance {h['relevance']:.3f}")
        row = {}
        for stage in STAGES:
            if stage in h.get("scores", {}) or stage in h.get("ranks", {}):
                score = h["scores"].get(stage)
                rank = h["ranks"].get(stage)
                row[stage] = (f"{score:.4f}" if score is not None else "–") + (f" (#{rank})" if rank else "")
        for extra in ("dense_norm", "lexical_norm"):
            if extra in h.get("scores", {}):
                row[extra] = f"{h['scores'][extra]:.4f}"
        if row:
            st.dataframe([row], hide_index=True, width="stretch", key=f"search_stages_{n}")
        st.text(h["text"])  # document text: shown as plain text, never as Markdown/HTML
        if h.get("kg_uri"):
            st.caption("Node URI: " + common.code(h["kg_uri"]))
        for nb in h.get("neighbours") or []:
            arrow = "→" if nb.get("direction") == "out" else "←"
            with st.expander(common.md_escape(f"{arrow} {nb.get('relation')}: {nb.get('label') or nb.get('uri')}")):
                st.caption(common.code(nb.get("uri", "")))
                st.text(nb.get("text", ""))


def render() -> None:
    rag = common.rag_or_stop()
    st.header("Search")
    names = common.collection_names(rag)
    if not names:
        st.info("There are no documents yet: add some on the **Documents** page.")
        return
    params = _form(rag, names)
    if params is not None:
        query = params.pop("query")
        try:
            res = rag.search(query, **params)
        except Exception as exc:  # noqa: BLE001
            common.show_error(exc, "searching")
            st.session_state.pop(RESULT, None)
            return
        st.session_state[RESULT] = res.to_dict()
    result = st.session_state.get(RESULT)
    if not result:
        return
    t = result.get("timings") or {}
    bits = [f"{len(result['hits'])} hits", f"mode {result['mode']}"]
    if result.get("fusion") and result["mode"] == "hybrid":
        bits.append(f"fusion {result['fusion']}")
    bits.append(f"reranker {result.get('reranker') or 'none'}")
    bits += [f"{stage} {common.seconds(v)}" for stage, v in t.items()]
    st.caption(common.md_escape(" · ".join(bits)))
    for note in result.get("notes") or []:
        st.caption("note: " + common.md_escape(note))
    if not result["hits"]:
        st.info("No hits: try other words, another mode, or fewer filters.")
    for n, h in enumerate(result["hits"], start=1):
        _hit(n, h)


if __name__ == "__main__":  # run by Streamlit as a page; a worker process that re-imports __main__ skips it
    render()
