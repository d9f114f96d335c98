"""localrag's web UI: `localrag ui` (or `streamlit run ui/app.py`). Pages: Chat, Documents, Search, Evaluate.

One `Rag` per server process (ui/common.py), shared by all browser sessions; everything a user does lives in their
own session. Settings come from the same places as the CLI's (localrag.toml, LOCALRAG_* variables), and the CLI's
global --data-dir / --config arrive as LOCALRAG_UI_DATA_DIR / LOCALRAG_UI_CONFIG.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

HERE = Path(__file__).resolve().parent

PAGES = (
    ("page_chat.py", "Chat", ":material/chat:", "chat"),
    ("page_documents.py", "Documents", ":material/description:", "documents"),
    ("page_search.py", "Search", ":material/search:", "search"),
    ("page_evaluate.py", "Evaluate", ":material/analytics:", "evaluate"),
)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    st.set_page_config(page_title="localrag", page_icon=":material/travel_explore:", layout="wide",
                       menu_items={"Get help": None, "Report a bug": None, "About": "localrag: your documents, "
                                   "searched and answered on this machine."})
    pages = [st.Page(HERE / path, title=title, icon=icon, url_path=url, default=(n == 0))
             for n, (path, title, icon, url) in enumerate(PAGES)]
    st.navigation(pages, position="sidebar").run()


if __name__ == "__main__":  # Streamlit runs this as __main__; a worker process that re-imports __main__ skips it
    main()
