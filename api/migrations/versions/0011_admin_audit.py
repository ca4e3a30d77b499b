"""admin audit: one row per change to reference data, cameras, devices and users

Revision ID: 0011_admin_audit
Revises: 0010_case_search
Create Date: 2026-12-02 06:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.models import UTCDateTime

revision: str = "0011_admin_audit"
# The lead rechains this at merge; self-contained either way.
down_revision: str | None = "0010_case_search"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "admin_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("area", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("object_key", sa.String(200), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
    )
    op.create_index("ix_admin_events_area_id", "admin_events", ["area", "id"])
    op.create_index("ix_admin_events_actor_id", "admin_events", ["actor", "id"])


def downgrade() -> None:
    op.drop_index("ix_admin_events_actor_id", table_name="admin_events")
    op.drop_index("ix_admin_events_area_id", table_name="admin_events")
    op.drop_table("admin_events")
