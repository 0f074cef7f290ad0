"""security: inbound throttling, discreet contacts, purged reports

``inbound_throttles`` counts the messages dropped while a sender is over the per-sender inbound
limit (state in the database: every web worker sees it); ``contacts.discreet`` chooses neutral
wording for one contact (None: the deployment's setting); ``reports.purged_at`` marks a report
whose free text, recordings and reporter link the retention purge removed.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 01:04:28.570690
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import citoyen.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbound_throttles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("started_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("dropped", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_inbound_throttles_contact_id_contacts"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("inbound_throttles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbound_throttles_contact_last", ["contact_id", "last_at"], unique=False
        )

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("discreet", sa.Boolean(), nullable=True))

    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("purged_at", citoyen.models.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("purged_at")

    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_column("discreet")

    with op.batch_alter_table("inbound_throttles", schema=None) as batch_op:
        batch_op.drop_index("ix_inbound_throttles_contact_last")

    op.drop_table("inbound_throttles")
