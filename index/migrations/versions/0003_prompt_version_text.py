"""answers_cache.prompt_version and feedback.prompt_version become TEXT.

The answer cache keeps the answer's whole scope (prompt version, retrieval and sampling parameters, as JSON; about
300 characters) in prompt_version, declared VARCHAR(200). SQLite never enforces a VARCHAR length, so nothing changes
there (rebuilding the tables would cost time for no effect); PostgreSQL does, and refused every cached answer.

Revision ID: 0003_prompt_version_text
Revises: 0002_chunks_section
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_prompt_version_text"
down_revision = "0002_chunks_section"
branch_labels = None
depends_on = None

_COLUMNS = (("answers_cache", False), ("feedback", False))


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, nullable in _COLUMNS:
        op.alter_column(table, "prompt_version", type_=sa.Text(), existing_type=sa.String(length=200),
                        existing_nullable=nullable)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, nullable in _COLUMNS:
        op.alter_column(table, "prompt_version", type_=sa.String(length=200), existing_type=sa.Text(),
                        existing_nullable=nullable)
