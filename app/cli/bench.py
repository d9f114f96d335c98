"""`localrag bench`: thin commands over the benchmarks in the checkout's `bench/` folder, each its own `main(argv)`.

The benchmarks are not in the wheel: they need data/eval and the corpora, which exist only in a source checkout
(see bench/__init__.py). Each command finds `bench/` beside the `localrag` package directory (the repository root),
imports `bench.<name>` and runs it; installed from a wheel, the folder is absent and the command exits 2 saying so.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated

import typer

import localrag
from localrag.app.cli.common import JsonOpt

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


@bench_app.command("retrieval")
def bench_retrieval(
    corpora: Annotated[str | None, typer.Option(
        help="Labelled corpora side by side, comma-separated (default: every one available; 'none': none).")] = None,
    max_questions: Annotated[int | None, typer.Option(help="Only the first N questions of each split.")] = None,
    work: Annotated[Path | None, typer.Option(help="Keep the ingested corpora here (reused next time).")] = None,
    sizes: Annotated[str, typer.Option(help="Synthetic collection sizes in chunks, comma-separated (0: none).")]
    = "10000",
    queries: Annotated[int, typer.Option(help="Queries per mode and synthetic size.")] = 200,
    peers: Annotated[bool, typer.Option("--peers/--no-peers", help="Compare with txtai and LangChain (bench extra).")]
    = True,
    smoke: Annotated[bool, typer.Option(help="Tiny run (sample corpus, 6 questions per split, 500 chunks).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Ours (hybrid, dense, lexical) beside txtai's hybrid and LangChain's EnsembleRetriever on every labelled corpus
    (R@5, MRR@10, nDCG@10 per dev/test split; p50/p95 latency as ratios against ours), and the stage split of a
    query's latency on synthetic collections."""
    argv = ["--sizes", sizes, "--queries", str(queries)] + ([] if peers else ["--no-peers"])
    argv += (["--corpora", corpora] if corpora else []) + (["--work", str(work)] if work else [])
    argv += (["--max-questions", str(max_questions)] if max_questions else []) + (["--smoke"] if smoke else [])
    raise typer.Exit(run_bench("retrieval", argv + (["--json"] if as_json else [])))


@bench_app.command("quality")
def bench_quality(
    corpus: Annotated[str, typer.Option(help="sample, articles or python-docs.")] = "sample",
    split: Annotated[str, typer.Option(help="dev (tune here) or test (report only).")] = "dev",
    k: Annotated[int, typer.Option("--k", "-k", help="Depth of each ranking.")] = 10,
    reranker: Annotated[
        str | None, typer.Option(help="Also evaluate hybrid reranked by this CrossEncoder id or folder.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recall@5/10, MRR@10 and nDCG@10 of lexical, dense and hybrid search on one split of a labelled corpus
    (ingested into a temporary folder), and the relevance floor that separates answerable questions."""
    argv = ["--k", str(k), "--corpus", corpus, "--split", split]
    argv += (["--reranker", reranker] if reranker else []) + (["--json"] if as_json else [])
    raise typer.Exit(run_bench("retrieval_quality", argv))


@bench_app.command("ingest")
def bench_ingest(
    chunks: Annotated[int, typer.Option(help="Approximate generated corpus size in chunks.")] = 10_000,
    as_json: JsonOpt = False,
) -> None:
    """Ingestion throughput next to raw SentenceTransformer.encode, re-ingest cost, peak memory."""
    raise typer.Exit(run_bench("ingest", ["--chunks", str(chunks)] + (["--json"] if as_json else [])))


@bench_app.command("answer")
def bench_answer(
    questions: Annotated[int, typer.Option(help="Labeled questions to ask.")] = 12,
    threads: Annotated[int, typer.Option(help="llama.cpp threads.")] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Time to first token, tokens/s and per-stage latency of `ask`; cache hit vs miss; prompt lookup decoding."""
    raise typer.Exit(run_bench("answer", ["--questions", str(questions), "--threads", str(threads)]
                               + (["--json"] if as_json else [])))


@bench_app.command("scale")
def bench_scale(
    chunks: Annotated[int, typer.Option(help="Largest size; sizes run are 10k, 100k, 1M ... up to it.")] = 1_000_000,
    sizes: Annotated[str | None, typer.Option(help="Explicit sizes, comma-separated (overrides --chunks).")] = None,
    queries: Annotated[int, typer.Option(help="Queries per size.")] = 200,
    vectors: Annotated[str, typer.Option(help="Synthetic vectors: clustered or uniform.")] = "clustered",
    real: Annotated[int, typer.Option(help="Also IVF recall per nprobe on real MiniLM embeddings of N paragraphs.")]
    = 0,
    pg: Annotated[bool, typer.Option(help="Also measure PostgreSQL bytes per chunk (pgserver).")] = False,
    milvus: Annotated[bool, typer.Option(help="Also Milvus HNSW (milvus-lite): recall@10 vs flat, latency.")] = False,
    smoke: Annotated[bool, typer.Option(help="Tiny sizes (1k, 2k), 10 queries: seconds.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Large collections on one machine, on synthetic data (stated in the output): add-one-file time (BM25 and
    vectors, with the old full BM25 rebuild beside it), p50/p95 search latency (dense flat/IVF, BM25, hybrid),
    IVF recall@10 against flat, bytes per chunk in each store and index, RSS."""
    argv = ["--chunks", str(chunks), "--queries", str(queries), "--vectors", vectors, "--real", str(real)]
    argv += (["--sizes", sizes] if sizes else []) + (["--pg"] if pg else []) + (["--smoke"] if smoke else [])
    argv += ["--milvus"] if milvus else []
    raise typer.Exit(run_bench("scale", argv + (["--json"] if as_json else [])))


@bench_app.command("cache")
def bench_cache(
    thresholds: Annotated[str | None, typer.Option(
        help="Cosine thresholds to compare, comma-separated (default: the bench's own list).")] = None,
    verbose: Annotated[bool, typer.Option(help="Also list every pair with its cosine and verdict.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """The semantic answer cache on the labelled question pairs (data/eval/cache_pairs.jsonl): false hits and the
    paraphrase hit rate per cosine threshold."""
    argv = (["--thresholds", *thresholds.split(",")] if thresholds else []) + (["--verbose"] if verbose else [])
    raise typer.Exit(run_bench("cache", argv + (["--json"] if as_json else [])))
