"""Alembic's environment, run by `localrag.index.migrations.upgrade` on the connection it hands over."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only `python -m localrag.index.migrations revision` gets here
    context.configure(url="sqlite://", target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
else:
    context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
