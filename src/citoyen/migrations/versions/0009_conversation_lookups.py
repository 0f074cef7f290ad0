"""conversation lookups: reports found by their conversation, conversations never by status

Linking a voice call's recordings to its report looked the report up by ``conversation_id``,
which had no index: a call's recording and consent steps each read the whole reports table. Attachments get
an index on ``contact_id`` too, as every other table that refers to a contact has (SQLite's
foreign key checks of a new contact read it by that column). And the index on
``conversations.status`` served no query (each finds conversations by contact, by id or by
expiry), but PostgreSQL's generic plans, made while the table was young and had no statistics,
chose it for a step's read and update: each then walked every open conversation's index entries,
dead versions included, and a step slowed down as the table grew. See docs/performance.md,
"Seventh pass".

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_reports_conversation_id", "reports", ["conversation_id"])
    op.create_index("ix_attachments_contact_id", "attachments", ["contact_id"])
    op.drop_index("ix_conversations_status", table_name="conversations")


def downgrade() -> None:
    op.create_index("ix_conversations_status", "conversations", ["status"])
    op.drop_index("ix_attachments_contact_id", table_name="attachments")
    op.drop_index("ix_reports_conversation_id", table_name="reports")
