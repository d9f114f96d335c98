"""`localrag eval`: score answers on a QA set (app/evaluate) and write the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from localrag.app.cli.common import CollectionOpt, JsonOpt, err, fail, open_rag, out

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add `eval` to `app`."""
    app.command("eval")(eval_qa)


def eval_qa(
    qa_file: Annotated[Path, typer.Argument(help="QA set, JSON lines: question, reference, relevant, answerable, id.")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.json, report.md and the PNG charts.")]
    = Path("eval-out"),
    judge: Annotated[str, typer.Option(
        help="proxy (the default: fast, no LLM) or llm: adds the LLM judge next to it, with its own model "
        "(--judge-model). The LLM judge agrees better with hand-labelled verdicts (Cohen's κ 0.61 with "
        "qwen2.5-coder-1.5b against the proxy's 0.43) but takes ~5 s per statement on 2 cores, about an hour for "
        "50 answers: hence not the default.")] = "proxy",
    judge_model: Annotated[str | None, typer.Option(
        "--judge-model", metavar="NAME",
        help="The LLM judge's model (--judge llm, --panel ...,llm): a name (`localrag models list`), a .gguf file or "
        "hf:owner/repo/file.gguf, loaded apart from the answering model (llm.model); none: the answering model "
        "judges. Default: eval.judge_model, qwen2.5-coder-1.5b (not pulled by make install: `localrag models pull "
        "qwen2.5-coder-1.5b`).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.", min=1)] = None,
    k: Annotated[int | None, typer.Option("--k", "-k", help="Sources per answer (default answer_k, 4).", min=1)] = None,
    robustness: Annotated[int, typer.Option(help="Also ask each question N more times with non-semantic "
                                            "perturbations and report how far the answers drift (0 = off).",
                                            min=0)] = 0,
    panel: Annotated[str | None, typer.Option(help="Also pool a panel of judges, comma-separated (proxy,llm), "
                                              "and report their agreement.")] = None,
    aggregate: Annotated[str, typer.Option(help="How --panel pools its judges: mean, max or majority.")] = "mean",
    engine: Annotated[str | None, typer.Option(help="ragas: add the official ragas library's scores next to ours "
                                               "(needs the optional ragas extra and llm.backend=openai).")]
    = None,
) -> None:
    """Evaluate answers on a QA set: retrieval metrics, abstention accuracy, RAGAS-style scores, latency.

    QA_FILE is JSON lines: {"question", "reference", "relevant", ...}; ragas-style keys work too (user_input,
    ground_truth/reference), and an item with response + retrieved_contexts is scored as given, not asked again.

    The judge is the proxy unless --judge llm: the LLM judge (eval.judge_model, default qwen2.5-coder-1.5b, not the
    answering model) agrees better with hand-labelled verdicts (Cohen's κ 0.61 against 0.43) but costs ~5 s per
    statement on 2 cores, about an hour for an eval of 50 answers.

    Writes report.json, report.md, scores.png and latency.png into --out. Exit code 0 when every question ran,
    1 when some failed (each is reported; the others still run) or the judge's model is not pulled (the message says
    what to run), 2 for a bad QA file or usage errors."""
    from localrag.app.evaluate import EvalInputError, load_items, write_report

    panel_judges = _check_options(judge, panel, aggregate, engine)
    if judge_model is not None and judge != "llm" and "llm" not in (panel_judges or []):
        err.print("[red]error:[/] --judge-model is the LLM judge's model: use it with --judge llm (or --panel "
                  "with llm)")
        raise typer.Exit(2)
    try:
        items = load_items(qa_file, limit=limit)
    except EvalInputError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    overrides = {"eval_judge_model": judge_model} if judge_model is not None else {}
    result = _run(items, overrides, collection=collection, judge=judge, k=k, robustness=robustness,
                  panel=panel_judges, aggregate=aggregate, engine=engine)
    result["qa_file"], result["limit"] = str(qa_file), limit
    paths = write_report(result, out_dir)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    else:
        _print_summary(result, f"eval of {qa_file.name} on collection {collection!r}", paths)
    raise typer.Exit(result["exit_code"])


def _check_options(judge: str, panel: str | None, aggregate: str, engine: str | None) -> list[str] | None:
    """Exit 2 on a bad --judge, --panel, --aggregate or --engine (or --engine ragas without its extra); return the
    panel's judges."""
    if judge not in ("proxy", "llm"):
        err.print(f"[red]error:[/] --judge must be proxy or llm, got {escape(judge)!r}")
        raise typer.Exit(2)
    panel_judges = [p.strip() for p in panel.split(",") if p.strip()] if panel else None
    if panel is not None and (not panel_judges or any(p not in ("proxy", "llm") for p in panel_judges)):
        err.print(f"[red]error:[/] --panel takes proxy and/or llm, comma-separated, got {escape(panel)!r}")
        raise typer.Exit(2)
    if aggregate not in ("mean", "max", "majority"):
        err.print(f"[red]error:[/] --aggregate must be mean, max or majority, got {escape(aggregate)!r}")
        raise typer.Exit(2)
    if engine is not None:
        from localrag.eval.ragas_engine import INSTALL_HINT, ragas_available

        if engine != "ragas":
            err.print(f"[red]error:[/] --engine must be ragas, got {escape(engine)!r}")
            raise typer.Exit(2)
        if not ragas_available():
            err.print(f"[red]error:[/] --engine ragas needs the optional extra: {escape(INSTALL_HINT)}",
                      soft_wrap=True)
            raise typer.Exit(2)
    return panel_judges


def _run(items: list[dict[str, Any]], overrides: dict[str, Any], **options: Any) -> dict[str, Any]:
    """Run the eval over `items` on the Rag of the settings plus `overrides`, with a progress bar (on a terminal);
    map its failures to exit codes (2: bad input, no ragas, no such collection, a judge model setting that points at
    no GGUF file; 1: the LLM judge's model is not pulled or could not be loaded)."""
    from localrag.app.evaluate import EvalInputError, run_eval
    from localrag.app.llm import LLMConfigError
    from localrag.eval.ragas_engine import RagasUnavailableError

    rag = open_rag(**overrides)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"), console=err, disable=not sys.stderr.isatty(), transient=True,
    )
    try:
        with progress:
            task = progress.add_task("evaluating", total=len(items), current="")

            def on_progress(done: int, total: int, current: str) -> None:
                progress.update(task, completed=done, total=total, current=current)

            return run_eval(rag, items, progress=on_progress, **options)
    except EvalInputError as exc:
        fail(exc, 2)
    except RagasUnavailableError as exc:  # no extra, or no OpenAI-compatible LLM server for ragas
        fail(exc, 2)
    except ValueError as exc:  # no such collection
        fail(exc, 2)
    except LLMConfigError as exc:  # e.g. eval.judge_model names no .gguf file
        fail(exc, 2)
    except RuntimeError as exc:  # the LLM judge's model is not pulled or could not be loaded
        fail(exc, 1)
    finally:
        rag.close()


def _print_summary(result: dict[str, Any], title: str, paths: list[Path]) -> None:
    """The summary table on stdout; notes and failed questions on stderr; where the report went."""
    from localrag.app.evaluate import summary_rows

    table = Table(title=title, title_justify="left")
    for col in ("section", "measure", "value"):
        table.add_column(col, overflow="fold")
    for row in summary_rows(result):
        table.add_row(*(escape(c) for c in row))
    out.print(table)
    for note in result["notes"][1:]:
        err.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    for e in result["errors"]:
        err.print(f"[red]failed[/] {escape(e['id'])}: {escape(e['error'])}", soft_wrap=True)
    out.print("report: " + ", ".join(str(p) for p in paths))
