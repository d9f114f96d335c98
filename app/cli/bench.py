"""`localrag bench`: thin commands over the benchmarks in the checkout's `bench/` folder, each its own `main(argv)`.

The benchmarks are not in the wheel: they need data/eval and the corpora, which exist only in a source checkout
(see bench/__init__.py). Each command finds `bench/` beside the `localrag` package directory (the repository root),
imports `bench.<name>` and runs it; installed from a wheel, the folder is absent and the command exits 2 saying so.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path

import typer

import localrag

__all__ = ["bench_app", "bench_dir", "register", "run_bench"]


def register(app: typer.Typer) -> None:
    """Add the `bench` group to `app`."""
    app.add_typer(bench_app, name="bench")


bench_app = typer.Typer(
    help="Benchmarks: speed and quality measured against reference implementations (see docs/BENCHMARKS.md); "
    "they run from a source checkout.",
    no_args_is_help=True,
)


def bench_dir() -> Path:
    """The checkout's `bench/` folder: beside the package's files, since the repository root is the package."""
    return Path(localrag.__file__).resolve().parent / "bench"


def _missing(name: str) -> typer.Exit:
    typer.echo(f"localrag bench: the benchmarks run from a source checkout (they need data/eval and the corpora): "
               f"clone the repository and run `make bench` or `python -m bench.{name}`", err=True)
    return typer.Exit(2)


def run_bench(name: str, argv: list[str]) -> int:
    """Import `bench.<name>` from the checkout and return its `main(argv)`; exit 2 when there is no checkout."""
    folder = bench_dir()
    if not (folder / "__init__.py").is_file() or not (folder / f"{name}.py").is_file():
        raise _missing(name)
    root = str(folder.parent)
    loaded = sys.modules.get("bench")
    if loaded is None and root not in sys.path:  # `python -m` from the root has it already; the console script not
        sys.path.insert(0, root)
    module = importlib.import_module(f"bench.{name}")
    if Path(module.__file__ or "").resolve().parent != folder:  # some other `bench` shadows the checkout's
        raise _missing(name)
    return module.main(argv)


# command -> (module in bench/, what it measures); each module's own argparse reads the arguments (`--help` too)
BENCHMARKS: dict[str, tuple[str, str]] = {
    "retrieval": ("retrieval", "Ours (hybrid, dense, lexical) beside txtai's hybrid and LangChain's EnsembleRetriever "
                  "on every labelled corpus (quality per dev/test split, latency ratios), and a query's stage split."),
    "quality": ("retrieval_quality", "Recall@5/10, MRR@10, nDCG@10 of lexical, dense and hybrid search on one split "
                "of a labelled corpus, and the relevance floor that separates answerable questions."),
    "ingest": ("ingest", "Ingestion throughput next to raw SentenceTransformer.encode, re-ingest cost, peak memory."),
    "answer": ("answer", "Time to first token, tokens/s and per-stage latency of `ask`; cache hit vs miss; prompt "
               "lookup decoding."),
    "answers": ("answer_grid", "Model x answer mode x compressed context on the dev or test halves of the QA sets: "
                "grounded, key facts, abstention, first words and answer time."),
    "scale": ("scale", "Large synthetic collections: add-one-file time, p50/p95 search latency, IVF recall, bytes "
              "per chunk, RSS."),
    "load": ("load", "Many users on one collection at once: searcher threads and processes, askers and an ingest "
             "process for a fixed time; searches/s, p50/p95 per operation, errors, and p95 under load over idle p50."),
    "cache": ("cache", "The semantic answer cache on the labelled question pairs: false hits and paraphrase hits per "
              "cosine threshold."),
}


def _command(module: str) -> Callable[[typer.Context], None]:
    def run(ctx: typer.Context) -> None:
        raise typer.Exit(run_bench(module, list(ctx.args)))

    return run


for _name, (_module, _help) in BENCHMARKS.items():
    bench_app.command(
        _name, help=f"{_help} Arguments go to `python -m bench.{_module}` (see its --help).",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    )(_command(_module))
