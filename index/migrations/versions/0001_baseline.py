"""Baseline: the schema of the releases before migrations (without chunks.section, added by 0002).

A database made by those releases already has some or all of these tables (created by `create_all` as they were
added over time): only the missing ones are created, so that such a database is adopted as it is.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None

_CASCADE: dict[str, Any] = {"ondelete": "CASCADE"}


def _create(name: str, *columns: Any, indexes: tuple[str, ...] = (), **kw: Any) -> None:
    """Create a table and its single-column indexes (ix_<table>_<column>) unless the table exists."""
    if name in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(name, *columns, **kw)
    for column in indexes:
        op.create_index(f"ix_{name}_{column}", name, [column], unique=False)


def upgrade() -> None:
    _create(
        "collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("embedding_model", sa.String(length=500), nullable=False),
        sa.Column("embedding_dim", sa.Integer(), nullable=False),
        sa.Column("chunk_tokens", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("corpus_version", sa.Integer(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    _create(
        "documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("mtime", sa.Float(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("duplicate_of", sa.Integer(), nullable=True),
        sa.Column("warnings", sa.Text(), nullable=True),
        sa.Column("meta", sa.Text(), nullable=True),
        sa.Column("n_chunks", sa.Integer(), nullable=False),
        sa.Column("ingested", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], **_CASCADE),
        sa.ForeignKeyConstraint(["duplicate_of"], ["documents.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("collection_id", "source"),
        indexes=("collection_id", "sha256"),
    )
    _create(
        "chunks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("kg_uri", sa.Text(), nullable=True),
        sa.Column("label", sa.Text(), nullable=True),
        sa.Column("n_tokens", sa.Integer(), nullable=False),
        sa.Column("text_sha256", sa.String(length=64), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], **_CASCADE),
        sa.ForeignKeyConstraint(["document_id"], ["documents.id"], **_CASCADE),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,  # ids are FAISS ids: never reuse one
        indexes=("collection_id", "document_id"),
    )
    for table, text_column in (("kg_nodes", "uri"), ("kg_edges", "subject")):
        extra = (
            [sa.Column("uri", sa.Text(), nullable=False), sa.Column("label", sa.Text(), nullable=True),
             sa.Column("types", sa.Text(), nullable=False), sa.Column("description", sa.Text(), nullable=True)]
            if table == "kg_nodes" else
            [sa.Column("subject", sa.Text(), nullable=False), sa.Column("predicate", sa.Text(), nullable=False),
             sa.Column("object", sa.Text(), nullable=False), sa.Column("object_is_uri", sa.Boolean(), nullable=False)]
        )
        _create(
            table,
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("collection_id", sa.Integer(), nullable=False),
            sa.Column("document_id", sa.Integer(), nullable=False),
            *extra,
            sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], **_CASCADE),
            sa.ForeignKeyConstraint(["document_id"], ["documents.id"], **_CASCADE),
            sa.PrimaryKeyConstraint("id"),
            indexes=("collection_id", "document_id", text_column),
        )
    _create(
        "ingest_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("command", sa.String(length=20), nullable=False),
        sa.Column("started", sa.DateTime(), nullable=False),
        sa.Column("finished", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("counts", sa.Text(), nullable=True),
        sa.Column("outcomes", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], **_CASCADE),
        sa.PrimaryKeyConstraint("id"),
        indexes=("collection_id",),
    )
    _create(
        "answers_cache",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("corpus_version", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=500), nullable=False),
        sa.Column("prompt_version", sa.String(length=200), nullable=False),
        sa.Column("embedding_model", sa.String(length=500), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("question_key", sa.String(length=64), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("last_hit", sa.DateTime(), nullable=True),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["collection_id"], ["collections.id"], **_CASCADE),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
        indexes=("collection_id", "question_key"),
    )
    _create(
        "conversations",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("collection", sa.String(length=200), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes=("collection", "updated"),
    )
    _create(
        "messages",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("conversation_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], **_CASCADE),
        sa.PrimaryKeyConstraint("id"),
        indexes=("conversation_id",),
    )
    _create(
        "feedback",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=True),
        sa.Column("conversation_id", sa.String(length=32), nullable=True),
        sa.Column("collection", sa.String(length=200), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("standalone_question", sa.Text(), nullable=True),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("abstained", sa.Boolean(), nullable=False),
        sa.Column("sources", sa.Text(), nullable=False),
        sa.Column("citations", sa.Text(), nullable=False),
        sa.Column("scores", sa.Text(), nullable=True),
        sa.Column("model_id", sa.String(length=500), nullable=False),
        sa.Column("prompt_version", sa.String(length=200), nullable=False),
        sa.Column("created", sa.DateTime(), nullable=False),
        sa.Column("updated", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["message_id"], ["messages.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
        indexes=("collection", "conversation_id"),
    )


def downgrade() -> None:
    for table in ("feedback", "messages", "conversations", "answers_cache", "ingest_runs", "kg_edges", "kg_nodes",
                  "chunks", "documents", "collections"):
        op.drop_table(table)
