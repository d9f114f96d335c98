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

# (no page icons: Streamlit turns a page's icon into the tab's favicon and fetches Material-symbol and emoji
# favicons from the internet; without one it serves its own, locally)
PAGES = (
    ("page_chat.py", "Chat", "chat"),
    ("page_documents.py", "Documents", "documents"),
    ("page_search.py", "Search", "search"),
    ("page_evaluate.py", "Evaluate", "evaluate"),
)


def main() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    st.set_page_config(page_title="localrag", layout="wide",
                       menu_items={"Get help": None, "Report a bug": None, "About": "localrag: your documents, "
                                   "searched and answered on this machine."})
    pages = [st.Page(HERE / path, title=title, url_path=url, default=(n == 0))
             for n, (path, title, url) in enumerate(PAGES)]
    st.navigation(pages, position="sidebar").run()


if __name__ == "__main__":  # Streamlit runs this as __main__; a worker process that re-imports __main__ skips it
    main()
