"""outbox claims name their dispatcher: a dead worker's claims are released without the lease

A row in ``sending`` carries ``claimed_by``, the registration (``scheduler_leases``,
``dispatcher:<id>``) of the worker that claimed it. When that registration is gone (the worker
restarted and removed its earlier one, or it stopped renewing it), the row is due again at once
instead of after its 120-second lease. See docs/outbox.md, "Crash recovery".

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")
