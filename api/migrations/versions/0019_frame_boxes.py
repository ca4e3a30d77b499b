"""frame boxes: the device's detections in a ``frame`` evidence picture, kept with it for the training set

Revision ID: 0019_frame_boxes
Revises: 0018_review_labels
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019_frame_boxes"
down_revision: str | None = "0018_review_labels"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.add_column(sa.Column("boxes", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("evidence") as batch:
        batch.drop_column("boxes")
