"""city scale: blobs in PostgreSQL (blobs, blob_chunks), installation settings (the secret key) for API
hosts that share only the database; indexes for a million cases (benchmarks/README.md, "A million cases")

Revision ID: 0009_city_scale
Revises: 0008_reports
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import api.models

revision: str = "0009_city_scale"
# The lead rechains this at merge; self-contained either way.
down_revision: str | None = "0008_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("key", sa.String(length=300), primary_key=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("created_at", api.models.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_blobs_kind", "blobs", ["kind"])
    op.create_table(
        "blob_chunks",
        sa.Column(
            "key", sa.String(length=300), sa.ForeignKey("blobs.key", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("seq", sa.Integer(), primary_key=True),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        # JPEGs and clips do not compress: store chunks out of line without trying
        op.execute("ALTER TABLE blob_chunks ALTER COLUMN data SET STORAGE EXTERNAL")
    op.create_table(
        "installation_settings",
        sa.Column("name", sa.String(length=64), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("created_at", api.models.UTCDateTime(), nullable=False),
    )
    # the review queue's filter options: DISTINCT cameras and places over the pending cases only
    op.create_index("ix_cases_status_camera", "cases", ["status", "camera_code"])
    op.create_index("ix_cases_status_place", "cases", ["status", "place_id"])
    # the case page lists the cases that recur it: without this, a scan of every case
    op.create_index("ix_cases_recurrence_of_id", "cases", ["recurrence_of_id"])


def downgrade() -> None:
    op.drop_index("ix_cases_recurrence_of_id", table_name="cases")
    op.drop_index("ix_cases_status_place", table_name="cases")
    op.drop_index("ix_cases_status_camera", table_name="cases")
    op.drop_table("installation_settings")
    op.drop_table("blob_chunks")
    op.drop_index("ix_blobs_kind", table_name="blobs")
    op.drop_table("blobs")
