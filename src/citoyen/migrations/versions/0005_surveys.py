"""surveys: runs, invitations, the scheduler lease and APScheduler's job store

Survey runs and whom each invited (unique per run and contact), the single-scheduler lease row,
and ``apscheduler_jobs`` (the worker's persistent job store, same columns APScheduler creates).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 00:30:28.590046
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import citoyen.models

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "apscheduler_jobs",
        sa.Column("id", sa.Unicode(length=191), nullable=False),
        sa.Column("next_run_time", sa.Float(precision=25), nullable=True),
        sa.Column("job_state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_apscheduler_jobs_next_run_time"), ["next_run_time"], unique=False
        )

    op.create_table(
        "scheduler_leases",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("acquired_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "survey_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("survey", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("trigger", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("flow_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("eligible", sa.Integer(), nullable=False),
        sa.Column("sampled", sa.Integer(), nullable=False),
        sa.Column("invited", sa.Integer(), nullable=False),
        sa.Column("skipped", sa.Integer(), nullable=False),
        sa.Column("started_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("survey", "key", name="uq_survey_runs_key"),
    )
    with op.batch_alter_table("survey_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_runs_survey"), ["survey"], unique=False)

    op.create_table(
        "survey_invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("survey", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("contact_id", sa.Integer(), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("conversation_id", sa.Integer(), nullable=True),
        sa.Column("invited_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("send_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", citoyen.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reminded_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", citoyen.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("call_attempts", sa.Integer(), nullable=False),
        sa.Column("call_sid", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("call_status", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"], ["contacts.id"], name="fk_survey_invitations_contact_id_contacts"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_survey_invitations_conversation_id_conversations",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["survey_runs.id"], name="fk_survey_invitations_run_id_survey_runs"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "contact_id", name="uq_survey_invitations_contact"),
    )
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_survey_invitations_call_sid"), ["call_sid"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_survey_invitations_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_survey_invitations_conversation_id"), ["conversation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_survey_invitations_invited_at"), ["invited_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_survey_invitations_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_invitations_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_invitations_survey"), ["survey"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("survey_invitations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_invitations_survey"))
        batch_op.drop_index(batch_op.f("ix_survey_invitations_status"))
        batch_op.drop_index(batch_op.f("ix_survey_invitations_run_id"))
        batch_op.drop_index(batch_op.f("ix_survey_invitations_invited_at"))
        batch_op.drop_index(batch_op.f("ix_survey_invitations_conversation_id"))
        batch_op.drop_index(batch_op.f("ix_survey_invitations_contact_id"))
        batch_op.drop_index(batch_op.f("ix_survey_invitations_call_sid"))

    op.drop_table("survey_invitations")
    with op.batch_alter_table("survey_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_runs_survey"))

    op.drop_table("survey_runs")
    op.drop_table("scheduler_leases")
    with op.batch_alter_table("apscheduler_jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_apscheduler_jobs_next_run_time"))

    op.drop_table("apscheduler_jobs")
