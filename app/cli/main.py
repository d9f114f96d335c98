"""`localrag` command line: ingest, sync, remove, status, search, ask, chat, cache, llm, eval, demo, bench.

This module builds the Typer app and holds the entry point; the commands live beside it in app/cli/, one module per
group, each adding its commands with `register(app)`.

Exit codes: 0 success, 1 some files failed (or a runtime problem), 2 usage or configuration errors, 3 `ask`
abstained ("I don't know").
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP worker threads (torch, llama.cpp) sleep rather than spin while waiting: spinning threads make both many
# times slower as soon as another busy process shares the cores (measured: eval/scoring.py notes, BENCHMARKS.md)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from localrag.app.cli import asking, bench, evaluation, library, llm, models  # noqa: E402 - after the environment
from localrag.app.cli import tune as cli_tune  # noqa: E402 - after the environment
from localrag.app.cli import ui as cli_ui  # noqa: E402 - after the environment
from localrag.app.cli.common import err, state  # noqa: E402

__all__ = ["app", "main"]

app = typer.Typer(
    help="localrag: ingest your documents and knowledge graphs, then search and ask them — offline, on this machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", "-d", help="Data directory (default .localrag, or LOCALRAG_DATA_DIR).")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="A localrag.toml file to read settings from.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log details to stderr.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("sentence_transformers", "transformers", "httpx", "huggingface_hub", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.ERROR if not verbose else logging.INFO)
    state["data_dir"] = data_dir
    state["config"] = config


# the order of registration is the order of --help
library.register(app)  # ingest, sync, remove, status, search, demo
bench.register(app)  # bench ...
asking.register(app)  # ask, chat, cache ...
llm.register(app)  # llm serve, llm info
models.register(app)  # models list, pull, verify, remove
evaluation.register(app)  # eval
cli_ui.register(app)  # ui, export sft (app/cli/ui.py)
cli_tune.register(app)  # tune (app/cli/tune.py)


def main() -> None:
    """Console-script entry point: usage errors exit 2 (click's convention), everything else as documented."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
