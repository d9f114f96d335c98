"""The library commands: ingest, sync, remove, status, search and demo (documents in, search out)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from localrag.app.cli.common import CollectionOpt, JsonOpt, err, fail, open_rag, out, short_uri

__all__ = ["print_hits", "register"]


def register(app: typer.Typer) -> None:
    """Add ingest, sync, remove, status, search and demo to `app`."""
    for command in (ingest, sync, remove, status, search, demo):
        app.command()(command)


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

    rag = open_rag(**overrides)
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
            fail(exc)
    _print_report(report, as_json)
    raise typer.Exit(report.exit_code)


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders (folders are walked recursively).")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
    timeout: Annotated[float | None, typer.Option(help="Per-file load time limit in seconds.")] = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="Chunk size in tokens (new collections).")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="Chunk overlap in tokens (new collections).")] = None,
) -> None:
    """Ingest PDF, text/markdown, HTML, Word and RDF files (.pdf .txt .md .html .docx .ttl .rdf .owl .xml .nt .nq
    .trig .jsonld .n3).

    Unchanged files are skipped; changed files replace their old chunks. Exit code 1 if any file failed.
    """
    _run_ingest(paths, collection, as_json, sync=False,
                overrides={"file_timeout_s": timeout, "chunk_tokens": chunk_tokens, "chunk_overlap": chunk_overlap})


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


def remove(
    sources: Annotated[list[str], typer.Argument(help="Sources (file paths as ingested) to remove.")],
    collection: CollectionOpt = "default",
    as_json: JsonOpt = False,
) -> None:
    """Remove documents (their chunks, vectors and BM25 entries) by source."""
    from localrag.app.rag import RagError
    from localrag.ingest.job import IngestLocked

    rag = open_rag()
    try:
        report = rag.remove(sources, collection=collection)
    except (RagError, IngestLocked) as exc:
        fail(exc)
    _print_report(report, as_json)
    raise typer.Exit(report.exit_code)


def status(as_json: JsonOpt = False) -> None:
    """Collections, counts, embedding model and index health."""
    from localrag.app.rag import RagError

    rag = open_rag()
    try:
        st = rag.status()
    except RagError as exc:
        fail(exc)
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


def search(
    query: Annotated[str, typer.Argument(help="Question or keywords.")],
    k: Annotated[int, typer.Option("--k", "-k", help="Number of results.")] = 5,
    mode: Annotated[
        str | None, typer.Option(help="hybrid (dense + BM25, fused), dense or lexical. Default: search.mode.")
    ] = None,
    fusion: Annotated[
        str | None, typer.Option(help="rrf (reciprocal rank) or convex (weighted normalized scores).")
    ] = None,
    collection: CollectionOpt = "default",
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="Only these document kinds: pdf, text, markdown, rdf, html, docx."),
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
    rag = open_rag()
    filters = {"kinds": kind or None, "sources": source or None}
    try:
        res = rag.search(
            query, k=k, collection=collection, mode=mode, fusion=fusion, filters=filters, rerank=rerank,
            expand=expand, min_relevance=min_relevance,
        )
    except RagError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(res.to_dict(), ensure_ascii=False))
        return
    print_hits(query, res)


def print_hits(query: str, res: Any) -> None:
    from rich.text import Text

    from localrag.retrieval.snippet import snippet
    from localrag.retrieval.types import cite_location

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
            # "Guide › Safety › Tides, p. 4" (retrieval.types.cite_location), else the node as a short URI
            where = cite_location(h.section, h.page, h.ocr) or (short_uri(h.kg_uri) if h.kg_uri else "")
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
                body.append(f"\n  {arrow} {nb.relation}: {nb.label or short_uri(nb.uri)}", style="cyan")
            table.add_row(
                str(n), f"{src}\n{where}" if where else src, f"{h.relevance:.2f}", "\n".join(stages), body
            )
        out.print(table)
    reranker = res.reranker or "none (set search.reranker_model to a CrossEncoder id or folder to enable)"
    fusion = f" · fusion {res.fusion}" if res.fusion else ""
    total = res.timings.get("total", 0.0) * 1000
    out.print(f"[dim]mode {res.mode}{fusion} · reranker: {reranker} · {total:.0f} ms[/]")


def demo(collection: CollectionOpt = "default") -> None:
    """Interactive search over a collection (type a question, empty line to quit)."""
    from localrag.app.rag import RagError

    rag = open_rag()
    examples = ["What lens does the lighthouse use?", "battery capacity of the microgrid", "Who built RV Kittiwake?"]
    out.print("[bold]localrag demo[/] — search your documents. Examples: " + " · ".join(examples))
    if not sys.stdin.isatty():
        for q in examples:
            try:
                print_hits(q, rag.search(q, k=3, collection=collection, expand=True))
            except RagError as exc:
                fail(exc)
        return
    while True:
        try:
            q = input("\nquestion> ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not q:
            break
        try:
            print_hits(q, rag.search(q, k=5, collection=collection, expand=True))
        except RagError as exc:
            err.print(f"[red]error:[/] {exc}")
