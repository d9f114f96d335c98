"""The answering commands: ask, chat, and the `cache` group (the semantic answer cache)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from localrag.app.cli.common import CollectionOpt, JsonOpt, err, fail, open_rag, out, short_uri
from localrag.app.config import AnswerMode

__all__ = ["cache_app", "register"]


REPLACED = {  # auto mode: what replaces the quote shown first (Replace.mode)
    "auto:generative": "the model's answer, which passed its checks, replaces the quote above",
    "auto:extractive": "the checking model did not take the quote above as an answer; a next-best quote that it did "
                       "replaces it",
    "auto": "neither the model's answer nor the quote above passed the checking model",
}

def register(app: typer.Typer) -> None:
    """Add ask, chat and the `cache` group to `app`."""
    app.command()(ask)
    app.command()(chat)
    app.add_typer(cache_app, name="cache")


def _sampling_opts(temperature: float | None, top_p: float | None, max_tokens: int | None) -> dict[str, Any]:
    return {k: v for k, v in {"temperature": temperature, "top_p": top_p, "max_tokens": max_tokens}.items()
            if v is not None}


TemperatureOpt = Annotated[
    float | None, typer.Option(help="Sampling temperature (default llm.temperature, 0.1; 0 = greedy).", min=0, max=2)
]
TopPOpt = Annotated[float | None, typer.Option("--top-p", help="Nucleus sampling (default llm.top_p).", min=0.01,
                                               max=1)]
MaxTokensOpt = Annotated[int | None, typer.Option("--max-tokens", help="Longest answer in tokens (default "
                                                  "answer_max_tokens, 256).", min=16)]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Neither read nor write the semantic answer cache.")]


ModeOpt = Annotated[AnswerMode | None, typer.Option(
    "--mode", help="Answer mode: generative (the LLM writes), extractive (quotes the best source sentences, no LLM), "
    "auto (the quote at once, then the model's checked answer replaces it). Default: answer.mode.")]


def _print_answer_tail(ans: Any, streamed: bool) -> None:
    """Everything after the answer text: sources, warnings, why it abstained, timings."""
    from rich.markup import escape

    from localrag.retrieval.types import cite_location

    if not streamed:
        out.print(escape(ans.text), soft_wrap=True)
    else:
        out.print()
    if ans.citations:
        out.print()
        for c in ans.citations:
            # "Guide › Safety › Tides, p. 4" (Citation.location), else the node as a short URI
            place = cite_location(c.section, c.page, c.ocr) or (short_uri(c.kg_uri) if c.kg_uri else "")
            where = f" · {place}" if place else ""
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
    bits = [f"{k} {t[k] * 1000:.0f} ms" for k in ("cache", "rewrite", "retrieve", "ttft", "generate", "extract",
                                                   "score")
            if k in t]
    cached = " · cached answer" if ans.cached else ""
    if ans.cached and (ans.cache or {}).get("why"):
        err.print(f"[cyan]{escape(ans.cache['why'])}[/] [dim](--no-cache asks again)[/]", soft_wrap=True)
    tok = ans.tokens or {}
    toks = f" · {tok.get('prompt') or 0}+{tok.get('completion') or 0} tokens" if tok.get("completion") else ""
    mode = getattr(ans, "mode", "") or "generative"
    who = mode if ans.model_id in ("", mode, "extractive") else f"{mode} · {ans.model_id}"
    err.print(f"[dim]{who}{cached}{toks} · " + " · ".join(bits)
              + f" · total {t.get('total', 0) * 1000:.0f} ms[/]", soft_wrap=True)


def _answer(rag: Any, question: str, collection: str, as_json: bool, stream: bool, kw: dict[str, Any]) -> Any:
    from localrag.app.answering import Answer, Replace, Restart
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
        shown = ""  # the text streamed since the last Restart
        for event in rag.ask_stream(question, collection=collection, **kw):
            if isinstance(event, Answer):
                ans = event
            elif isinstance(event, Replace):
                err.print(f"\n[dim]({REPLACED.get(event.mode, event.reason)})[/]", soft_wrap=True)
                shown = ""
            elif isinstance(event, Restart):
                again = "quoting the sources" if "quoting the sources" in event.reason else "writing it again"
                reason = event.reason.split(" — quoting the sources")[0]
                err.print(f"\n[yellow](draft rejected: {reason} — {again})[/]", soft_wrap=True)
                shown = ""
            else:
                shown += event
                out.print(event, end="", soft_wrap=True, markup=False, highlight=False)
        if ans is not None and ans.abstained and " ".join(shown.split()) != " ".join(ans.text.split()):
            # the streamed draft was rejected: say so once, with the final 'I don't know' (the answer is not
            # printed twice: an accepted draft stays as streamed, its citations listed below)
            out.print()
            out.print(f"[bold]→[/] {ans.text}", soft_wrap=True, highlight=False)
        _print_answer_tail(ans, streamed=True)
        return ans
    except RagError as exc:
        fail(exc)


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
    mode: ModeOpt = None,
) -> None:
    """Answer a question from your documents, citing them as [1], [2]...; says "I don't know" when they don't.

    The answer streams as it is written; a draft that fails a check (no citations, a number not in the sources,
    a cut-off answer) is rewritten once, then the answer abstains with the reason. --mode extractive quotes the
    best supporting source sentences instead, without the LLM (the default answer.mode); generative lets the LLM
    write; auto lets it write and quotes the sources when its drafts are rejected. Exit code 0 for an answer,
    3 when it abstained, 1 for errors, 2 for usage errors."""
    if not question.strip():
        err.print("[red]error:[/] empty question")
        raise typer.Exit(2)
    rag = open_rag()
    kw = {"k": k, "filters": {"kinds": kind or None, "sources": source or None}, "cache": False if no_cache else None,
          "stop": stop or None, "answer_mode": mode.value if mode else None,
          **_sampling_opts(temperature, top_p, max_tokens)}
    ans = _answer(rag, question, collection, as_json, not no_stream, kw)
    raise typer.Exit(3 if ans.abstained else 0)


def chat(
    collection: CollectionOpt = "default",
    k: Annotated[int | None, typer.Option("--k", "-k", help="Sources to retrieve per question.", min=1)] = None,
    no_cache: NoCacheOpt = False,
    temperature: TemperatureOpt = None,
    max_tokens: MaxTokensOpt = None,
    mode: ModeOpt = None,
) -> None:
    """Ask questions one after another; follow-ups ("when was it built?") are rewritten into standalone questions
    from the conversation before searching. Empty line, Ctrl-D or /quit ends; /reset forgets the conversation."""
    rag = open_rag()
    history: list[tuple[str, str]] = []
    kw = {"k": k, "cache": False if no_cache else None, "answer_mode": mode.value if mode else None,
          **_sampling_opts(temperature, None, max_tokens)}
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


@cache_app.command("clear")
def cache_clear(
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Only this collection.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Forget cached answers (all collections unless --collection is given)."""
    from localrag.app.rag import RagError

    rag = open_rag()
    try:
        n = rag.clear_cache(collection)
    except RagError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps({"removed": n, "collection": collection}))
    else:
        out.print(f"removed {n} cached answer(s)" + (f" of collection {collection!r}" if collection else ""))


@cache_app.command("stats")
def cache_stats(
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Only this collection.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """How many answers are cached, and what the lookups did (every process): hits by kind (exact repeat or the same
    question asked another way), misses, and candidates refused by reason."""
    from rich.markup import escape

    from localrag.app.rag import RagError

    rag = open_rag()
    try:
        st = rag.cache_stats(collection)
    except RagError as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(st, default=str))
        return
    for key in ("entries", "hits", "oldest", "newest", "lookups", "exact_hits", "paraphrase_hits", "misses"):
        out.print(f"{key.replace('_', ' ')}: {st[key]}")
    out.print(f"refused candidates: {st['refused']}")
    for reason, n in st["refused_reasons"].items():
        out.print(f"  {n:>5}  {escape(reason)}")
    out.print(f"[dim]threshold {st['threshold']} · ttl {st['ttl_s']:.0f} s · at most {st['max_entries']} entries[/]")
