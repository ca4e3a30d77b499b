"""suppressions: the false-alarm memory (a false_positive void remembers camera, zone, type and box)

Revision ID: 0005_suppressions
Revises: 0004_login_throttle
Create Date: 2026-12-10 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models

revision: str = "0005_suppressions"
down_revision: str | None = "0004_login_throttle"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "suppressions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("sighting_id", sa.Integer(), nullable=True),
        sa.Column("camera_code", sa.String(length=64), nullable=False),
        sa.Column("zone_code", sa.String(length=64), nullable=False),
        sa.Column("violation_type", sa.String(length=64), nullable=False),
        sa.Column("class_name", sa.String(length=64), nullable=True),
        sa.Column("box", sa.JSON(), nullable=False),
        sa.Column("crop_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", api.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", api.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["sighting_id"], ["sightings.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_suppressions_case_id"), "suppressions", ["case_id"])
    op.create_index("ix_suppressions_camera_expires", "suppressions", ["camera_code", "expires_at"])


def downgrade() -> None:
    op.drop_index("ix_suppressions_camera_expires", table_name="suppressions")
    op.drop_index(op.f("ix_suppressions_case_id"), table_name="suppressions")
    op.drop_table("suppressions")
