"""staff sessions: per-user session version, two-factor sign-in

``users.session_version`` is carried by every admin session and compared on each request:
raising it ends every session of the user (sign-out, password reset, role or scope change,
deactivation, two-factor changes). ``users.totp_*`` and ``users.recovery_codes`` hold the
optional TOTP two-factor sign-in (secret encrypted with the data key, hashes of the unused
recovery codes). See docs/security.md section 2.4.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 05:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import citoyen.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_version", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column(
                "totp_secret_enc", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True
            )
        )
        batch_op.add_column(
            sa.Column("totp_enabled_at", citoyen.models.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("totp_last_step", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("recovery_codes", sa.JSON(), nullable=False, server_default="[]")
        )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("recovery_codes")
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_enabled_at")
        batch_op.drop_column("totp_secret_enc")
        batch_op.drop_column("session_version")
