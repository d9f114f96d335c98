"""cache_events: what each answer-cache lookup did (a hit by kind, a candidate refused and why), kept across
processes for `localrag cache stats`.

Revision ID: 0005_cache_events
Revises: 0004_documents_size_bigint
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_cache_events"
down_revision = "0004_documents_size_bigint"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "cache_events" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "cache_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("collection_id", sa.Integer(), sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(200), nullable=True),
        sa.Column("created", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_cache_events_collection_id", "cache_events", ["collection_id"])


def downgrade() -> None:
    op.drop_index("ix_cache_events_collection_id", table_name="cache_events")
    op.drop_table("cache_events")
