"""admin: queue assignment, coordinator area and admin language, login failures

``queue_entries.assigned_to`` (who of the stakeholder handles the report), copies of the
report's status, category, urgency, area and creation time on each entry (the queue pages filter
one table) and two indexes for the admin's keyset-paginated queue pages; ``users.area_id`` (a coordinator's scope) and
``users.language`` (admin pages in French or English); ``login_failures`` for sign-in throttling
that holds across web workers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 00:28:11.309362
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import citoyen.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Filtered columns carried by the queue page indexes (covering: no table read to filter or count).
FILTERS = ["stakeholder_id", "report_status", "category", "urgency", "area_id", "reported_at"]


def upgrade() -> None:
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("created_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_login_failures_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_login_failures_key"), ["key"], unique=False)

    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("assigned_to", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_queue_entries_assigned_to"), ["assigned_to"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_queue_entries_assigned_to_users", "users", ["assigned_to"], ["id"]
        )
        batch_op.add_column(
            sa.Column(
                "report_status",
                sqlmodel.sql.sqltypes.AutoString(length=20),
                nullable=False,
                server_default="new",
            )
        )
        batch_op.add_column(
            sa.Column("category", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "urgency",
                sqlmodel.sql.sqltypes.AutoString(length=20),
                nullable=False,
                server_default="normal",
            )
        )
        batch_op.add_column(sa.Column("area_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "reported_at",
                citoyen.models.UTCDateTime(timezone=True),
                nullable=False,
                server_default=sa.text("CURRENT_TIMESTAMP"),
            )
        )
        batch_op.create_foreign_key("fk_queue_entries_area_id_areas", "areas", ["area_id"], ["id"])
        batch_op.create_index(
            "ix_queue_entries_page", ["status", "due_at", "id", *FILTERS], unique=False
        )
        batch_op.create_index(
            "ix_queue_entries_stakeholder_page",
            ["stakeholder_id", "status", "due_at", "id", *FILTERS[1:]],
            unique=False,
        )

    # Existing entries take their report's values (the models keep them equal from now on).
    for column, source in (
        ("report_status", "status"),
        ("category", "category"),
        ("urgency", "urgency"),
        ("area_id", "area_id"),
        ("reported_at", "created_at"),
    ):
        op.execute(
            f"UPDATE queue_entries SET {column} = "
            f"(SELECT reports.{source} FROM reports WHERE reports.id = queue_entries.report_id)"
        )
    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.alter_column("report_status", server_default=None)
        batch_op.alter_column("urgency", server_default=None)
        batch_op.alter_column("reported_at", server_default=None)

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("area_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True)
        )
        batch_op.create_foreign_key("fk_users_area_id_areas", "areas", ["area_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint("fk_users_area_id_areas", type_="foreignkey")
        batch_op.drop_column("language")
        batch_op.drop_column("area_id")

    with op.batch_alter_table("queue_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_queue_entries_stakeholder_page")
        batch_op.drop_index("ix_queue_entries_page")
        batch_op.drop_constraint("fk_queue_entries_area_id_areas", type_="foreignkey")
        batch_op.drop_column("reported_at")
        batch_op.drop_column("area_id")
        batch_op.drop_column("urgency")
        batch_op.drop_column("category")
        batch_op.drop_column("report_status")
        batch_op.drop_constraint("fk_queue_entries_assigned_to_users", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_queue_entries_assigned_to"))
        batch_op.drop_column("assigned_to")

    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_failures_key"))
        batch_op.drop_index(batch_op.f("ix_login_failures_created_at"))

    op.drop_table("login_failures")
