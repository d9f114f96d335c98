"""`localrag ui` (the Streamlit app in ui/app.py) and `localrag export sft` (rated answers as fine-tuning data).

`register(app)` adds both to the Typer app of app/cli.py.
"""

from __future__ import annotations

import ipaddress
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from localrag.app.cli.common import err, fail, open_rag, out, settings, state

__all__ = ["register", "streamlit_command"]

# read by ui/common.py: the global --data-dir / --config of this command line
ENV_DATA_DIR = "LOCALRAG_UI_DATA_DIR"
ENV_CONFIG = "LOCALRAG_UI_CONFIG"


def app_script() -> Path:
    """ui/app.py of this installation (found by path: the app layer never imports the UI above it)."""
    return Path(__file__).resolve().parents[2] / "ui" / "app.py"


def streamlit_command(host: str, port: int, max_upload_mb: int) -> list[str]:
    """The `streamlit run` command line: headless, on HOST:PORT, no usage statistics, no file watcher."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app_script()),
        "--server.headless", "true",
        "--server.address", host,
        "--server.port", str(port),
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--server.maxUploadSize", str(max_upload_mb),
        "--global.developmentMode", "false",
        "--client.toolbarMode", "minimal",
    ]


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ui(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default: only this machine).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8501,
) -> None:
    """Start the web UI (chat, documents, search, evaluate) and print its URL; Ctrl+C stops it."""
    s = settings(**({"data_dir": state["data_dir"]} if state.get("data_dir") else {}))
    env = dict(os.environ)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"
    for var, value in ((ENV_DATA_DIR, state.get("data_dir")), (ENV_CONFIG, state.get("config"))):
        if value:
            env[var] = str(Path(value).expanduser().resolve())
        else:
            env.pop(var, None)
    if shutil.which("streamlit") is None and not _has_streamlit():
        fail("streamlit is not installed in this environment: pip install 'streamlit==1.67.0'", 2)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}"
    out.print(f"localrag UI: {url}  (data directory {s.data_dir.expanduser().resolve()}; Ctrl+C stops it)",
              soft_wrap=True, highlight=False)
    if not _is_loopback(host):
        err.print(f"[yellow]warning:[/] listening on {host}: the UI has no login, so anyone who can reach "
                  f"{url} can read and change your documents.", soft_wrap=True)
    cmd = streamlit_command(host, port, max(1, math.ceil(s.ingest.max_file_mb)))
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execve(sys.executable, cmd, env)  # the server replaces this process: signals reach it directly
    try:
        raise typer.Exit(subprocess.call(cmd, env=env))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _has_streamlit() -> bool:
    import importlib.util

    return importlib.util.find_spec("streamlit") is not None


export_app = typer.Typer(help="Export stored data: rated answers as fine-tuning data.", no_args_is_help=True)

SNIPPET = """\
from datasets import load_dataset
from trl import SFTConfig, SFTTrainer
data = load_dataset("json", data_files="{path}", split="train")
trainer = SFTTrainer(model="HuggingFaceTB/SmolLM2-135M-Instruct", train_dataset=data, args=SFTConfig(output_dir="sft"))
trainer.train()"""


@export_app.command("sft")
def export_sft(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="The JSONL file to write.")],
    rating: Annotated[str, typer.Option(help="up: only answers rated 👍; any: every rated answer (each line says "
                                        "its rating).")] = "up",
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Only this collection.")] = None,
) -> None:
    """Write rated answers (👍/👎 in the UI, or Rag.feedback) as chat-format JSONL for TRL's SFTTrainer or
    Unsloth: one {"messages": ...} per line, with the system prompt, the user message (the numbered sources and the
    question, as the model saw them) and the rated answer."""
    if rating not in ("up", "any"):
        fail(f"--rating must be up or any, got {rating!r}", 2)
    rag = open_rag()
    try:
        n = rag.export_sft(out_file, rating=rating, collection=collection)
    except OSError as exc:
        fail(f"cannot write {out_file}: {exc}")
    finally:
        rag.close()
    which = "rated 👍" if rating == "up" else "rated"
    out.print(f"wrote {n} {which} answer(s) to {out_file}", highlight=False)
    if n == 0:
        err.print("[yellow]note:[/] no rated answers yet: rate answers with 👍/👎 in the UI (localrag ui) first.")
    else:
        out.print("Load it for fine-tuning with:\n" + SNIPPET.format(path=out_file), highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add `ui` and `export sft` to the localrag command line."""
    app.command("ui")(ui)
    app.add_typer(export_app, name="export")
