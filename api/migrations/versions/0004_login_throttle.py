"""login throttle: failed-credential counters per account and client address, and the lockout log

Revision ID: 0004_login_throttle
Revises: 0003
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models

revision: str = "0004_login_throttle"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "auth_throttle",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", api.models.UTCDateTime(), nullable=True),
        sa.Column("reset_at", api.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "subject", name="uq_auth_throttle_scope_subject"),
    )
    op.create_index(op.f("ix_auth_throttle_reset_at"), "auth_throttle", ["reset_at"])
    op.create_table(
        "auth_lockouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", api.models.UTCDateTime(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", api.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_auth_lockouts_at"), "auth_lockouts", ["at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_auth_lockouts_at"), table_name="auth_lockouts")
    op.drop_table("auth_lockouts")
    op.drop_index(op.f("ix_auth_throttle_reset_at"), table_name="auth_throttle")
    op.drop_table("auth_throttle")
