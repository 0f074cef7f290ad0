"""gateway phones: how each SMS gateway phone has been answering

SMS through local SIMs goes out on Android phones running SMS Gateway for Android, one per
operator. The sender records each phone's failures and recoveries here so that the admin's
outbox monitor shows a phone that stopped answering (docs/sms.md, "SMS through local SIMs").

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import citoyen.models

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_phones",
        sa.Column("name", sa.String(length=30), nullable=False),
        sa.Column("operator", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_ok_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("down_until", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("gateway_phones")
