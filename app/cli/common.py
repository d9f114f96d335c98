"""What the command modules share: the consoles, the global options' state, option types, opening a `Rag` or the
settings, and failing with a message and an exit code."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

__all__ = ["CollectionOpt", "JsonOpt", "err", "fail", "open_rag", "out", "settings", "short_uri", "state"]

out = Console()
err = Console(stderr=True)
state: dict[str, Any] = {}  # the global options (data_dir, config), set by the callback in app/cli.py

CollectionOpt = Annotated[str, typer.Option("--collection", "-c", help="Collection to work in.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")]


def open_rag(**overrides: Any):  # noqa: ANN201 - app.rag.Rag, imported lazily so --help stays fast
    """The Rag of the global --data-dir/--config (configuration errors exit 2)."""
    from localrag.app.config import ConfigError
    from localrag.app.rag import Rag

    try:
        return Rag.open(state.get("data_dir"), config_file=state.get("config"), **overrides)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def settings(**overrides: Any):  # noqa: ANN201 - app.config.Settings, imported lazily
    """The settings of the global --config (configuration errors exit 2), for commands that need no data directory."""
    from localrag.app.config import ConfigError, load_settings

    try:
        return load_settings(state.get("config"), **overrides)
    except ConfigError as exc:
        err.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def fail(exc: Exception | str, code: int = 1) -> NoReturn:
    """Print the error and exit with `code`."""
    from rich.markup import escape

    err.print(f"[red]error:[/] {escape(str(exc))}")  # messages may name pip extras like .[ragas]
    raise typer.Exit(code)


def short_uri(uri: str) -> str:
    """The last segment of a URI (after the last / or #), for display."""
    return uri.rstrip("/#").rsplit("/", 1)[-1].rsplit("#", 1)[-1] or uri
