"""outbox rows of a survey carry its quiet hours: the dispatcher holds them outside the window

``outbox.quiet_hours`` is the survey's window as text, ``"08:00-20:00 Africa/Bamako"``; the
dispatcher sends such a row only inside it and moves it to the next opening otherwise, so that a
wave longer than one window (166,000 SMS at one a second take two days) stops at night instead
of going on. Other rows leave it empty and are never held (docs/outbox.md, "Quiet hours").

Survey rows still waiting when this runs are given the default window of a survey definition
(08:00-20:00, Africa/Bamako): a migration cannot read the deployment's survey files, and a wave
under way must not go on through the night. Rows queued after it carry their survey's own window.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The defaults of a survey's quiet_hours and time zone (services/surveys/definitions.py), as
# they were when this migration was written.
DEFAULT_WINDOW = "08:00-20:00 Africa/Bamako"


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("quiet_hours", sa.String(length=60), nullable=True))
    outbox = sa.table(
        "outbox",
        sa.column("kind", sa.String),
        sa.column("status", sa.String),
        sa.column("quiet_hours", sa.String),
    )
    op.execute(
        outbox.update()
        .where(outbox.c.kind == "survey", outbox.c.status.in_(("pending", "sending")))
        .values(quiet_hours=DEFAULT_WINDOW)
    )


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("quiet_hours")
