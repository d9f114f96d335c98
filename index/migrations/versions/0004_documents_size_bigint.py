"""documents.size becomes BIGINT: a file over 2 GiB (max_file_mb raised) overflowed PostgreSQL's 32-bit INTEGER.

SQLite's INTEGER already holds 64 bits, so nothing changes there.

Revision ID: 0004_documents_size_bigint
Revises: 0003_prompt_version_text
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_documents_size_bigint"
down_revision = "0003_prompt_version_text"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("documents", "size", type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("documents", "size", type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
