"""dashboard indexes: the 12-week window of reports and queue entries, read from indexes alone

With a million reports the dashboard walked its window through the table (or the whole queue
table, which had no index on ``created_at``); these covering indexes let each aggregate read
only the window's index range. See docs/performance.md, "Dashboard with 1,000,000 reports".

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 04:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLA = ["status", "due_at", "acknowledged_at", "closed_at"]
INDEXES = [
    ("ix_reports_window", "reports", ["created_at", "category", "area_id"]),
    ("ix_queue_entries_created", "queue_entries", ["created_at", *SLA]),
    (
        "ix_queue_entries_scope_created",
        "queue_entries",
        ["stakeholder_id", "created_at", "report_id", *SLA],
    ),
]


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
