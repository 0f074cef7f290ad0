"""bulletins: one row per area and month, claimed by the worker that makes the PDF

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-07 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import citoyen.models

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bulletins",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("area_code", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("month", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("file_name", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.Column("error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("made_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("emailed_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("area_code", "month", name="uq_bulletins_area_month"),
    )


def downgrade() -> None:
    op.drop_table("bulletins")
