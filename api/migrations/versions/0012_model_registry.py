"""model registry: model versions, their assignments to devices (live or shadow) and shadow comparisons

Revision ID: 0012_model_registry
Revises: 0011_admin_audit
Create Date: 2026-12-02 06:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_model_registry"
# The lead rechains this at merge; self-contained either way.
down_revision: str | None = "0011_admin_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("dataset", sa.String(500)),
        sa.Column("training_command", sa.Text()),
        sa.Column("evaluation", sa.JSON()),
        sa.Column("uploaded_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "model_assignments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version_id", sa.Integer(), sa.ForeignKey("model_versions.id")),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("device_id", sa.Integer(), sa.ForeignKey("devices.id")),
        sa.Column("shadow_share", sa.Float(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("assigned_by", sa.String(100), nullable=False),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_model_assignments_role_device", "model_assignments", ["role", "device_id"])
    op.create_table(
        "model_comparisons",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("device_id", sa.Integer(), sa.ForeignKey("devices.id"), nullable=False),
        sa.Column("live_version_id", sa.Integer(), sa.ForeignKey("model_versions.id")),
        sa.Column("shadow_version_id", sa.Integer(), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("period_start", sa.DateTime(), nullable=False),
        sa.Column("period_end", sa.DateTime(), nullable=False),
        sa.Column("classes", sa.JSON(), nullable=False),
        sa.Column("crops", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_model_comparisons_device_id", "model_comparisons", ["device_id"])
    op.create_index("ix_model_comparisons_shadow_version_id", "model_comparisons", ["shadow_version_id"])


def downgrade() -> None:
    op.drop_table("model_comparisons")
    op.drop_table("model_assignments")
    op.drop_table("model_versions")
