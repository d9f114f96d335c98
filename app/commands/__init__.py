"""The `localrag` commands, one module per group; app/cli.py builds the Typer app from their `register(app)`.

- `library`: ingest, sync, remove, status, search, demo
- `asking`: ask, chat, cache clear/stats
- `llm`: llm serve, llm info
- `evaluation`: eval
- `bench`: bench retrieval/quality/ingest/answer
- `common`: consoles, global options, opening a Rag, failing with an exit code
"""
