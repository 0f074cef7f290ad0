"""queue entries, merged reports, stakeholder language

Stakeholder queues (one entry per report and stakeholder, with SLA deadline and escalation),
``reports.merged_into_id`` for merged duplicates, ``stakeholders.language`` for on-call alerts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 22:40:45.890896
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import citoyen.models

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "queue_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.Integer(), nullable=False),
        sa.Column("stakeholder_id", sa.Integer(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("via", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("rule_line", sa.Integer(), nullable=True),
        sa.Column("chain", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("escalation_level", sa.Integer(), nullable=False),
        sa.Column("escalated_from_id", sa.Integer(), nullable=True),
        sa.Column("due_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("escalated_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.Integer(), nullable=True),
        sa.Column("closed_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["acknowledged_by"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["escalated_from_id"],
            ["queue_entries.id"],
        ),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["reports.id"],
        ),
        sa.ForeignKeyConstraint(
            ["stakeholder_id"],
            ["stakeholders.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("report_id", "stakeholder_id", name="uq_queue_entry"),
    )
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_queue_entries_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_queue_entries_report_id"), ["report_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_queue_entries_stakeholder_id"), ["stakeholder_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_queue_entries_status"), ["status"], unique=False)

    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merged_into_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_reports_merged_into_id"), ["merged_into_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_reports_merged_into_id_reports", "reports", ["merged_into_id"], ["id"]
        )

    with op.batch_alter_table("stakeholders", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("stakeholders", schema=None) as batch_op:
        batch_op.drop_column("language")

    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_constraint("fk_reports_merged_into_id_reports", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_reports_merged_into_id"))
        batch_op.drop_column("merged_into_id")

    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_queue_entries_status"))
        batch_op.drop_index(batch_op.f("ix_queue_entries_stakeholder_id"))
        batch_op.drop_index(batch_op.f("ix_queue_entries_report_id"))
        batch_op.drop_index(batch_op.f("ix_queue_entries_due_at"))

    op.drop_table("queue_entries")
