"""chunks.section: the heading path of a chunk ("Guide › Safety › Tides"); NULL for chunks made before it.

The releases before migrations added this column on open (`_add_missing_columns`), so an adopted database may
have it already.

Revision ID: 0002_chunks_section
Revises: 0001_baseline
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_chunks_section"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("chunks")}
    if "section" not in present:
        op.add_column("chunks", sa.Column("section", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("section")
