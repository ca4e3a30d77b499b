"""console: each camera's latest frame (the zone editor's view)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 10:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.add_column(sa.Column("snapshot_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("snapshot_width", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("snapshot_height", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("snapshot_at", api.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.drop_column("snapshot_at")
        batch_op.drop_column("snapshot_height")
        batch_op.drop_column("snapshot_width")
        batch_op.drop_column("snapshot_sha256")
