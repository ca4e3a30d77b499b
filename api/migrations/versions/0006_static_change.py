"""static change: a zone's model-free detector settings and its operator-set empty reference image

Revision ID: 0006_static_change
Revises: 0004_login_throttle
Create Date: 2026-12-20 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models

revision: str = "0006_static_change"
# The lead rechains this after 0005_suppressions at merge; self-contained either way.
down_revision: str | None = "0005_suppressions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("zones") as batch:
        batch.add_column(sa.Column("static_change", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("reference_sha256", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("reference_at", api.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("zones") as batch:
        batch.drop_column("reference_at")
        batch.drop_column("reference_sha256")
        batch.drop_column("static_change")
