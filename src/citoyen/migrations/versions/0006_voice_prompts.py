"""voice prompts: the prompt library, phone recorders and their takes

``voice_prompts`` (one recording per language and text key, the file in CITOYEN_PROMPTS_DIR),
``prompt_recorders`` (staff allowed to record by phone, hashed PIN), ``prompt_calls`` (one call
to the recorder) and ``prompt_takes`` (recordings made by phone, fetched by the worker).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 00:31:53.813495
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import citoyen.models

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "prompt_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.Column("pin_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_sid"),
    )
    op.create_table(
        "prompt_recorders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("pin_hash", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("created_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id"),
    )
    op.create_table(
        "voice_prompts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("text_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("file_name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("content_type", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("created_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("language", "key", name="uq_voice_prompts_language_key"),
    )
    with op.batch_alter_table("voice_prompts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_voice_prompts_language"), ["language"], unique=False)

    op.create_table(
        "prompt_takes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("text_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("recording_sid", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("duration_seconds", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kept_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("stored_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["prompt_calls.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("recording_sid"),
    )
    with op.batch_alter_table("prompt_takes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prompt_takes_call_id"), ["call_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_prompt_takes_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("prompt_takes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_prompt_takes_status"))
        batch_op.drop_index(batch_op.f("ix_prompt_takes_call_id"))

    op.drop_table("prompt_takes")
    with op.batch_alter_table("voice_prompts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voice_prompts_language"))

    op.drop_table("voice_prompts")
    op.drop_table("prompt_recorders")
    op.drop_table("prompt_calls")
