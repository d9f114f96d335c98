"""`localrag llm`: serve the model over HTTP (llama.cpp's OpenAI-compatible server, app/llm/server.py) and show
which LLM is configured and whether it loads and answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from localrag.app.cli.common import JsonOpt, err, fail, out, settings

__all__ = ["llm_app", "register"]


llm_app = typer.Typer(
    help="The language model that writes answers: in process (llama-cpp: llm.model is a model name from "
    "`localrag models list`, a .gguf file or hf:owner/repo/file.gguf; default: qwen2.5-coder-0.5b) or "
    "any OpenAI-compatible server (llm.backend=openai + llm.base_url). `llm serve` runs such a server.",
    short_help="The LLM that writes answers: which model answers and does it load (info), serve it over HTTP.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `llm` group to `app`."""
    app.add_typer(llm_app, name="llm")


@llm_app.command("serve")
def llm_serve(
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model to serve: a name (`localrag models list`), a .gguf "
                                 "file or hf:owner/repo/file.gguf (default: llm.model, else qwen2.5-coder-0.5b).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    n_ctx: Annotated[int | None, typer.Option("--n-ctx", help="Context window in tokens (default: llm.n_ctx).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: llm.threads, else every core).")] = None,
    gpu_layers: Annotated[
        int | None, typer.Option("--gpu-layers", help="Layers offloaded to a GPU, -1 = all (default: llm.gpu_layers).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Require this key (clients set it in LOCALRAG_LLM_API_KEY).")
    ] = None,
) -> None:
    """Run llama.cpp's OpenAI-compatible server in the foreground (Ctrl-C stops it).

    Point localrag (or any OpenAI client) at it with LOCALRAG_LLM__BACKEND=openai and the printed
    LOCALRAG_LLM__BASE_URL. Needs llama-cpp-python's server extra (fastapi, uvicorn, sse-starlette)."""
    from localrag.app.llm import LLAMA_CPP_PIP, LLMConfigError, LLMError, resolve_gguf
    from localrag.app.llm.factory import usable_cores
    from localrag.app.llm.models import DEFAULT_MODEL
    from localrag.app.llm.server import LlamaServer, missing_server_modules

    s = settings()
    missing = missing_server_modules()
    if missing:
        fail(f"the server needs {', '.join(missing)}: run `{LLAMA_CPP_PIP}`")
    try:
        configured = s.llm.model if s.llm.backend == "llama-cpp" else None
        gguf = resolve_gguf(model if model is not None else configured or DEFAULT_MODEL)
    except LLMError as exc:
        fail(exc, 2 if isinstance(exc, LLMConfigError) else 1)
    threads = threads if threads is not None else s.llm.threads or usable_cores()
    gpu_layers = gpu_layers if gpu_layers is not None else s.llm.gpu_layers
    server = LlamaServer(gguf, host=host, port=port, n_ctx=n_ctx or s.llm.n_ctx, n_threads=threads,
                         n_gpu_layers=gpu_layers, prompt_lookup=s.llm.prompt_lookup, api_key=api_key)
    try:
        server.check_port()
    except LLMError as exc:
        fail(exc)
    err.print(f"serving [bold]{gguf.name}[/] (model name {server.model_name!r}) at [bold]{server.url}[/] — Ctrl-C "
              "stops it", soft_wrap=True)
    err.print(f"use it:  LOCALRAG_LLM__BACKEND=openai LOCALRAG_LLM__BASE_URL={server.url} localrag ...", soft_wrap=True)
    ended = server.run()
    if ended.interrupted:
        err.print("server stopped")
        raise typer.Exit(0)
    if not ended.ok:
        err.print(f"[red]error:[/] the server exited with status {ended.returncode} (see its messages above)")
        raise typer.Exit(1)


def _named_model(model_path: str | None) -> dict[str, Any]:
    """Which named model answers (when the loaded file is one of `localrag models list`): name, size and whether its
    sha256 matches the registry's (recomputed: about a second per GB)."""
    from localrag.app.llm.models import get_model, identify, verify

    name = identify(model_path) if model_path else None
    if name is None or model_path is None:
        return {"model_name": None, "model_sha256": None}
    check = verify(name, Path(model_path))
    status = {"ok": "ok (matches the registry)", "missing": "file missing",
              "mismatch": f"MISMATCH: damaged or changed — `localrag models remove {name}` and pull it again"}
    return {"model_name": f"{name} ({get_model(name).description})", "model_size_bytes": check.size,
            "model_sha256": status[check.status]}


def _judge_line(judge: dict[str, Any]) -> str:
    """Which model judges with `localrag eval --judge llm`, in words (rich markup escaped)."""
    from rich.markup import escape

    name = judge["judge_model"]
    if name is None:
        return "the answering model (eval.judge_model = none)"
    if judge["judge_error"]:
        return f"[yellow]{escape(judge['judge_error'])}[/]"
    where = ("the answering model's own instance" if judge["judge_shares_answering_model"]
             else "loaded apart from the answering model")
    return f"{escape(name)} ({escape(str(judge['judge_path']))}; {where}; eval.judge_model)"


@llm_app.command("info")
def llm_info(as_json: JsonOpt = False) -> None:
    """Show the configured LLM (backend, model file or server, model id, limits) and check that it loads or
    answers; and which model judges with `localrag eval --judge llm` (eval.judge_model: found or not, not loaded).
    Exit code 1 when the answering LLM does not load or answer, 2 for configuration errors."""
    from rich.markup import escape

    from localrag.app.llm import LLMConfigError, LLMError, make_llm
    from localrag.app.llm.factory import judge_info

    s = settings()
    info: dict[str, Any] = {"backend": s.llm.backend, "model": s.llm.model, "base_url": s.llm.base_url}
    info["settings"] = {
        f"llm.{k}": getattr(s.llm, k) for k in ("n_ctx", "threads", "gpu_layers", "temperature", "top_p",
                                                "max_tokens", "stop", "prompt_lookup", "timeout_s")
    }
    llm, code = None, 0
    try:
        llm = make_llm(s)
        info |= llm.info()
        info |= _named_model(llm.info().get("model_path"))
        info["tokens_in_hello_world"] = llm.count_tokens("Hello, world!")
        info["ok"], info["error"] = True, None
    except LLMError as exc:
        info["ok"], info["error"] = False, str(exc)
        code = 2 if isinstance(exc, LLMConfigError) else 1
    finally:
        if llm is not None:
            llm.close()
    info["judge"] = judge_info(s)
    if as_json:
        out.print_json(json.dumps(info, ensure_ascii=False, default=str))
    else:
        table = Table(show_header=False, title="LLM", title_justify="left")
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for k, v in info.items():
            if k not in ("settings", "ok", "error", "judge") and v is not None:
                table.add_row(k, escape(", ".join(map(str, v)) if isinstance(v, list) else str(v)))
        table.add_row("settings", " · ".join(f"{k.removeprefix('llm_')}={v}" for k, v in info["settings"].items()))
        table.add_row("status", "[green]loads and answers[/]" if info["ok"] else f"[red]{escape(info['error'])}[/]")
        table.add_row("judge (eval --judge llm)", _judge_line(info["judge"]))
        out.print(table)
    raise typer.Exit(code)
