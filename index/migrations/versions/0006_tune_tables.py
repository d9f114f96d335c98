"""tune_questions and tune_runs: the questions `localrag tune` wrote for a collection's chunks, and its runs (the
tuned embedder's lineage, which run a collection uses).

Revision ID: 0006_tune_tables
Revises: 0005_cache_events
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_tune_tables"
down_revision = "0005_cache_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "tune_questions" not in tables:
        op.create_table(
            "tune_questions",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("collection_id", sa.Integer(), sa.ForeignKey("collections.id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("chunk_id", sa.Integer(), sa.ForeignKey("chunks.id", ondelete="CASCADE"), nullable=False,
                      unique=True),
            sa.Column("question", sa.Text(), nullable=False),
            sa.Column("status", sa.String(10), nullable=False),
            sa.Column("model", sa.String(500), nullable=False),
            sa.Column("created", sa.DateTime(), nullable=False),
        )
        op.create_index("ix_tune_questions_collection_id", "tune_questions", ["collection_id"])
    if "tune_runs" not in tables:
        op.create_table(
            "tune_runs",
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
            sa.Column("collection_id", sa.Integer(), sa.ForeignKey("collections.id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("tag", sa.String(40), nullable=False),
            sa.Column("status", sa.String(20), nullable=False),
            sa.Column("base_model", sa.String(500), nullable=False),
            sa.Column("lineage", sa.Text(), nullable=True),
            sa.Column("created", sa.DateTime(), nullable=False),
            sa.Column("finished", sa.DateTime(), nullable=True),
        )
        op.create_index("ix_tune_runs_collection_id", "tune_runs", ["collection_id"])


def downgrade() -> None:
    op.drop_index("ix_tune_runs_collection_id", table_name="tune_runs")
    op.drop_table("tune_runs")
    op.drop_index("ix_tune_questions_collection_id", table_name="tune_questions")
    op.drop_table("tune_questions")
