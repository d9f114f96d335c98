"""`localrag tune`: adapt a collection's embedder to its own documents, offline (issue 23; app/tune/)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from localrag.app.cli.common import CollectionOpt, JsonOpt, err, fail, open_rag, out

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    app.command()(tune)


def tune(
    collection: CollectionOpt = "default",
    max_chunks: Annotated[int | None, typer.Option("--max-chunks", min=1,
                                                   help="Write questions for N chunks, sampled by document "
                                                        "(default: every chunk).")] = None,
    undo: Annotated[bool, typer.Option("--undo", help="Go back to the base embedding model.")] = False,
    epochs: Annotated[int, typer.Option(min=0, help="Training epochs.")] = 3,
    as_json: JsonOpt = False,
) -> None:
    """Fine-tune the embedder on questions the LLM writes for the collection's chunks; switch to it only when
    held-out recall@5 improves.

    Questions are stored as they are made: a killed run resumes, and a re-run asks only for chunks without one.
    The base model's vectors stay until --undo or the next tune. One tune (or undo) of a collection runs at a
    time: a second one, from any process or the UI, is refused with the running one's pid and start time."""
    from localrag.app.rag import RagError
    from localrag.app.tune import TrainSettings, TuneOptions

    rag = open_rag()
    show = not as_json and sys.stderr.isatty()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("ETA"), TimeRemainingColumn(), console=err, disable=not show, transient=True,
    )
    tasks: dict[str, Any] = {}

    def on_progress(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    try:
        with progress:
            report = rag.tune(collection, max_chunks=max_chunks, undo=undo, progress=on_progress,
                              options=TuneOptions(train=TrainSettings(epochs=epochs)))
    except RagError as exc:
        fail(exc)
    finally:
        rag.close()
    if as_json:
        out.print_json(json.dumps(report, ensure_ascii=False))
    elif undo:
        out.print(f"collection {collection!r} uses its base model again ({report['chunks']} chunks, "
                  f"{report['re_embedded']} re-embedded)")
    else:
        _print(report)


def _print(r: dict[str, Any]) -> None:
    t = Table(title=f"tune {r['collection']!r} ({r['base_model']})")
    t.add_column("held-out")
    t.add_column("base", justify="right")
    t.add_column("tuned", justify="right")
    for m in ("recall@5", "mrr@10"):
        t.add_row(m, f"{r['before'][m]:.3f}", f"{r['after'][m]:.3f}")
    out.print(t)
    q = r["questions"]
    out.print(f"chunks {r['chunks']}, sampled {r['sampled']}; questions written {q['asked']} (junk {q['junk']}), "
              f"reused {q['reused']}; kept {r['kept']}, dropped {r['dropped']}; trained on {r['trained_on']}, "
              f"held out {r['held_out']}")
    out.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in r["seconds"].items()))
    out.print(("[green]" if r["switched"] else "[yellow]") + r["decision"] + "[/]")
    for note in r.get("notes", []):
        out.print(f"note: {note}", markup=False)
