"""review labels: boxes operators draw on a case's evidence image (missed objects) for the training set

Revision ID: 0018_review_labels
Revises: 0016_board_scale
Create Date: 2026-12-02 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_review_labels"
# The lead rechains this at merge; self-contained either way.
down_revision: str | None = "0016_board_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "review_labels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
        sa.Column("evidence_id", sa.Integer(), sa.ForeignKey("evidence.id"), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("x2", sa.Float(), nullable=False),
        sa.Column("y2", sa.Float(), nullable=False),
        sa.Column("event_code", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_by_user_id", sa.Integer(), sa.ForeignKey("users.id")),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_review_labels_case_id", "review_labels", ["case_id"])
    op.create_index("ix_review_labels_evidence_id", "review_labels", ["evidence_id"])


def downgrade() -> None:
    op.drop_index("ix_review_labels_evidence_id", table_name="review_labels")
    op.drop_index("ix_review_labels_case_id", table_name="review_labels")
    op.drop_table("review_labels")
