"""What the UI pages share: the one `Rag` of this server process, safe rendering of document and model text, and
errors turned into messages that say what to do.

The UI calls only the public API (`localrag` and `localrag.app.*`); it never reads the database or the indexes.
Nothing per-user lives in a shared cache: the Rag (models, indexes) is shared by every browser session, while chats,
results and uploads are kept in each session's `st.session_state`.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import streamlit as st

from localrag import Rag
from localrag.app.formats import KINDS as KINDS  # document kinds for the pages' filters
from localrag.app.formats import UPLOAD_TYPES

# `localrag ui` passes the global --data-dir / --config through these (the CLI's own flags win over localrag.toml and
# LOCALRAG_* settings the same way as for every other command)
ENV_DATA_DIR = "LOCALRAG_UI_DATA_DIR"
ENV_CONFIG = "LOCALRAG_UI_CONFIG"
UPLOADS = "uploads"  # under the data directory: uploads/<collection>/<sanitised file name>
SUPPORTED_TYPES = UPLOAD_TYPES  # every file ending the ingestion takes (localrag.app.formats)

_provided: dict[str, Rag] = {}


def provide_rag(rag: Rag | None) -> None:
    """Serve this already open Rag instead of opening one from the environment (an embedding application, or a
    test that shares its models); None goes back to opening from LOCALRAG_UI_DATA_DIR / LOCALRAG_UI_CONFIG."""
    if rag is None:
        _provided.pop("rag", None)
    else:
        _provided["rag"] = rag


@st.cache_resource(show_spinner="Opening the data directory…")
def _open_rag(data_dir: str | None, config: str | None) -> Rag:
    return Rag.open(data_dir or None, config_file=Path(config) if config else None)


def get_rag() -> Rag:
    """The process-wide Rag (one per server process, shared across browser sessions; the LLM inside serialises
    its calls). Raises RagError/ConfigError with a readable message."""
    rag = _provided.get("rag")
    if rag is not None:
        return rag
    return _open_rag(os.environ.get(ENV_DATA_DIR) or None, os.environ.get(ENV_CONFIG) or None)


def rag_or_stop() -> Rag:
    """get_rag(), or an error box saying what to do, and the page stops there."""
    try:
        return get_rag()
    except Exception as exc:  # noqa: BLE001 - any failure to open is shown, never a traceback
        show_error(exc, "opening the data directory")
        st.stop()
        raise  # unreachable: st.stop() raises


# --- escaping ----------------------------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'^%@])")


def md_escape(text: str | None) -> str:
    """Text that came from a document or a model, made safe for st.markdown: every Markdown/HTML special character
    is backslash-escaped (CommonMark escapes any ASCII punctuation), so nothing in it becomes a link, an image (no
    remote fetch), HTML, LaTeX, a colour directive or a heading. Line breaks are kept."""
    if not text:
        return ""
    text = unicodedata.normalize("NFC", str(text))
    lines = [_MD_SPECIAL.sub(r"\\\1", line) for line in text.replace("\r\n", "\n").split("\n")]
    return "  \n".join(lines)


def code(text: str | None) -> str:
    """Text as a Markdown code span: shown literally (no links, no formatting), e.g. for URIs and paths."""
    t = " ".join(str(text or "").split())
    fence = "`" * (max((len(m) for m in re.findall(r"`+", t)), default=0) + 1)
    pad = " " if t.startswith("`") or t.endswith("`") else ""
    return f"{fence}{pad}{t}{pad}{fence}" if t else ""


def highlight(pieces: Iterable[tuple[str, bool]]) -> str:
    """Escaped Markdown of a quote's pieces (app.answering.highlight.quote_pieces), the flagged words in bold."""
    return "".join(f"**{md_escape(text)}**" if bold else md_escape(text) for text, bold in pieces)


def safe_filename(name: str, default: str = "upload") -> str:
    """An uploaded file's name reduced to one safe path component: no folders (`../`, `/`, `\\`), no control or
    reserved characters, no leading dots, at most 120 characters; the extension is kept."""
    base = unicodedata.normalize("NFKC", str(name or "")).replace("\\", "/").split("/")[-1]
    base = "".join(ch for ch in base if ch.isprintable() and ch not in '<>:"|?*\x00')
    base = re.sub(r"\s+", " ", base).strip().lstrip(".").strip()
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = re.sub(r"[^\w\-. ()+,@&'!~]", "_", stem, flags=re.UNICODE).strip(" .") or default
    ext = re.sub(r"[^\w]", "", ext)[:12]
    stem = stem[: 120 - len(ext) - 1]
    out = f"{stem}.{ext}" if ext else stem
    return default if out in (".", "..") else out


# --- errors ------------------------------------------------------------------------------------------------------
def advice(exc: BaseException) -> str:
    """What the user can do about an error, from its type and message."""
    msg = str(exc).lower()
    name = type(exc).__name__
    if "a tune of this collection is already running" in msg:
        return ("One tune of a collection runs at a time (from the CLI, the API or this page): wait for the running "
                "one to finish, or stop its process and start again; the questions it wrote are reused.")
    if name in ("LLMUnavailable", "LLMError") or "llm" in msg or "server" in msg or "connect" in msg:
        return ("Check the LLM settings (backend, model, base_url under [llm] in localrag.toml, or LOCALRAG_LLM__* "
                "variables): is the model file there, is the server running? `localrag llm info` tests it.")
    if "locked" in msg or "another ingest" in msg or "is running" in msg:
        return "Another ingest is running on this collection: wait for it to finish, then try again."
    if "no collection" in msg or "ingest something" in msg:
        return "Add documents on the Documents page first (or pick another collection)."
    if "configuration" in msg or name == "ConfigError":
        return "Fix the configuration named above (localrag.toml or the LOCALRAG_* environment variables)."
    if "embedding model" in msg:
        return "Use the collection's embedding model, or another collection."
    return "Check the message above; if it persists, run the same action with the `localrag` CLI and --verbose."


def show_error(exc: BaseException, doing: str) -> None:
    """An error box: what failed, the message, and what to do. Never a traceback."""
    st.error(f"**Error while {md_escape(doing)}:** {md_escape(str(exc) or type(exc).__name__)}\n\n"
             f"{md_escape(advice(exc))}")


# --- formatting --------------------------------------------------------------------------------------------------
def seconds(x: float | None) -> str:
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "–"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s"


def collection_names(rag: Rag) -> list[str]:
    try:
        return [c["name"] for c in rag.status()["collections"]]
    except Exception:  # noqa: BLE001 - an unreadable status shows as no collections; the pages say what to do
        return []


def filters(kinds: list[str] | None, source_glob: str | None, documents: list[str] | None = None) -> dict[str, Any]:
    """Search/answer filters from the UI controls. Chosen documents win over the glob (each is matched exactly)."""
    out: dict[str, Any] = {}
    if kinds:
        out["kinds"] = list(kinds)
    if documents:
        out["sources"] = [glob_escape(d) for d in documents]
    elif source_glob and source_glob.strip():
        out["sources"] = [g.strip() for g in source_glob.split(",") if g.strip()]
    return out


def glob_escape(path: str) -> str:
    """A literal path as an fnmatch pattern ([, ], *, ? in the name match themselves)."""
    return re.sub(r"([\[\]*?])", r"[\1]", path)
