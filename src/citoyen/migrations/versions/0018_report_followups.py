"""report follow-ups: what a citizen adds to a report after filing it

A citizen may add information to their report, or answer a staff message, after the report is
filed (docs/flows.md, "After a report"). The conversation that brings it names the report it is
about (``conversations.report_id``), so its messages and attachments join that report; each
queue entry of the report shows the latest addition until staff act on the report
(``queue_entries.citizen_update`` and ``citizen_update_at``).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import citoyen.models

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_conversations_report_id"), ["report_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_conversations_report_id_reports", "reports", ["report_id"], ["id"]
        )
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("citizen_update", sa.String(length=20), nullable=True))
        batch_op.add_column(
            sa.Column("citizen_update_at", citoyen.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.drop_column("citizen_update_at")
        batch_op.drop_column("citizen_update")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_constraint("fk_conversations_report_id_reports", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_conversations_report_id"))
        batch_op.drop_column("report_id")
