"""`localrag` command line: ingest, sync, remove, status, search, ask, chat, cache, llm, demo, bench.

Exit codes: 0 success, 1 some files failed (or a runtime problem), 2 usage or configuration errors, 3 `ask`
abstained ("I don't know").
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# OpenMP worker threads (torch, llama.cpp) sleep rather than spin while waiting: spinning threads make both many
# times slower as soon as another busy process shares the cores (measured: eval/scoring.py notes, BENCHMARKS.md)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = typer.Typer(
    help="localrag: ingest your documents and knowledge graphs, then search and ask them — offline, on this machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
_state: dict[str, Any] = {}

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection to work in.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


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
    _state["data_dir"] = data_dir
    _state["config"] = config


def _rag(**overrides: Any):  # noqa: ANN202 - app.rag.Rag, imported lazily so --help stays fast
    from localrag.app.config import ConfigError
    from localrag.app.rag import Rag

    try:
        return Rag.open(_state.get("data_dir"), config_file=_state.get("config"), **overrides)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def _fail(exc: Exception, code: int = 1) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/] {escape(str(exc))}")  # messages may name pip extras like .[ragas]
    raise typer.Exit(code)


_STYLE = {
    "ingested": "green", "updated": "green", "unchanged": "dim", "duplicate": "cyan", "removed": "yellow",
    "skipped": "yellow", "error": "red",
}


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    table = Table(title=f"collection {report.collection!r}", show_lines=False)
    table.add_column("file", overflow="fold")
    table.add_column("outcome")
    table.add_column("chunks", justify="right")
    table.add_column("details", overflow="fold")
    cwd = Path.cwd()
    for o in report.outcomes:
        try:
            name = str(Path(o.source).relative_to(cwd))
        except ValueError:
            name = o.source
        detail = "; ".join(([o.reason] if o.reason else []) + [f"warning: {w}" for w in o.warnings])
        style = _STYLE.get(o.status.value, "")
        table.add_row(name, f"[{style}]{o.status.value}[/]", str(o.chunks or ""), detail)
    out.print(table)
    c = report.counts
    summary = ", ".join(f"{v} {k}" for k, v in c.items() if v)
    rate = f", {report.chunks_embedded / report.seconds:.1f} chunks/s" if report.chunks_embedded else ""
    out.print(f"{summary or 'nothing to do'} in {report.seconds:.1f} s{rate}")
    for note in report.notes:
        out.print(f"[yellow]note:[/] {note}")
    if report.failed:
        err.print(f"[red]{len(report.failed)} file(s) could not be ingested[/] — see the details above; "
                  "the other files went in.")


def _run_ingest(paths: list[Path], collection: str, as_json: bool, sync: bool, overrides: dict[str, Any]) -> None:
    from localrag.app.rag import RagError
    from localrag.ingest.job import IngestLocked

    rag = _rag(**overrides)
    show = not as_json and sys.stderr.isatty()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("files"),
        TextColumn("{task.fields[chunks]} chunks · {task.fields[rate]:.1f}/s"), TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"), console=err, disable=not show, transient=True,
    )
    with progress:
        task = progress.add_task("ingesting", total=None, chunks=0, rate=0.0, current="")

        def on_progress(p: Any) -> None:
            progress.update(task, total=p.files_total, completed=p.files_done, chunks=p.chunks_done,
                            rate=p.chunks_per_s, current=p.current[:40])

        try:
            report = rag.ingest(paths, collection=collection, progress=on_progress, sync=sync)
        except (RagError, IngestLocked) as exc:
            _fail(exc)
    _print_report(report, as_json)
    raise typer.Exit(report.exit_code)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (folders are walked recursively).")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
    timeout: Annotated[float | None, typer.Option(help="Per-file load time limit in seconds.")] = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="Chunk size in tokens (new collections).")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Chunk overlap in tokens (new collections).")] = None,
) -> None:
    """Ingest PDF, text/markdown and RDF files (.pdf .txt .md .ttl .rdf .owl .nt .jsonld .n3).

    Unchanged files are skipped; changed files replace their old chunks. Exit code 1 if any file failed.
    """
    _run_ingest(paths, collection, as_json, sync=False,
                overrides={"file_timeout_s": timeout, "chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap})


@app.command()
def sync(
    folders: Annotated[list[Path], typer.Argument(help="Folders to mirror into the collection.")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Like ingest, and also remove documents whose files under FOLDERS are gone."""
    for f in folders:
        if not f.is_dir():
            err.print(f"[red]error:[/] {f} is not a folder (sync mirrors folders; use `localrag ingest` for files)")
            raise typer.Exit(2)
    _run_ingest(folders, collection, as_json, sync=True, overrides={})


@app.command()
def remove(
    sources: Annotated[list[str], typer.Argument(help="Sources (file paths as ingested) to remove.")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Remove documents (their chunks, vectors and BM25 entries) by source."""
    from localrag.app.rag import RagError
    from localrag.ingest.job import IngestLocked

    rag = _rag()
    try:
        report = rag.remove(sources, collection=collection)
    except (RagError, IngestLocked) as exc:
        _fail(exc)
    _print_report(report, as_json)
    raise typer.Exit(report.exit_code)


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Collections, counts, embedding model and index health."""
    from localrag.app.rag import RagError

    rag = _rag()
    try:
        st = rag.status()
    except RagError as exc:
        _fail(exc)
    if as_json:
        out.print_json(json.dumps(st, ensure_ascii=False))
        return
    out.print(f"data directory: {st['data_dir']}")
    if not st["collections"]:
        out.print("no collections yet — run `localrag ingest PATH`")
        return
    table = Table()
    for col in ("collection", "documents", "chunks", "KG nodes/edges", "model", "version", "index"):
        table.add_column(col)
    for c in st["collections"]:
        ix = c["index"]
        health = "[green]in step[/]" if ix["in_step"] else "[red]out of step[/]"
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(c["kinds"].items()))
        dups = f" (+{c['duplicates']} duplicates)" if c["duplicates"] else ""
        table.add_row(
            c["name"], f"{c['documents']}{dups}\n{kinds}", str(c["chunks"]), f"{c['kg_nodes']}/{c['kg_edges']}",
            f"{c['embedding_model']}\n{c['embedding_dim']}-d, {c['chunk_tokens']} tok/chunk",
            str(c["corpus_version"]),
            f"{health}\n{ix['vectors']} vectors, {ix['bm25_docs']} BM25 ({ix['lexical_backend']})"
            + (", GPU" if ix["gpu"] else ""),
        )
    out.print(table)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="Question or keywords.")],
    k: Annotated[int, typer.Option("--k", "-k", help="Number of results.")] = 5,
    mode: Annotated[
        str | None, typer.Option(help="hybrid (dense + BM25, fused), dense or lexical. Default: search_mode.")
    ] = None,
    fusion: Annotated[
        str | None, typer.Option(help="rrf (reciprocal rank) or convex (weighted normalized scores).")
    ] = None,
    collection: CollectionOpt = "default",
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Only these document kinds: pdf, text, markdown, rdf.")
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option("--source", help="Only sources matching this glob (file name or path).")
    ] = None,
    rerank: Annotated[
        bool | None, typer.Option("--rerank/--no-rerank", help="Rerank with the configured cross-encoder.")
    ] = None,
    expand: Annotated[
        bool, typer.Option("--expand", help="Add linked knowledge-graph nodes to RDF hits.")
    ] = False,
    min_relevance: Annotated[
        float | None, typer.Option(help="Drop hits whose relevance (0-1) is lower.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search a collection: dense (FAISS) and BM25 candidates, fused, optionally reranked.

    Each hit shows its relevance (0-1, comparable across queries) and its rank in every stage."""
    from localrag.app.rag import RagError

    if not query.strip():
        err.print("[red]error:[/] empty query: type a question or some keywords")
        raise typer.Exit(2)
    rag = _rag()
    filters = {"kinds": kind or None, "sources": source or None}
    try:
        res = rag.search(
            query, k=k, collection=collection, mode=mode, fusion=fusion, filters=filters, rerank=rerank,
            expand=expand, min_relevance=min_relevance,
        )
    except RagError as exc:
        _fail(exc)
    if as_json:
        out.print_json(json.dumps(res.to_dict(), ensure_ascii=False))
        return
    _print_hits(query, res)


def _short_uri(uri: str) -> str:
    return uri.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1] or uri


def _print_hits(query: str, res: Any) -> None:
    from rich.text import Text

    from localrag.retrieval.snippet import snippet

    for note in res.notes:
        err.print(f"[yellow]note:[/] {note}")
    if not res:
        out.print("no results")
    else:
        table = Table(title=f"[bold]{query}[/]", show_lines=True, title_justify="left")
        table.add_column("#", justify="right")
        table.add_column("source / where", overflow="fold", max_width=32)
        table.add_column("relevance", justify="right")
        table.add_column("stages (score #rank)", overflow="fold")
        table.add_column("text", overflow="fold", ratio=1)
        cwd = Path.cwd()
        for n, h in enumerate(res, 1):
            try:
                src = str(Path(h.source).relative_to(cwd))
            except ValueError:
                src = h.source
            where = f"p. {h.page}" if h.page is not None else (_short_uri(h.kg_uri) if h.kg_uri else "")
            stages = []
            for leg, name in (("dense", "dense"), ("lexical", "bm25"), ("fused", "fused"), ("rerank", "rerank")):
                if leg in h.scores:
                    rank = f" #{h.ranks[leg]}" if leg in h.ranks else ""
                    stages.append(f"{name} {h.scores[leg]:.3g}{rank}")
            text, spans = snippet(h.text, query)
            body = Text(text)
            for a, b in spans:
                body.stylize("bold yellow", a, b)
            for nb in h.neighbours:
                arrow = "→" if nb.direction == "out" else "←"
                body.append(f"\n  {arrow} {nb.relation}: {nb.label or _short_uri(nb.uri)}", style="cyan")
            table.add_row(
                str(n), f"{src}\n{where}" if where else src, f"{h.relevance:.2f}", "\n".join(stages), body
            )
        out.print(table)
    reranker = res.reranker or "none (set reranker_model to a CrossEncoder id or folder to enable)"
    fusion = f" · fusion {res.fusion}" if res.fusion else ""
    total = res.timings.get("total", 0.0) * 1000
    out.print(f"[dim]mode {res.mode}{fusion} · reranker: {reranker} · {total:.0f} ms[/]")


@app.command()
def demo(collection: CollectionOpt = "default") -> None:
    """Interactive search over a collection (type a question, empty line to quit)."""
    from localrag.app.rag import RagError

    rag = _rag()
    examples = ["What lens does the lighthouse use?", "battery capacity of the microgrid", "Who built RV Kittiwake?"]
    out.print("[bold]localrag demo[/] — search your documents. Examples: " + " · ".join(examples))
    if not sys.stdin.isatty():
        for q in examples:
            try:
                _print_hits(q, rag.search(q, k=3, collection=collection, expand=True))
            except RagError as exc:
                _fail(exc)
        return
    while True:
        try:
            q = input("\nquestion> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not q:
            break
        try:
            _print_hits(q, rag.search(q, k=5, collection=collection, expand=True))
        except RagError as exc:
            err.print(f"[red]error:[/] {exc}")


bench_app = typer.Typer(
    help="Benchmarks: speed and quality measured against reference implementations (see docs/BENCHMARKS.md).",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")


@bench_app.command("retrieval")
def bench_retrieval(
    sizes: Annotated[str, typer.Option(help="Generated collection sizes in chunks, comma-separated.")] = "10000,100000",
    queries: Annotated[int, typer.Option(help="Queries per mode and size.")] = 200,
    peers: Annotated[bool, typer.Option("--peers/--no-peers", help="Compare with LangChain (bench extra).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Search latency p50/p95 per stage at each size, bm25s vs rank-bm25, and our hybrid vs LangChain's
    EnsembleRetriever (latency and recall@5 on the labeled set data/eval/retrieval.jsonl)."""
    from localrag.eval import bench_retrieval as b

    argv = ["--sizes", sizes, "--queries", str(queries)] + ([] if peers else ["--no-peers"])
    raise typer.Exit(b.main(argv + (["--json"] if as_json else [])))


@bench_app.command("quality")
def bench_quality(
    k: Annotated[int, typer.Option("--k", "-k", help="Depth of each ranking.")] = 10,
    reranker: Annotated[
        str | None, typer.Option(help="Also evaluate hybrid reranked by this CrossEncoder id or folder.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recall@5/10, MRR@10 and nDCG@10 of lexical, dense and hybrid search on the labeled set over data/sample
    (ingested into a temporary folder), and the relevance floor that separates answerable questions."""
    from localrag.eval import retrieval_eval as q

    argv = ["--k", str(k)] + (["--reranker", reranker] if reranker else []) + (["--json"] if as_json else [])
    raise typer.Exit(q.main(argv))


@bench_app.command("ingest")
def bench_ingest(
    chunks: Annotated[int, typer.Option(help="Approximate generated corpus size in chunks.")] = 10_000,
    as_json: JsonOpt = False,
) -> None:
    """Ingestion throughput next to raw SentenceTransformer.encode, re-ingest cost, peak memory."""
    from localrag.eval import bench_ingest as b

    raise typer.Exit(b.main(["--chunks", str(chunks)] + (["--json"] if as_json else [])))


@bench_app.command("answer")
def bench_answer(
    questions: Annotated[int, typer.Option(help="Labeled questions to ask.")] = 12,
    threads: Annotated[int, typer.Option(help="llama.cpp threads.")] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Time to first token, tokens/s and per-stage latency of `ask`; cache hit vs miss; prompt lookup decoding."""
    from localrag.eval import bench_answer as b

    raise typer.Exit(b.main(["--questions", str(questions), "--threads", str(threads)]
                            + (["--json"] if as_json else [])))


def _sampling_opts(temperature: float | None, top_p: float | None, max_tokens: int | None) -> dict[str, Any]:
    return {k: v for k, v in {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}.items()
            if v is not None}


TemperatureOpt = Annotated[
    float | None, typer.Option(help="Sampling temperature (default llm_temperature, 0.1; 0 = greedy).", min=0, max=2)
]
TopPOpt = Annotated[float | None, typer.Option("--top-p", help="Nucleus sampling (default llm_top_p).", min=0.01,
                                               max=1)]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="Longest answer in tokens (default "
                                                  "answer_max_tokens, 256).", min=16)]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the semantic answer cache.")]


def _print_answer_tail(ans: Any, streamed: bool) -> None:
    """Everything after the answer text: sources, warnings, why it abstained, timings."""
    from rich.markup import escape

    if not streamed:
        out.print(escape(ans.text), soft_wrap=True)
    else:
        out.print()
    if ans.citations:
        out.print()
        for c in ans.citations:
            where = f" p. {c.page}" if c.page is not None else (f" {_short_uri(c.kg_uri)}" if c.kg_uri else "")
            name = c.source.rsplit("/", 1)[-1]
            out.print(f"[bold][{c.n}][/] {escape(name)}{escape(where)} — [dim]{escape(c.quote)}[/]", soft_wrap=True)
    if ans.abstained and ans.abstain_reason:
        err.print(f"[dim]abstained: {escape(ans.abstain_reason)}[/]", soft_wrap=True)
    for w in ans.warnings:
        err.print(f"[yellow]note:[/] {escape(w)}", soft_wrap=True)
    if ans.scores and not ans.abstained:
        vals = ans.scores.get("values", {})
        shown = [f"{name.replace('_', ' ')} {v:.2f}" for name, v in vals.items() if v is not None]
        if shown:
            err.print(f"[dim]scores ({ans.scores.get('judge')}): {' · '.join(shown)}[/]")
        faith = ans.scores.get("metrics", {}).get("faithfulness", {})
        unsupported = list((faith.get("details") or {}).get("unsupported", []))
        for sentence in unsupported[:3]:
            err.print(f"[yellow]unsupported:[/] {escape(str(sentence))}", soft_wrap=True)
    t = ans.timings
    bits = [f"{k} {t[k] * 1000:.0f} ms" for k in ("cache", "rewrite", "retrieve", "ttft", "generate", "score")
            if k in t]
    cached = " · cached answer" if ans.cached else ""
    tok = ans.tokens or {}
    toks = f" · {tok.get('prompt') or 0}+{tok.get('completion') or 0} tokens" if tok.get("completion") else ""
    err.print(f"[dim]{ans.model_id}{cached}{toks} · " + " · ".join(bits)
              + f" · total {t.get('total', 0) * 1000:.0f} ms[/]", soft_wrap=True)


def _answer(rag: Any, question: str, collection: str, as_json: bool, stream: bool, kw: dict[str, Any]) -> Any:
    from localrag.app.answer import Answer, Restart
    from localrag.app.rag import RagError

    try:
        if as_json or not stream:
            ans = rag.ask(question, collection=collection, **kw)
            if as_json:
                out.print_json(json.dumps(ans.to_dict(), ensure_ascii=False, default=str))
            else:
                _print_answer_tail(ans, streamed=False)
            return ans
        ans = None
        for event in rag.ask_stream(question, collection=collection, **kw):
            if isinstance(event, Answer):
                ans = event
            elif isinstance(event, Restart):
                err.print(f"\n[yellow](draft rejected: {event.reason} — writing it again)[/]", soft_wrap=True)
            else:
                out.print(event, end="", soft_wrap=True, markup=False, highlight=False)
        if ans is not None and (ans.abstained or ans.attributed or ans.invalid_citations) and not ans.cached:
            out.print()
            out.print(f"[bold]→[/] {ans.text}", soft_wrap=True, highlight=False)  # the checked final text
        _print_answer_tail(ans, streamed=True)
        return ans
    except RagError as exc:
        _fail(exc)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="Your question.")],
    collection: CollectionOpt = "default",
    k: Annotated[int | None, typer.Option("--k", "-k", help="Sources to retrieve (default answer_k, 4).",
                                          min=1)] = None,
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only these document kinds.")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="Only sources matching this glob.")] = None,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Print the answer when it is complete.")] = False,
    no_cache: NoCacheOpt = False,
    temperature: TemperatureOpt = None,
    top_p: TopPOpt = None,
    max_tokens: MaxTokensOpt = None,
    stop: Annotated[list[str] | None, typer.Option("--stop", help="Stop generating at this string (repeatable).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from your documents, citing them as [1], [2]...; says "I don't know" when they don't.

    The answer streams as it is written; a draft that fails a check (no citations, a number not in the sources,
    a cut-off answer) is rewritten once, then the answer abstains with the reason. Exit code 0 for an answer,
    3 when it abstained, 1 for errors, 2 for usage errors."""
    if not question.strip():
        err.print("[red]error:[/] empty question")
        raise typer.Exit(2)
    rag = _rag()
    kw = {"k": k, "filters": {"kinds": kind or None, "sources": source or None}, "cache": False if no_cache else None,
          "stop": stop or None, **_sampling_opts(temperature, top_p, max_tokens)}
    ans = _answer(rag, question, collection, as_json, not no_stream, kw)
    raise typer.Exit(3 if ans.abstained else 0)


@app.command()
def chat(
    collection: CollectionOpt = "default",
    k: Annotated[int | None, typer.Option("--k", "-k", help="Sources to retrieve per question.", min=1)] = None,
    no_cache: NoCacheOpt = False,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
) -> None:
    """Ask questions one after another; follow-ups ("when was it built?") are rewritten into standalone questions
    from the conversation before searching. Empty line, Ctrl-D or /quit ends; /reset forgets the conversation."""
    rag = _rag()
    history: list[tuple[str, str]] = []
    kw = {"k": k, "cache": False if no_cache else None, **_sampling_opts(temperature, None, max_tokens)}
    out.print("[bold]localrag chat[/] — ask about your documents (/reset forgets the conversation, /quit ends)")
    while True:
        try:
            q = input("\nyou> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not q or q in ("/quit", "/exit"):
            break
        if q == "/reset":
            history.clear()
            out.print("[dim](conversation forgotten)[/]")
            continue
        ans = _answer(rag, q, collection, False, True, {**kw, "history": history})
        if ans.standalone_question:
            err.print(f"[dim]searched for: {ans.standalone_question}[/]", soft_wrap=True)
        history.append((q, ans.text))
        history[:] = history[-4:]


cache_app = typer.Typer(help="The semantic answer cache (answers reused for the same or an equivalent question).",
                        no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("clear")
def cache_clear(
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Only this collection.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Forget cached answers (all collections unless --collection is given)."""
    from localrag.app.rag import RagError

    rag = _rag()
    try:
        n = rag.clear_cache(collection)
    except RagError as exc:
        _fail(exc)
    if as_json:
        out.print_json(json.dumps({"removed": n, "collection": collection}))
    else:
        out.print(f"removed {n} cached answer(s)" + (f" of collection {collection!r}" if collection else ""))


@cache_app.command("stats")
def cache_stats(as_json: JsonOpt = False) -> None:
    """How many answers are cached and how often they were reused."""
    rag = _rag()
    st = {k: v for k, v in rag.cache.stats().items()
          if k in ("entries", "hits", "oldest", "newest", "threshold", "ttl_s", "max_entries")}
    if as_json:
        out.print_json(json.dumps(st, default=str))
    else:
        for key, value in st.items():
            out.print(f"{key}: {value}")


llm_app = typer.Typer(
    help="The language model that writes answers: in process (llama-cpp, default: the packaged SmolLM2-135M "
    "GGUF) or any OpenAI-compatible server (llm_backend=openai + llm_base_url). `llm serve` runs such a server.",
    no_args_is_help=True,
)
app.add_typer(llm_app, name="llm")


def _llm_fail(message: str, code: int = 1) -> None:
    from rich.markup import escape

    err.print(f"[red]error:[/] {escape(message)}")  # messages name pip extras like llama-cpp-python[server]
    raise typer.Exit(code)


def _llm_settings(**overrides: Any):  # noqa: ANN202 - app.config.Settings, imported lazily
    from localrag.app.config import ConfigError, load_settings

    try:
        return load_settings(_state.get("config"), **overrides)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


@llm_app.command("serve")
def llm_serve(
    model: Annotated[
        Path | None, typer.Option("--model", "-m", help="GGUF file to serve (default: llm_model, else the packaged "
                                  "SmolLM2-135M-Instruct).")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    n_ctx: Annotated[int | None, typer.Option("--n-ctx", help="Context window in tokens (default: llm_n_ctx).")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads (default: llm_threads, else llama.cpp's).")] = None,
    gpu_layers: Annotated[
        int | None, typer.Option("--gpu-layers", help="Layers offloaded to a GPU, -1 = all (default: llm_gpu_layers).")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", help="Require this key (clients set it in LOCALRAG_LLM_API_KEY).")
    ] = None,
) -> None:
    """Run llama.cpp's OpenAI-compatible server in the foreground (Ctrl-C stops it).

    Point localrag (or any OpenAI client) at it with LOCALRAG_LLM_BACKEND=openai and the printed
    LOCALRAG_LLM_BASE_URL. Needs llama-cpp-python's server extra (fastapi, uvicorn, sse-starlette)."""
    import importlib.util
    import signal
    import socket
    import subprocess

    from localrag.app.llm import LLMConfigError, LLMError, resolve_gguf

    s = _llm_settings()
    missing = [m for m in ("llama_cpp", "fastapi", "uvicorn", "sse_starlette", "starlette_context")
               if importlib.util.find_spec(m) is None]
    if missing:
        _llm_fail(f"the server needs {', '.join(missing)}: run `pip install \"llama-cpp-python[server]==0.3.36\"`")
    try:
        gguf = resolve_gguf(model if model is not None else s.llm_model if s.llm_backend == "llama-cpp" else None)
    except LLMError as exc:
        _llm_fail(str(exc), 2 if isinstance(exc, LLMConfigError) else 1)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            _llm_fail(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port, or stop what is "
                      "using it")
    threads = threads if threads is not None else s.llm_threads
    gpu_layers = gpu_layers if gpu_layers is not None else s.llm_gpu_layers
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", gguf.stem,
           "--host", host, "--port", str(port), "--n_ctx", str(n_ctx or s.llm_n_ctx),
           "--n_gpu_layers", str(gpu_layers), "--verbose", "False"]
    if threads is not None:
        cmd += ["--n_threads", str(threads)]
    if s.llm_prompt_lookup > 0:
        cmd += ["--draft_model", "prompt-lookup-decoding", "--draft_model_num_pred_tokens", str(s.llm_prompt_lookup)]
    if api_key:
        cmd += ["--api_key", api_key]
    shown = "[::1]" if host == "::1" else ("127.0.0.1" if host in ("0.0.0.0", "::") else host)
    url = f"http://{shown}:{port}/v1"
    err.print(f"serving [bold]{gguf.name}[/] (model name {gguf.stem!r}) at [bold]{url}[/] — Ctrl-C stops it",
              soft_wrap=True)
    err.print(f"use it:  LOCALRAG_LLM_BACKEND=openai LOCALRAG_LLM_BASE_URL={url} localrag ...", soft_wrap=True)
    proc = subprocess.Popen(cmd)
    # pass SIGTERM on so that stopping this command stops the server (Ctrl-C reaches both already)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: proc.send_signal(signum))
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait()
        err.print("server stopped")
        raise typer.Exit(0) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if rc not in (0, -signal.SIGTERM, -signal.SIGINT):
        err.print(f"[red]error:[/] the server exited with status {rc} (see its messages above)")
        raise typer.Exit(1)


@llm_app.command("info")
def llm_info(as_json: JsonOpt = False) -> None:
    """Show the configured LLM (backend, model file or server, model id, limits) and check that it loads or
    answers. Exit code 1 when it does not, 2 for configuration errors."""
    from rich.markup import escape

    from localrag.app.llm import LLMConfigError, LLMError, make_llm

    s = _llm_settings()
    info: dict[str, Any] = {"backend": s.llm_backend, "model": s.llm_model, "base_url": s.llm_base_url}
    info["settings"] = {
        k: getattr(s, k) for k in ("llm_n_ctx", "llm_threads", "llm_gpu_layers", "llm_temperature", "llm_top_p",
                                   "llm_max_tokens", "llm_stop", "llm_prompt_lookup", "llm_timeout_s")
    }
    llm, code = None, 0
    try:
        llm = make_llm(s)
        info |= llm.info()
        info["tokens_in_hello_world"] = llm.count_tokens("Hello, world!")
        info["ok"], info["error"] = True, None
    except LLMError as exc:
        info["ok"], info["error"] = False, str(exc)
        code = 2 if isinstance(exc, LLMConfigError) else 1
    finally:
        if llm is not None:
            llm.close()
    if as_json:
        out.print_json(json.dumps(info, ensure_ascii=False, default=str))
    else:
        table = Table(show_header=False, title="LLM", title_justify="left")
        table.add_column("key", style="bold")
        table.add_column("value", overflow="fold")
        for k, v in info.items():
            if k not in ("settings", "ok", "error") and v is not None:
                table.add_row(k, escape(", ".join(map(str, v)) if isinstance(v, list) else str(v)))
        table.add_row("settings", " · ".join(f"{k.removeprefix('llm_')}={v}" for k, v in info["settings"].items()))
        table.add_row("status", "[green]loads and answers[/]" if info["ok"] else f"[red]{escape(info['error'])}[/]")
        out.print(table)
    raise typer.Exit(code)


@app.command("eval")
def eval_qa(
    qa_file: Annotated[Path, typer.Argument(help="QA set, JSON lines: question, reference, relevant, answerable, id.")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.json, report.md and the PNG charts.")]
    = Path("eval-out"),
    judge: Annotated[str, typer.Option(help="proxy (fast, no LLM) or llm (adds the LLM judge next to it; slow).")]
    = "proxy",
    limit: Annotated[int | None, typer.Option(help="Only the first N questions.", min=1)] = None,
    k: Annotated[int | None, typer.Option("--k", "-k", help="Sources per answer (default answer_k, 4).", min=1)] = None,
    robustness: Annotated[int, typer.Option(help="Also ask each question N more times with non-semantic "
                                            "perturbations and report how far the answers drift (0 = off).",
                                            min=0)] = 0,
    panel: Annotated[str | None, typer.Option(help="Also pool a panel of judges, comma-separated (proxy,llm), "
                                              "and report their agreement.")] = None,
    aggregate: Annotated[str, typer.Option(help="How --panel pools its judges: mean, max or majority.")] = "mean",
    engine: Annotated[str | None, typer.Option(help="ragas: add the official ragas library's scores next to ours "
                                               "(needs the optional ragas extra and llm_backend=openai).")]
    = None,
) -> None:
    """Evaluate answers on a QA set: retrieval metrics, abstention accuracy, RAGAS-style scores, latency.

    Writes report.json, report.md, scores.png and latency.png into --out. Exit code 0 when every question ran,
    1 when some failed (each is reported; the others still run), 2 for a bad QA file or usage errors."""
    from rich.markup import escape

    from localrag.eval.ragas_engine import RagasUnavailableError
    from localrag.eval.runner import EvalInputError, load_items, run_eval, summary_rows, write_report

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
    try:
        items = load_items(qa_file, limit=limit)
    except EvalInputError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    rag = _rag()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[current]}"), console=err, disable=not sys.stderr.isatty(), transient=True,
    )
    try:
        with progress:
            task = progress.add_task("evaluating", total=len(items), current="")

            def on_progress(done: int, total: int, current: str) -> None:
                progress.update(task, completed=done, total=total, current=current)

            result = run_eval(rag, items, collection=collection, judge=judge, k=k, robustness=robustness,
                              progress=on_progress, panel=panel_judges, aggregate=aggregate, engine=engine)
    except EvalInputError as exc:
        _fail(exc, 2)
    except RagasUnavailableError as exc:  # no extra, or no OpenAI-compatible LLM server for ragas
        _fail(exc, 2)
    except ValueError as exc:  # no such collection
        _fail(exc, 2)
    except RuntimeError as exc:  # the LLM judge's model could not be loaded
        _fail(exc, 1)
    finally:
        rag.close()
    result["qa_file"], result["limit"] = str(qa_file), limit
    paths = write_report(result, out_dir)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=1, default=str))
    else:
        table = Table(title=f"eval of {qa_file.name} on collection {collection!r}", title_justify="left")
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
    raise typer.Exit(result["exit_code"])


def main() -> None:
    """Console-script entry point: usage errors exit 2 (click's convention), everything else as documented."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
