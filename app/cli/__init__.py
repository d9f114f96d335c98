"""The `localrag` command line: `main` builds the Typer app, one module per command group, all over the `Rag`
facade."""

from localrag.app.cli.main import app, main

__all__ = ["app", "main"]
