"""text changes: the history of texts corrected or reviewed (who, when, before and after)

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-07 05:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import citoyen.models

revision: str = "0016"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "text_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("old_text", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("new_text", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("old_review", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.Column("new_review", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("text_changes") as batch:
        batch.create_index("ix_text_changes_language", ["language"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("text_changes") as batch:
        batch.drop_index("ix_text_changes_language")
    op.drop_table("text_changes")
