"""callbacks: voice by call-back, free for the caller

A citizen asks to be called (APPEL by SMS or WhatsApp); the worker places the call within the
call-back hours, a per-number daily limit and a daily budget of calls, and retries busy or
unanswered calls (docs/voice.md, "Call-back"). ``callback_days`` counts the calls of each local
day against the budget.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import citoyen.models

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_key", sa.String(length=120), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("requested_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("placed_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("call_sid", sa.String(length=40), nullable=True),
        sa.Column("call_status", sa.String(length=20), nullable=True),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("asked_while_stopped", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_key"),
    )
    op.create_index("ix_callbacks_contact_id", "callbacks", ["contact_id"])
    op.create_index("ix_callbacks_status", "callbacks", ["status"])
    op.create_index("ix_callbacks_due_at", "callbacks", ["due_at"])
    op.create_index("ix_callbacks_requested_at", "callbacks", ["requested_at"])
    op.create_index("ix_callbacks_call_sid", "callbacks", ["call_sid"])
    op.create_table(
        "callback_days",
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade() -> None:
    op.drop_table("callback_days")
    op.drop_index("ix_callbacks_call_sid", table_name="callbacks")
    op.drop_index("ix_callbacks_requested_at", table_name="callbacks")
    op.drop_index("ix_callbacks_due_at", table_name="callbacks")
    op.drop_index("ix_callbacks_status", table_name="callbacks")
    op.drop_index("ix_callbacks_contact_id", table_name="callbacks")
    op.drop_table("callbacks")
